package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// MaxDataBytes bounds a data.json read by import and scan.
const MaxDataBytes = 64 << 20

// Document is a bundle data.json ({"mcp": {...}}) and the order of its
// keys, kept when it is written back.
type Document struct {
	Data  map[string]any
	order keyOrder
}

// ReadData reads a bundle data.json, numbers as json.Number.
func ReadData(path string) (*Document, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if len(b) > MaxDataBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrLimit, path, MaxDataBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", path, err)
	}
	if data == nil {
		return nil, fmt.Errorf("catalog: %s is not a JSON object", path)
	}
	order, err := readOrder(b)
	if err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", path, err)
	}
	return &Document{Data: data, order: order}, nil
}

// ServerOf returns data.mcp.servers[name], nil when absent.
func ServerOf(data map[string]any, name string) map[string]any {
	m, _ := data["mcp"].(map[string]any)
	s, _ := m["servers"].(map[string]any)
	srv, _ := s[name].(map[string]any)
	return srv
}

// SetServer sets data.mcp.servers[name], creating mcp and servers.
func SetServer(data map[string]any, name string, srv map[string]any) error {
	m, ok := data["mcp"].(map[string]any)
	if !ok {
		if data["mcp"] != nil {
			return errors.New("catalog: data member mcp is not an object")
		}
		m = map[string]any{}
		data["mcp"] = m
	}
	s, ok := m["servers"].(map[string]any)
	if !ok {
		if m["servers"] != nil {
			return errors.New("catalog: data member mcp.servers is not an object")
		}
		s = map[string]any{}
		m["servers"] = s
	}
	s[name] = srv
	return nil
}

// Encode writes v as JSON with 2-space indentation, keys sorted, without
// HTML escaping, ending in a newline.
func Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return buf.Bytes(), nil
}

// Write writes the document to path atomically (a temporary file in the
// same directory, synced, then renamed over path, keeping path's mode),
// indented by two spaces, keys in the order they were read, new keys
// sorted.
func (d *Document) Write(path string) error {
	b, err := encodeOrdered(d.Data, d.order)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		done = true
		return fmt.Errorf("catalog: %w", err)
	}
	done = true
	return nil
}

// ServerObject renders an imported server as a catalog object, for
// printing without --data.
func ServerObject(s *Server) map[string]any {
	out, _ := Merge(nil, s, false)
	return out
}
