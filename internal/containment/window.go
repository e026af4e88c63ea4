package containment

import "time"

// maxBuckets bounds a window's buckets: a window of up to 30 seconds has
// one bucket a second; a longer one 30 buckets of window/30 (rounded up),
// so it is measured to within one bucket.
const maxBuckets = 30

// bucket counts one slice of time: hits (denies, findings, destructive
// calls, poisoned entries) and calls (deny_rate's denominator).
type bucket struct {
	// epoch is the slice's number (Unix seconds / width, which fits 32
	// bits until 2106), 0 when unused.
	epoch       uint32
	hits, calls uint32
}

// ring is a sliding window of buckets.
type ring struct {
	width   int64 // seconds per bucket
	buckets []bucket
}

func newRing(window time.Duration) ring {
	s := int64(window / time.Second)
	if s < 1 {
		s = 1
	}
	width := int64(1)
	if s > maxBuckets {
		width = (s + maxBuckets - 1) / maxBuckets
	}
	n := (s + width - 1) / width
	return ring{width: width, buckets: make([]bucket, n)}
}

// epoch is the bucket number of now (Unix seconds, not negative).
func (r *ring) epoch(now int64) uint32 {
	return uint32(min(now/r.width, 1<<32-1)) //nolint:gosec // bounded above; now is not negative
}

// add counts at now (Unix seconds).
func (r *ring) add(now int64, hits, calls uint32) {
	e := r.epoch(now)
	b := &r.buckets[int(e%uint32(len(r.buckets)))] //nolint:gosec // at most maxBuckets
	if b.epoch != e {
		*b = bucket{epoch: e}
	}
	b.hits = satAdd(b.hits, hits)
	b.calls = satAdd(b.calls, calls)
}

// sum totals the buckets of the window that ends at now.
func (r *ring) sum(now int64) (hits, calls uint64) {
	e := int64(r.epoch(now))
	oldest := e - int64(len(r.buckets))
	for _, b := range r.buckets {
		if int64(b.epoch) > oldest && int64(b.epoch) <= e {
			hits += uint64(b.hits)
			calls += uint64(b.calls)
		}
	}
	return hits, calls
}

// reset forgets everything counted.
func (r *ring) reset() { clear(r.buckets) }

func satAdd(a, b uint32) uint32 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint32(0)
}
