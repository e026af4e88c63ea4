package cache

// fifo is a ring buffer of entries in insertion order. It grows by
// doubling and shrinks by half once a quarter full, so it holds between one
// and four slots per entry (one to two while the cache is full).
type fifo struct {
	buf  []*entry
	head int
	n    int
}

func (q *fifo) len() int { return q.n }

func (q *fifo) push(e *entry) {
	if q.n == len(q.buf) {
		q.resize(max(2*len(q.buf), 64))
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
}

// front returns the oldest entry; the fifo must not be empty.
func (q *fifo) front() *entry { return q.buf[q.head] }

// pop drops the oldest entry; the fifo must not be empty.
func (q *fifo) pop() {
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if len(q.buf) > 64 && q.n < len(q.buf)/4 {
		q.resize(len(q.buf) / 2)
	}
}

// keep drops, in place, the entries keep rejects.
func (q *fifo) keep(keep func(*entry) bool) {
	n := 0
	for i := range q.n {
		e := q.buf[(q.head+i)%len(q.buf)]
		if keep(e) {
			q.buf[(q.head+n)%len(q.buf)] = e
			n++
		}
	}
	for i := n; i < q.n; i++ {
		q.buf[(q.head+i)%len(q.buf)] = nil
	}
	q.n = n
	if len(q.buf) > 64 && q.n < len(q.buf)/4 {
		q.resize(max(64, len(q.buf)/2))
	}
}

func (q *fifo) resize(size int) {
	buf := make([]*entry, size)
	for i := range q.n {
		buf[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = buf, 0
}
