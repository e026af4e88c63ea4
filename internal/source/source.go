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
	"slices"
	"strings"
	"sync"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"

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
	// optional bundles are activated only when no other bundle claims one of
	// their roots (the built-in policy library next to user bundles).
	optional map[string]bool

	mu      sync.Mutex
	current map[string]*bundle.Bundle
	skipped map[string]string // optional bundle → bundle whose roots overlap
	// failing marks sources whose latest delivery failed (to read, verify
	// or activate): their last error stays reported until they deliver a
	// bundle that serves.
	failing map[string]bool
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
	return &Manager{
		act: act, status: reg, logger: logger, names: names,
		optional: map[string]bool{}, current: map[string]*bundle.Bundle{}, skipped: map[string]string{},
		failing: map[string]bool{},
	}, nil
}

// MarkOptional makes the named source optional: its bundle is left out of
// an activation in which another bundle's roots overlap its own, instead of
// failing the activation. Call it before the first Update.
func (m *Manager) MarkOptional(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.optional[name] = true
}

// withoutOverlaps returns set without the optional bundles whose roots
// overlap another bundle's, logging and reporting each change of that
// choice.
func (m *Manager) withoutOverlaps(set map[string]*bundle.Bundle) map[string]*bundle.Bundle {
	out, cloned := set, false
	for _, name := range slices.Sorted(maps.Keys(m.optional)) {
		b, ok := set[name]
		if !ok {
			continue
		}
		culprit, claimed := "", []string(nil)
		for _, other := range slices.Sorted(maps.Keys(set)) {
			if other == name || m.optional[other] {
				continue
			}
			if claimed = overlapping(b, set[other]); len(claimed) > 0 {
				culprit = other
				break
			}
		}
		if culprit != "" {
			if !cloned {
				out, cloned = maps.Clone(set), true
			}
			delete(out, name)
		}
		if m.skipped[name] == culprit {
			continue
		}
		m.skipped[name] = culprit
		if culprit == "" {
			m.logger.Info("optional bundle served again: no other bundle claims its roots", "bundle", name)
			m.status.LeftOut(name, "")
			continue
		}
		reason := fmt.Sprintf("bundle %q claims its roots %s", culprit, strings.Join(claimed, ", "))
		m.logger.Warn("optional bundle left out: another bundle claims its roots; its policy does not serve",
			"bundle", name, "claimed_by", culprit, "roots", claimed)
		m.status.LeftOut(name, reason)
	}
	return out
}

// overlapping returns the roots of a that overlap a root of b.
func overlapping(a, b *bundle.Bundle) []string {
	var out []string
	for _, ra := range rootsOf(a) {
		for _, rb := range rootsOf(b) {
			if opabundle.RootPathsOverlap(ra, rb) {
				if ra == "" {
					ra = "(all of data)"
				}
				out = append(out, ra)
				break
			}
		}
	}
	return out
}

func rootsOf(b *bundle.Bundle) []string {
	if b.Manifest.Roots == nil {
		return []string{""} // no roots: the bundle claims all of data
	}
	return *b.Manifest.Roots
}

// Update activates b as the named source's bundle together with the latest
// bundle of every other source.
func (m *Manager) Update(ctx context.Context, name string, b *bundle.Bundle) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.names[name] {
		return fmt.Errorf("unknown bundle source %q", name)
	}
	if old, ok := m.current[name]; ok && old.Equal(*b) && old.Manifest.Equal(b.Manifest) {
		// Content and manifest unchanged: keep the active snapshot (and its
		// caches). A source that failed since now delivers what serves.
		m.recovered(name)
		return nil
	}
	next := maps.Clone(m.current)
	next[name] = b
	if len(next) < len(m.names) {
		m.current = next // wait for the other sources before the first activation
		m.recovered(name)
		m.logger.Info("bundle loaded, waiting for the other sources", "bundle", name, "revision", b.Manifest.Revision)
		return nil
	}
	active := m.withoutOverlaps(next)
	if _, err := m.act.Activate(ctx, active); err != nil {
		m.failing[name] = true
		m.status.Failure(name, err, time.Now())
		m.logger.Error("bundle rejected; the previous revision keeps serving", "bundle", name, "revision", b.Manifest.Revision, "err", err)
		return err
	}
	m.current = next
	delete(m.failing, name)
	now := time.Now()
	for n, nb := range active {
		if !m.failing[n] { // a source whose latest delivery failed keeps its error
			m.status.Success(n, nb.Manifest.Revision, now)
		}
	}
	return nil
}

// recovered clears the reported error of a source whose latest delivery
// failed, once it delivers a good bundle again. Call with m.mu held.
func (m *Manager) recovered(name string) {
	if m.failing[name] {
		delete(m.failing, name)
		m.status.Recovered(name)
		m.logger.Info("bundle source recovered", "bundle", name)
	}
}

// Failure records a source error that happened before activation (download,
// read, verification).
func (m *Manager) Failure(name string, err error) {
	m.mu.Lock()
	m.failing[name] = true
	m.mu.Unlock()
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
