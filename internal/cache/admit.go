package cache

import (
	"encoding/binary"
	"sync/atomic"
)

// doorkeeperBits is the doorkeeper's size: 2^20 bits (128 KiB).
const doorkeeperBits = 1 << 20

// doorkeeper admits a key to the cache the second time it is put within a
// window, as TinyLFU's doorkeeper does: a flood of decisions that are each
// made once (every request reads a unique value) costs one bit each instead
// of a go-memdb write and an eviction. It is a one-hash Bloom filter over the
// key's hash, cleared when half full; a collision only admits a key early.
type doorkeeper struct {
	words [doorkeeperBits / 64]atomic.Uint64
	set   atomic.Int64
}

// admit records k and reports whether it was seen before.
func (d *doorkeeper) admit(k *Key) bool {
	h := binary.LittleEndian.Uint64(k.Hash[:8]) ^ k.Generation
	w := &d.words[(h>>6)%uint64(len(d.words))]
	bit := uint64(1) << (h & 63)
	if w.Or(bit)&bit != 0 {
		return true
	}
	if d.set.Add(1) >= doorkeeperBits/2 {
		d.set.Store(0)
		for i := range d.words {
			d.words[i].Store(0)
		}
	}
	return false
}
