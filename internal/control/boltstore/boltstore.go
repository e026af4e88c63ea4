// Package boltstore keeps the runtime controls (approvals, grants,
// quarantines) in an embedded bbolt database on disk: every change is one
// fsync'd transaction, so a crash or restart loses nothing that was
// acknowledged. It implements control.Store and knows nothing of what the
// records mean.
package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/verdictpdp/verdict/internal/control"
)

// FileName is the database's file in the configured directory.
const FileName = "controls.db"

// Store is a bbolt database of control records.
type Store struct {
	db *bolt.DB
}

var _ control.Store = (*Store)(nil)

// Open opens (or creates) the database in dir. Another process holding it
// is an error after a second, not a hang.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("approvals directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("approvals database %s is in use by another process", path)
		}
		return nil, fmt.Errorf("approvals database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, k := range control.Kinds {
			if _, err := tx.CreateBucketIfNotExists([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("approvals database %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Load implements control.Store.
func (s *Store) Load(context.Context) (map[control.Kind]map[string][]byte, error) {
	out := make(map[control.Kind]map[string][]byte, len(control.Kinds))
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, k := range control.Kinds {
			t := map[string][]byte{}
			b := tx.Bucket([]byte(k))
			if b == nil {
				continue
			}
			err := b.ForEach(func(id, doc []byte) error {
				t[string(id)] = append([]byte(nil), doc...)
				return nil
			})
			if err != nil {
				return err
			}
			out[k] = t
		}
		return nil
	})
	return out, err
}

// Apply implements control.Store: one transaction, on disk when it
// returns.
func (s *Store) Apply(_ context.Context, changes []control.Change) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, ch := range changes {
			b := tx.Bucket([]byte(ch.Kind))
			if b == nil {
				return fmt.Errorf("unknown table %q", ch.Kind)
			}
			var err error
			if ch.Doc == nil {
				err = b.Delete([]byte(ch.ID))
			} else {
				err = b.Put([]byte(ch.ID), ch.Doc)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Close implements control.Store.
func (s *Store) Close() error { return s.db.Close() }
