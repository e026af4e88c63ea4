package mcpnative_test

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/verdictpdp/verdict/internal/engine"
)

// byteSource draws the generator's choices from fuzz bytes, so that a
// mutated byte changes one choice of the request; past the end it goes on
// pseudo-randomly (a constant source would never end rand's rejection
// loops).
type byteSource struct {
	b    []byte
	rest *rand.PCG
}

func (s *byteSource) Uint64() uint64 {
	if len(s.b) < 8 {
		return s.rest.Uint64()
	}
	v := binary.LittleEndian.Uint64(s.b)
	s.b = s.b[8:]
	return v
}

const fuzzCatalogs = 16

var (
	fuzzSnapsMu sync.Mutex
	fuzzSnaps   = map[uint64]fuzzSnap{}
)

type fuzzSnap struct {
	snap *engine.Snapshot
	data map[string]any
}

// fuzzSnapshot activates generated catalog seed once per process.
func fuzzSnapshot(t *testing.T, seed uint64) fuzzSnap {
	t.Helper()
	fuzzSnapsMu.Lock()
	defer fuzzSnapsMu.Unlock()
	if fs, ok := fuzzSnaps[seed]; ok {
		return fs
	}
	data := jsonData(t, newGen(1000+seed).catalog(16+int(seed%4)*20))
	snap, ev := activate(t, libraryBundle(t), data)
	if ev.Kind != engine.EvaluatorNative {
		t.Logf("catalog %d runs in Rego: %s", seed, ev.Reason)
	}
	fs := fuzzSnap{snap, data}
	fuzzSnaps[seed] = fs
	return fs
}

// FuzzNativeDifferential compares the native evaluator with the Rego
// library on generated catalogs (the first byte picks one of 16) and
// requests drawn from the remaining bytes: every decision the native
// evaluator makes must be the value Rego gives.
func FuzzNativeDifferential(f *testing.F) {
	for i := range 64 {
		seed := make([]byte, 1+8*24)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range seed {
			seed[j] = byte(r.UintN(256))
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		fs := fuzzSnapshot(t, uint64(b[0])%fuzzCatalogs)
		g := &gen{r: rand.New(&byteSource{b: b[1:], rest: rand.NewPCG(uint64(len(b)), uint64(b[0]))})}
		var in map[string]any
		if g.p(20) {
			in = g.listRequest(fs.data)
		} else {
			in = g.request()
		}
		if _, err := differ(fs.snap, in); err != nil {
			t.Fatalf("input %s:\n%v", short(in), err)
		}
	})
}
