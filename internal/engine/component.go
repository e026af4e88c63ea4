package engine

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Component compiles something the request path needs from a snapshot's
// bundle data (data-loss detectors, containment thresholds) at
// activation. An error fails the activation: a bundle that asks for a
// protection Verdict cannot give is never served. The value is kept on
// the snapshot, so it always matches the policy that decides.
type Component func(ctx context.Context, data DataReader) (any, error)

// DataReader reads a snapshot's bundle data.
type DataReader interface {
	// Data returns the JSON value at data.<path...> (map[string]any,
	// []any, string, json.Number, bool or nil), and false when there is
	// none.
	Data(ctx context.Context, path ...string) (any, bool, error)
}

// AddComponent registers c under name; every later activation compiles it.
// Register components before the first activation.
func (e *Engine) AddComponent(name string, c Component) {
	e.activateMu.Lock()
	defer e.activateMu.Unlock()
	if e.components == nil {
		e.components = map[string]Component{}
	}
	e.components[name] = c
}

// Component returns the value the named component compiled for this
// snapshot, or nil.
func (s *Snapshot) Component(name string) any {
	if s == nil {
		return nil
	}
	return s.components[name]
}

// Data implements DataReader.
func (s *Snapshot) Data(ctx context.Context, path ...string) (any, bool, error) {
	if s.store == nil {
		return nil, false, nil
	}
	v, err := storage.ReadOne(ctx, s.store, storage.Path(path))
	if storage.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if av, ok := v.(ast.Value); ok {
		if v, err = ast.JSON(av); err != nil {
			return nil, false, err
		}
	}
	return v, true, nil
}

// buildComponents compiles every registered component for snap.
func (e *Engine) buildComponents(ctx context.Context, snap *Snapshot) error {
	if len(e.components) == 0 {
		return nil
	}
	snap.components = make(map[string]any, len(e.components))
	for name, c := range e.components {
		v, err := c(ctx, snap)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		snap.components[name] = v
	}
	return nil
}
