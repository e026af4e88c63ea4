// Package status records the health of each bundle source (last success,
// last error, revision) for the admin endpoints. It holds no policy state and
// imports nothing from the rest of the service.
package status

import (
	"slices"
	"sync"
	"time"
)

// Source is the reported state of one bundle source.
type Source struct {
	Name        string    `json:"name"`
	Location    string    `json:"location"`
	Revision    string    `json:"revision,omitempty"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Failures    uint64    `json:"failures"`
	// LeftOut says why the bundle is not served although it loaded: an
	// optional bundle (the built-in library) gives way to a bundle that
	// claims its roots.
	LeftOut string `json:"left_out,omitempty"`
}

// Registry is safe for concurrent use.
type Registry struct {
	mu      sync.Mutex
	sources map[string]*Source
	observe func(name string, ok bool)
}

// Observe registers fn to be told of every success and failure (metrics).
// Call it before the sources start.
func (r *Registry) Observe(fn func(name string, ok bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observe = fn
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{sources: map[string]*Source{}} }

// Register adds a source so it is reported before its first load.
func (r *Registry) Register(name, location string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sources[name]; !ok {
		r.sources[name] = &Source{Name: name, Location: location}
	}
}

func (r *Registry) get(name string) *Source {
	s, ok := r.sources[name]
	if !ok {
		s = &Source{Name: name}
		r.sources[name] = s
	}
	return s
}

// Success records that revision of the named source was activated.
func (r *Registry) Success(name, revision string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(name)
	s.Revision = revision
	s.LastSuccess = at
	s.LastError = ""
	if r.observe != nil {
		r.observe(name, true)
	}
}

// Recovered records that the named source, after a failure, delivers a
// bundle that serves again although its content did not change (a fixed
// file equal to the active one): the last error is cleared.
func (r *Registry) Recovered(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.get(name).LastError = ""
}

// LeftOut records why the named bundle is left out of the active set, or
// with an empty reason that it is served again. A left-out bundle has no
// active revision.
func (r *Registry) LeftOut(name, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(name)
	s.LeftOut = reason
	if reason != "" {
		s.Revision = ""
	}
}

// Failure records that the named source failed to download, verify or
// activate. The previous revision keeps serving.
func (r *Registry) Failure(name string, err error, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(name)
	s.LastError = err.Error()
	s.LastErrorAt = at
	s.Failures++
	if r.observe != nil {
		r.observe(name, false)
	}
}

// Sources returns a copy of every source's state, sorted by name.
func (r *Registry) Sources() []Source {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Source, 0, len(r.sources))
	for _, s := range r.sources {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Source) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
