package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// BenchmarkGet measures a hit: one go-memdb read transaction and lookup.
func BenchmarkGet(b *testing.B) {
	c, err := New(Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	k := key(1, "envoy/authz/allow", "a")
	c.Put(k, "", "allow", 100)
	c.Flush()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(k); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkPutFlood measures inserting distinct decisions into a full
// cache (every insert evicts one), writer included: entries are queued and
// flushed in batches, as under a flood of unique requests.
func BenchmarkPutFlood(b *testing.B) {
	c, err := New(Limits{MaxEntries: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	var buf [8]byte
	next := func(i uint64) *Key {
		binary.BigEndian.PutUint64(buf[:], i)
		return &Key{Generation: 1, Entrypoint: "envoy/authz/allow", Hash: sha256.Sum256(buf[:])}
	}
	var i uint64
	for ; i < 10_000; i++ {
		c.Put(next(i), "", "allow", 100)
	}
	c.Flush()
	b.ReportAllocs()
	for b.Loop() {
		i++
		c.Put(next(i), "", "allow", 100)
		if i%maxBatch == 0 {
			c.Flush()
		}
	}
	c.Flush()
}
