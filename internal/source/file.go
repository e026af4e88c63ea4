package source

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/verdictpdp/verdict/internal/bundle"
)

// fileDebounce lets an editor or `git checkout` finish writing before reload.
const fileDebounce = 150 * time.Millisecond

// fileRescan re-reads the path even without events, covering file systems
// where inotify is unreliable (network mounts, some container volumes).
const fileRescan = 30 * time.Second

// File watches a bundle directory or .tar.gz file and reloads it on change.
type File struct {
	name   string
	path   string
	reader *bundle.Reader
	logger *slog.Logger
}

// NewFile returns a source for a local directory or archive.
func NewFile(name, path string, reader *bundle.Reader, logger *slog.Logger) *File {
	return &File{name: name, path: path, reader: reader, logger: logger}
}

// Name implements Source.
func (f *File) Name() string { return f.name }

// Location implements Source.
func (f *File) Location() string { return f.path }

// Load reads the bundle once.
func (f *File) Load() (*bundle.Bundle, error) { return f.reader.ReadPath(f.name, f.path) }

// Run implements Source.
func (f *File) Run(ctx context.Context, sink Sink) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		f.logger.Warn("file watching unavailable; rescanning periodically", "bundle", f.name, "err", err)
	} else {
		defer func() { _ = w.Close() }()
		f.watch(w)
	}

	f.reload(ctx, sink)

	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	rescan := time.NewTicker(fileRescan)
	defer rescan.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !f.concerns(ev.Name) {
				continue
			}
			if ev.Has(fsnotify.Create) && w != nil {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					f.watch(w) // a new sub-directory, or the path itself re-created
				}
			}
			debounce.Reset(fileDebounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			f.logger.Warn("file watch error", "bundle", f.name, "err", err)
		case <-debounce.C:
			f.reload(ctx, sink)
		case <-rescan.C:
			f.reload(ctx, sink)
		}
	}
}

func (f *File) reload(ctx context.Context, sink Sink) {
	b, err := f.Load()
	if err != nil {
		sink.Failure(f.name, err)
		return
	}
	_ = sink.Update(ctx, f.name, b) // the sink records activation failures
}

// concerns reports whether an event on name can change the bundle: the
// parent directory is watched, but its other entries are not ours.
func (f *File) concerns(name string) bool {
	root := filepath.Clean(f.path)
	name = filepath.Clean(name)
	if name == root {
		return true
	}
	rel, err := filepath.Rel(root, name)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// watch adds the path's parent (to see the path replaced) and, for a
// directory, every directory below it. Adding a watch twice is harmless.
func (f *File) watch(w *fsnotify.Watcher) {
	_ = w.Add(filepath.Dir(filepath.Clean(f.path)))
	err := filepath.WalkDir(f.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // unreadable entries are reported by the reader
		}
		if d.IsDir() {
			if werr := w.Add(p); werr != nil {
				f.logger.Debug("cannot watch directory", "path", p, "err", werr)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.logger.Debug("walk bundle directory", "err", err)
	}
}
