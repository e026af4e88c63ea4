package bundle_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"

	"github.com/verdictpdp/verdict/internal/bundle"
	"github.com/verdictpdp/verdict/internal/bundle/bundletest"
)

// tarOf returns the tar stream inside a .tar.gz, so the fuzzer mutates tar
// headers and file contents instead of gzip's checksummed bytes.
func tarOf(t testing.TB, archive []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// FuzzReadArchive feeds mutated bundle tarballs (policy, data, manifest and
// signatures) to the bundle reader a remote bundle server's bytes reach.
// Whatever the bytes, reading must return a bundle or an error, within the
// limits, and never panic.
func FuzzReadArchive(f *testing.F) {
	priv, pub := bundletest.RSAKeyPair(f)
	specs := []bundletest.Spec{
		{Revision: "r1", Roots: []string{"envoy"}, Modules: map[string]string{
			"envoy/authz.rego": "package envoy.authz\n\ndefault allow := false\n\nallow if input.attributes.request.http.method == \"GET\"\n",
		}, Data: map[string]any{"envoy": map[string]any{"routes": []any{"/a", "/b"}}}},
		{Revision: "r2", Modules: map[string]string{
			"verdict/mcp.rego": "package verdict.mcp\n\ndecision := {\"allow\": true, \"reasons\": [], \"obligations\": {}}\n",
		}},
		{Revision: "empty"},
	}
	for _, s := range specs {
		f.Add(tarOf(f, bundletest.Archive(f, s)), false)
		f.Add(tarOf(f, bundletest.SignedArchive(f, s, priv, "default")), true)
	}
	f.Add([]byte{}, false)
	f.Add([]byte("not a tarball"), true)

	limits := bundle.Limits{MaxCompressedBytes: 1 << 20, MaxUncompressedBytes: 1 << 20, MaxFileBytes: 256 << 10}
	plain := bundle.NewReader(limits, nil)
	signed := bundle.NewReader(limits, &bundle.Verification{PublicKey: pub})
	f.Fuzz(func(t *testing.T, tarball []byte, verify bool) {
		r := plain
		if verify {
			r = signed
		}
		b, err := r.ReadArchive("fuzz", gz(tarball))
		if err != nil {
			if b != nil {
				t.Fatal("a bundle and an error")
			}
			return
		}
		if b == nil {
			t.Fatal("no bundle and no error")
		}
		if len(tarball) > int(limits.MaxUncompressedBytes) {
			t.Fatalf("a %d-byte tarball passed the %d-byte limit", len(tarball), limits.MaxUncompressedBytes)
		}
		for _, m := range b.Modules {
			if m.Parsed == nil {
				t.Fatalf("module %s accepted without being parsed", m.Path)
			}
		}
	})
}

func TestReadArchiveRefusesGarbage(t *testing.T) {
	r := bundle.NewReader(bundle.Limits{}, nil)
	for name, raw := range map[string][]byte{
		"not gzip":     []byte("plain text"),
		"gzip of junk": gz([]byte("definitely not a tar stream, but long enough to look at")),
	} {
		if _, err := r.ReadArchive("x", raw); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "not gzip" && !errors.Is(err, bundle.ErrInvalidArchive) {
			t.Errorf("%s: err = %v, want ErrInvalidArchive", name, err)
		}
	}
}
