package source

import (
	"context"
	"io/fs"

	"github.com/verdictpdp/verdict/internal/bundle"
)

// Static delivers one bundle read from a file system (such as the default
// bundle embedded in the binary) once, and never changes.
type Static struct {
	name     string
	location string
	fsys     fs.FS
	reader   *bundle.Reader
}

// NewStatic returns a source for a bundle held in fsys.
func NewStatic(name, location string, fsys fs.FS, reader *bundle.Reader) *Static {
	return &Static{name: name, location: location, fsys: fsys, reader: reader}
}

// Name implements Source.
func (s *Static) Name() string { return s.name }

// Location implements Source.
func (s *Static) Location() string { return s.location }

// Run implements Source.
func (s *Static) Run(ctx context.Context, sink Sink) {
	b, err := s.Load()
	if err != nil {
		sink.Failure(s.name, err)
		return
	}
	_ = sink.Update(ctx, s.name, b) // the sink records failures
}

// Load reads the bundle.
func (s *Static) Load() (*bundle.Bundle, error) { return s.reader.ReadFS(s.name, s.fsys) }
