package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// idLen is the length of an entry's id: generation, entrypoint number,
// hash.
const idLen = 8 + 2 + 32

// id identifies an entry: its key with the entrypoint numbered.
type id [idLen]byte

func makeID(k *Key, ep uint16) id {
	var b id
	binary.BigEndian.PutUint64(b[:8], k.Generation)
	binary.BigEndian.PutUint16(b[8:10], ep)
	copy(b[10:], k.Hash[:])
	return b
}

func (b *id) generation() uint64 { return binary.BigEndian.Uint64(b[:8]) }

// bucket returns the key of the bucket b belongs in: its generation and
// entrypoint number, and the first bits bits of its hash.
func (b *id) bucket(bits int) bkey {
	var k bkey
	copy(k[:10], b[:10])
	prefix := binary.BigEndian.Uint16(b[10:12]) >> (16 - bits)
	binary.BigEndian.PutUint16(k[10:], prefix)
	return k
}

// bkey is a bucket's key in the table's one index.
type bkey [8 + 2 + 2]byte

func (k *bkey) generation() uint64 { return binary.BigEndian.Uint64(k[:8]) }

// entry is one cached decision. Only dead changes after insertion, and only
// the writer reads or writes it.
type entry struct {
	id id
	// dead is set once the entry is deleted from its bucket: the FIFO and
	// its subject's list skip it until they drop it.
	dead    bool
	size    uint32
	expires int64 // unix nanoseconds
	subject *subject
	value   any
}

// subject is one subject's entries, in insertion order. The list may hold
// dead entries: forget counts them and rebuilds the list once they are the
// majority, never modifying it in place (an invalidation may be iterating
// an older copy).
type subject struct {
	name    string
	entries []*entry
	live    int
}

// pending is an entry on its way to the writer, with its subject's name.
type pending struct {
	e       *entry
	subject string
}

// subjectReq asks the writer to delete a subject's entries.
type subjectReq struct {
	name string
	n    chan int
}

// bucket is the table's object: the live entries whose ids share its key,
// sorted by id. It is never modified once inserted; the writer inserts a
// modified copy in its place.
type bucket struct {
	key     bkey
	entries []*entry
}

func compareID(e *entry, id *id) int { return bytes.Compare(e.id[:], id[:]) }

// find returns b's entry for id, if any; b may be nil.
func (b *bucket) find(id *id) *entry {
	if b == nil {
		return nil
	}
	lo, hi := 0, len(b.entries)
	for lo < hi { // not slices.BinarySearchFunc: id would escape
		m := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(b.entries[m].id[:], id[:]); {
		case c == 0:
			return b.entries[m]
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return nil
}

// bucketIndex indexes buckets by their key, without copying it: the radix
// tree's keys point into the buckets.
type bucketIndex struct{}

func (bucketIndex) FromObject(obj any) (bool, []byte, error) {
	b, ok := obj.(*bucket)
	if !ok {
		return false, nil, errors.New("cache: not a bucket")
	}
	return true, b.key[:], nil
}

func (bucketIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, errors.New("cache: the index takes one argument")
	}
	key, ok := args[0].([]byte)
	if !ok {
		return nil, errors.New("cache: the index takes a []byte")
	}
	return key, nil
}

// wtxn is the writer's transaction. Buckets are read from the snapshot
// taken before it, or from dirty once written: reading a write transaction's
// modified index makes go-memdb clone it, which turns every later write into
// a full path copy.
type wtxn struct {
	before, txn *memdb.Txn
	// dirty holds the buckets this transaction wrote (nil: deleted).
	dirty map[bkey]*bucket
}

// begin starts a write transaction; commit ends it.
func (c *Cache) begin() *wtxn {
	w := &c.w
	w.before = c.db.Txn(false)
	w.txn = c.db.Txn(true)
	if w.dirty == nil {
		w.dirty = map[bkey]*bucket{}
	}
	clear(w.dirty)
	return w
}

func (w *wtxn) bucket(k *bkey) *bucket {
	if b, ok := w.dirty[*k]; ok {
		return b
	}
	raw, err := w.before.First(table, "id", k[:])
	if err != nil {
		return nil
	}
	b, _ := raw.(*bucket)
	return b
}

func (w *wtxn) put(b *bucket) {
	if err := w.txn.Insert(table, b); err != nil {
		panic("cache: " + err.Error()) // only a bucket's own key can fail it
	}
	w.dirty[b.key] = b
}

func (w *wtxn) delete(b *bucket) {
	if err := w.txn.Delete(table, b); err != nil {
		panic("cache: " + err.Error()) // the bucket was read from this table
	}
	w.dirty[b.key] = nil
}

// insert adds e to its bucket, unless an entry with its id is there.
func (c *Cache) insert(w *wtxn, e *entry) bool {
	k := e.id.bucket(c.bits)
	b := w.bucket(&k)
	var old []*entry
	if b != nil {
		old = b.entries
	} else {
		c.bytes.Add(bucketOverhead)
	}
	i, found := slices.BinarySearchFunc(old, &e.id, compareID)
	if found {
		return false
	}
	entries := make([]*entry, len(old)+1)
	copy(entries, old[:i])
	entries[i] = e
	copy(entries[i+1:], old[i:])
	w.put(&bucket{key: k, entries: entries})
	return true
}

// unlink takes e out of its bucket, deleting the bucket when e was its last
// entry.
func (c *Cache) unlink(w *wtxn, e *entry) bool {
	k := e.id.bucket(c.bits)
	b := w.bucket(&k)
	if b == nil {
		return false
	}
	i := slices.Index(b.entries, e)
	switch {
	case i < 0:
		return false
	case len(b.entries) == 1:
		w.delete(b)
		c.bytes.Add(-bucketOverhead)
	default:
		w.put(&bucket{key: k, entries: slices.Delete(slices.Clone(b.entries), i, i+1)})
	}
	return true
}
