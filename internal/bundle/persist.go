package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store keeps the last good archive of each remote bundle on disk so a
// restart can serve it while the bundle server is unreachable.
type Store struct {
	dir string
}

// NewStore returns a Store rooted at dir. An empty dir disables persistence:
// Save and Load become no-ops.
func NewStore(dir string) *Store { return &Store{dir: dir} }

// Enabled reports whether the store persists anything.
func (s *Store) Enabled() bool { return s != nil && s.dir != "" }

type persistedMeta struct {
	ETag string `json:"etag"`
}

// Save writes raw (a .tar.gz) and its ETag for the named bundle, atomically:
// a crash leaves either the previous or the new archive, never half of one.
func (s *Store) Save(name string, raw []byte, etag string) error {
	if !s.Enabled() {
		return nil
	}
	dir := filepath.Join(s.dir, safeName(name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("persist bundle %q: %w", name, err)
	}
	meta, err := json.Marshal(persistedMeta{ETag: etag})
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "bundle.tar.gz"), raw); err != nil {
		return fmt.Errorf("persist bundle %q: %w", name, err)
	}
	if err := writeAtomic(filepath.Join(dir, "meta.json"), meta); err != nil {
		return fmt.Errorf("persist bundle %q: %w", name, err)
	}
	return nil
}

// Load returns the persisted archive and ETag of the named bundle. It returns
// an error wrapping fs.ErrNotExist when nothing was persisted.
func (s *Store) Load(name string) (raw []byte, etag string, err error) {
	if !s.Enabled() {
		return nil, "", fs.ErrNotExist
	}
	dir := filepath.Join(s.dir, safeName(name))
	raw, err = os.ReadFile(filepath.Join(dir, "bundle.tar.gz"))
	if err != nil {
		return nil, "", err
	}
	var meta persistedMeta
	if b, err := os.ReadFile(filepath.Join(dir, "meta.json")); err == nil {
		_ = json.Unmarshal(b, &meta) // an unreadable ETag only costs one full download
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", err
	}
	return raw, meta.ETag, nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// safeName maps a bundle name onto one path segment.
func safeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
