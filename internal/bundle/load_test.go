package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
)

func tarGz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var spec = bundletest.Spec{
	Revision: "r1",
	Roots:    []string{"envoy"},
	Modules:  map[string]string{"envoy/authz.rego": "package envoy.authz\n\nallow := true\n"},
	Data:     map[string]any{"envoy": map[string]any{"cfg": 1}},
}

func TestReadFormats(t *testing.T) {
	t.Parallel()
	r := bundle.NewReader(bundle.Limits{}, nil)
	dir := bundletest.WriteDir(t, t.TempDir(), spec)
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := os.WriteFile(archive, bundletest.Archive(t, spec), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"directory": dir, "archive": archive} {
		b, err := r.ReadPath("main", path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b.Manifest.Revision != "r1" || len(b.Modules) != 1 || b.Data["envoy"] == nil {
			t.Fatalf("%s: read %+v", name, b.Manifest)
		}
	}
	if _, err := r.ReadPath("main", filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing path: %v", err)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	// 64 MiB of zeros compresses to ~64 KiB: a small gzip bomb.
	bomb := tarGz(t, map[string][]byte{"data.json": bytes.Repeat([]byte{' '}, 64<<20)})
	cases := []struct {
		name   string
		limits bundle.Limits
		raw    []byte
		want   error
	}{
		{"compressed size", bundle.Limits{MaxCompressedBytes: 1024}, tarGz(t, map[string][]byte{"data.json": []byte(`{"a":"` + randomHex(4096) + `"}`)}), bundle.ErrTooLarge},
		{"gzip bomb", bundle.Limits{MaxUncompressedBytes: 1 << 20}, bomb, bundle.ErrTooLarge},
		{"single file", bundle.Limits{MaxFileBytes: 100}, tarGz(t, map[string][]byte{"data.json": []byte(`{"a":"` + strings.Repeat("x", 200) + `"}`)}), bundle.ErrTooLarge},
		{"not gzip", bundle.Limits{}, []byte("plain text"), bundle.ErrInvalidArchive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := bundle.NewReader(tc.limits, nil).ReadArchive("main", tc.raw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadArchive = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignatureVerification(t *testing.T) {
	t.Parallel()
	priv, pub := bundletest.RSAKeyPair(t)
	otherPriv, _ := bundletest.RSAKeyPair(t)
	verifying := bundle.NewReader(bundle.Limits{}, &bundle.Verification{PublicKey: pub})
	plain := bundle.NewReader(bundle.Limits{}, nil)

	signed := bundletest.SignedArchive(t, spec, priv, "default")
	if _, err := verifying.ReadArchive("main", signed); err != nil {
		t.Fatalf("valid signature rejected: %v", err)
	}
	for name, raw := range map[string][]byte{
		"unsigned":  bundletest.Archive(t, spec),
		"other key": bundletest.SignedArchive(t, spec, otherPriv, "default"),
		"tampered":  tamper(t, signed),
	} {
		if _, err := verifying.ReadArchive("main", raw); err == nil {
			t.Errorf("%s bundle accepted by a verifying reader", name)
		}
	}
	// Without a key, a signed bundle cannot be checked and is refused (as in OPA).
	if _, err := plain.ReadArchive("main", signed); err == nil {
		t.Error("signed bundle accepted without a verification key")
	}
}

// tamper rewrites the policy inside a signed archive, keeping its signature.
func tamper(t *testing.T, signed []byte) []byte {
	t.Helper()
	files := map[string][]byte{}
	zr, err := gzip.NewReader(bytes.NewReader(signed))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(tr); err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b.Bytes()
	}
	changed := false
	for name := range files {
		if strings.HasSuffix(name, ".rego") {
			files[name] = []byte("package envoy.authz\n\nallow := false\n")
			changed = true
		}
	}
	if !changed {
		t.Fatal("no policy in the archive to tamper with")
	}
	return tarGz(t, files)
}

func TestStoreRoundTrip(t *testing.T) {
	t.Parallel()
	s := bundle.NewStore(t.TempDir())
	if _, _, err := s.Load("remote/a b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load before Save = %v, want ErrNotExist", err)
	}
	if err := s.Save("remote/a b", []byte("archive"), `"e1"`); err != nil {
		t.Fatal(err)
	}
	raw, etag, err := s.Load("remote/a b")
	if err != nil || string(raw) != "archive" || etag != `"e1"` {
		t.Fatalf("Load = %q %q %v", raw, etag, err)
	}
	disabled := bundle.NewStore("")
	if err := disabled.Save("x", []byte("a"), ""); err != nil || disabled.Enabled() {
		t.Fatal("a store without a directory must be a no-op")
	}
}
