package gateway

import (
	"encoding/json"
	"sync"
	"time"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// Conn is the state of one MCP connection (an HTTP session, a stdio
// process, or one sessionless POST): the client requests in flight, whose
// answers are checked, and the server requests the client may answer.
// Both are bounded; anything else claiming to be an answer is dropped.
type Conn struct {
	mu    sync.Mutex
	max   int
	calls map[string]*call
	asked map[string]string // server request id → method
	// tasks are the task-augmented tools/calls of this connection, by the
	// task id the server gave: a tasks/result answer is checked as the
	// call's result.
	tasks    map[string]*mcpv1.CheckRequest
	lastUsed time.Time
	// version is the protocol version initialize asked for, then the one
	// the server agreed to: the version of requests whose transport does
	// not say (stdio, the initialize POST itself).
	version string
}

func (c *Conn) protocolVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

func (c *Conn) setVersion(v string) {
	if v == "" || len(v) > 64 {
		return
	}
	c.mu.Lock()
	c.version = v
	c.mu.Unlock()
}

// call is a client request forwarded upstream, awaiting its answer; nil
// while its id is reserved and the request is being decided.
type call struct {
	id     json.RawMessage
	method string
	req    *mcpv1.CheckRequest
	// task is the task id a tasks/result or tasks/get names.
	task string
}

// NewConn returns the state of a new connection.
func (e *Enforcer) NewConn() *Conn {
	return &Conn{
		max: e.opts.MaxPending, calls: map[string]*call{}, asked: map[string]string{},
		tasks: map[string]*mcpv1.CheckRequest{}, lastUsed: time.Now(),
	}
}

func (c *Conn) touch() {
	c.mu.Lock()
	c.lastUsed = time.Now()
	c.mu.Unlock()
}

func (c *Conn) idle(now time.Time, ttl time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls) == 0 && now.Sub(c.lastUsed) > ttl
}

// Pending reports whether the call with key still awaits its answer.
func (c *Conn) Pending(key string) bool { return c.inFlight(key) }

func (c *Conn) inFlight(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.calls[key]
	return ok && cl != nil
}

// reservation is what reserve did with an id.
type reservation int

const (
	reserved reservation = iota
	reserveInUse
	reserveFull
)

// reserve takes key for a request being decided.
func (c *Conn) reserve(key string) reservation {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.calls[key]; ok {
		return reserveInUse
	}
	if len(c.calls) >= c.max {
		return reserveFull
	}
	c.calls[key] = nil
	return reserved
}

// release gives back a reserved key whose request was not forwarded.
func (c *Conn) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.calls[key]; ok && cl == nil {
		delete(c.calls, key)
	}
}

// fill records the forwarded request of a reserved key.
func (c *Conn) fill(key string, cl *call) {
	c.mu.Lock()
	c.calls[key] = cl
	c.mu.Unlock()
}

// take removes and returns the forwarded request of key; a key still
// being decided was never forwarded, so nothing answers it.
func (c *Conn) take(key string) (*call, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.calls[key]
	if !ok || cl == nil {
		return nil, false
	}
	delete(c.calls, key)
	c.lastUsed = time.Now()
	return cl, true
}

// addTask binds a task id the server gave to the call that created it.
func (c *Conn) addTask(id string, req *mcpv1.CheckRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tasks) < c.max {
		c.tasks[id] = req
	}
}

func (c *Conn) task(id string) (*mcpv1.CheckRequest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, ok := c.tasks[id]
	return req, ok
}

func (c *Conn) ask(key, method string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.asked[key]; dup || len(c.asked) >= c.max {
		return false
	}
	c.asked[key] = method
	return true
}

func (c *Conn) takeAsked(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.asked[key]
	delete(c.asked, key)
	return m, ok
}
