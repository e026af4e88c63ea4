package engine

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// clockEvery is how many of the evaluator's questions a watch answers from
// its flag and the caller's done channel alone before it reads the clock.
// The evaluator asks before every expression, and built-ins that loop
// (numbers.range, the JSON and string sinks) ask at every step, so a policy
// that runs past its deadline is stopped within a few dozen steps of it.
const clockEvery = 64

// watch is one evaluation's topdown.Cancel. OPA's rego package, when given
// no cancel of its own, starts a goroutine per evaluation that waits on the
// context's done channel to cancel the query; a watch stops the query without
// one: it answers Cancelled from the caller's done channel (one non-blocking
// receive) and, every clockEvery questions, from the clock.
//
// Cancelled is called by the goroutine that evaluates (topdown's evaluator
// and the built-ins it calls); Cancel may be called from any goroutine.
type watch struct {
	done     <-chan struct{} // the context's done channel, nil when it has none
	start    time.Time
	timeout  time.Duration
	asked    uint32
	stopped  atomic.Bool
	deadline bool // the clock stopped it
}

var _ topdown.Cancel = (*watch)(nil)

func newWatch(ctx context.Context, timeout time.Duration) *watch {
	return &watch{done: ctx.Done(), start: time.Now(), timeout: timeout}
}

// Cancel implements topdown.Cancel.
func (w *watch) Cancel() { w.stopped.Store(true) }

// Cancelled implements topdown.Cancel.
func (w *watch) Cancelled() bool {
	if w.stopped.Load() {
		return true
	}
	if w.done != nil {
		select {
		case <-w.done:
			w.stopped.Store(true)
			return true
		default:
		}
	}
	w.asked++
	if w.asked%clockEvery == 0 && time.Since(w.start) >= w.timeout {
		w.deadline = true
		w.stopped.Store(true)
		return true
	}
	return false
}

// waits reports whether a policy may call a built-in that waits on the
// outside world (http.send, net.lookup_ip_addr, a JSON schema with a remote
// $ref): every built-in OPA marks non-deterministic counts, in any module,
// whether or not an entrypoint reaches it. Such a call does not return to
// the evaluator until it is done, so its policy is evaluated under a context
// that carries the deadline, which those built-ins honour.
func waits(c *ast.Compiler) bool {
	found := false
	for _, m := range c.Modules {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if _, isVar := r[0].Value.(ast.Var); !isVar || r[0].Equal(ast.DefaultRootDocument) || r[0].Equal(ast.InputRootDocument) {
				return false // built-ins are named by refs from a variable other than data and input
			}
			if b, ok := ast.BuiltinMap[r.String()]; ok && b.Nondeterministic {
				found = true
			}
			return found
		})
		if found {
			return true
		}
	}
	return false
}
