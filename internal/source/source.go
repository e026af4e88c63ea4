// Package source keeps bundles up to date: it watches local paths, polls
// HTTP(S) servers, and hands each new bundle to a Manager that activates the
// whole set on the engine. A bundle that fails to load, verify or compile is
// reported and never replaces the last good one.
package source

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/status"
)

// Source produces bundles for one configured location.
type Source interface {
	// Name is the bundle name: unique among sources, used in revisions.
	Name() string
	// Location describes where bundles come from, without credentials.
	Location() string
	// Run delivers bundles to sink until ctx ends.
	Run(ctx context.Context, sink Sink)
}

// Sink receives what sources produce. Update returns the activation error,
// which a source uses to decide what to persist.
type Sink interface {
	Update(ctx context.Context, name string, b *bundle.Bundle) error
	Failure(name string, err error)
}

var _ Sink = (*Manager)(nil)

// Activator is the part of the engine the manager needs.
type Activator interface {
	Activate(ctx context.Context, bundles map[string]*bundle.Bundle) (*engine.Snapshot, error)
}

// Manager collects the latest good bundle of each source and activates the
// set once every source has delivered one.
type Manager struct {
	act    Activator
	status *status.Registry
	logger *slog.Logger
	names  map[string]bool

	mu      sync.Mutex
	current map[string]*bundle.Bundle
}

// NewManager returns a manager for the given sources.
func NewManager(act Activator, reg *status.Registry, logger *slog.Logger, sources []Source) (*Manager, error) {
	names := make(map[string]bool, len(sources))
	for _, s := range sources {
		if names[s.Name()] {
			return nil, fmt.Errorf("two bundle sources are named %q: give each a distinct name", s.Name())
		}
		names[s.Name()] = true
		reg.Register(s.Name(), s.Location())
	}
	return &Manager{act: act, status: reg, logger: logger, names: names, current: map[string]*bundle.Bundle{}}, nil
}

// Update activates b as the named source's bundle together with the latest
// bundle of every other source.
func (m *Manager) Update(ctx context.Context, name string, b *bundle.Bundle) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.names[name] {
		return fmt.Errorf("unknown bundle source %q", name)
	}
	if old, ok := m.current[name]; ok && old.Equal(*b) {
		return nil // content unchanged: keep the active snapshot (and its caches)
	}
	next := maps.Clone(m.current)
	next[name] = b
	if len(next) < len(m.names) {
		m.current = next // wait for the other sources before the first activation
		m.logger.Info("bundle loaded, waiting for the other sources", "bundle", name, "revision", b.Manifest.Revision)
		return nil
	}
	if _, err := m.act.Activate(ctx, next); err != nil {
		m.status.Failure(name, err, time.Now())
		m.logger.Error("bundle rejected; the previous revision keeps serving", "bundle", name, "revision", b.Manifest.Revision, "err", err)
		return err
	}
	m.current = next
	now := time.Now()
	for n, nb := range next {
		m.status.Success(n, nb.Manifest.Revision, now)
	}
	return nil
}

// Failure records a source error that happened before activation (download,
// read, verification).
func (m *Manager) Failure(name string, err error) {
	m.status.Failure(name, err, time.Now())
	m.logger.Error("bundle source failed; the previous revision keeps serving", "bundle", name, "err", err)
}

// Run starts every source and blocks until ctx ends and all have returned.
func Run(ctx context.Context, sources []Source, sink Sink) {
	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Go(func() { s.Run(ctx, sink) })
	}
	wg.Wait()
}
