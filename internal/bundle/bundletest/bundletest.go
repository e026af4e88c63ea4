// Package bundletest builds OPA bundles for tests: directories, .tar.gz
// archives and signed archives, written with OPA's own bundle writer.
package bundletest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// Spec describes a bundle: Rego modules by file name, data and manifest.
type Spec struct {
	Revision string
	Roots    []string
	Modules  map[string]string
	Data     map[string]any
}

func (s Spec) bundle(t testing.TB) opabundle.Bundle {
	t.Helper()
	b := opabundle.Bundle{Data: s.Data}
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	b.Manifest.Revision = s.Revision
	if s.Roots != nil {
		roots := append([]string(nil), s.Roots...)
		b.Manifest.Roots = &roots
	}
	b.Manifest.Init()
	for name, src := range s.Modules {
		mod, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("bundletest: parse %s: %v", name, err)
		}
		b.Modules = append(b.Modules, opabundle.ModuleFile{URL: name, Path: name, Raw: []byte(src), Parsed: mod})
	}
	return b
}

// Archive returns the bundle as a .tar.gz.
func Archive(t testing.TB, s Spec) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := opabundle.NewWriter(&buf).Write(s.bundle(t)); err != nil {
		t.Fatalf("bundletest: write: %v", err)
	}
	return buf.Bytes()
}

// SignedArchive returns the bundle as a .tar.gz signed with privateKeyPEM
// (RS256) under keyID.
func SignedArchive(t testing.TB, s Spec, privateKeyPEM, keyID string) []byte {
	t.Helper()
	b := s.bundle(t)
	if err := b.GenerateSignature(opabundle.NewSigningConfig(privateKeyPEM, "RS256", ""), keyID, false); err != nil {
		t.Fatalf("bundletest: sign: %v", err)
	}
	var buf bytes.Buffer
	if err := opabundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatalf("bundletest: write: %v", err)
	}
	return buf.Bytes()
}

// WriteDir writes the bundle as a directory under dir and returns dir.
func WriteDir(t testing.TB, dir string, s Spec) string {
	t.Helper()
	manifest := map[string]any{"revision": s.Revision}
	if s.Roots != nil {
		manifest["roots"] = s.Roots
	}
	writeJSON(t, filepath.Join(dir, ".manifest"), manifest)
	if s.Data != nil {
		writeJSON(t, filepath.Join(dir, "data.json"), s.Data)
	}
	for name, src := range s.Modules {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ReplaceFile writes data to path atomically (write then rename), as a
// deployment tool would.
func ReplaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// RSAKeyPair returns a fresh private key and its public key, PEM-encoded.
func RSAKeyPair(t testing.TB) (privatePEM, publicPEM string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return string(priv), string(pub)
}
