// Package bundle reads OPA bundles (directories, .tar.gz archives and
// embedded file systems) with size limits and optional signature
// verification, and persists the last good archive of a remote bundle.
//
// It uses OPA's own bundle package for the format; it does not fetch
// anything over the network (see package source) and never activates.
package bundle

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// Bundle is an OPA bundle as read by this package.
type Bundle = opabundle.Bundle

// Default limits. A bundle is policy and reference data, not a data lake:
// operators who need more raise them in config.
const (
	DefaultMaxCompressedBytes   = 64 << 20
	DefaultMaxUncompressedBytes = 256 << 20
	DefaultMaxFileBytes         = 128 << 20
)

// Limits bound what reading one bundle may cost.
type Limits struct {
	// MaxCompressedBytes bounds a .tar.gz archive as stored or downloaded.
	MaxCompressedBytes int64
	// MaxUncompressedBytes bounds the archive's decompressed size (gzip bombs).
	MaxUncompressedBytes int64
	// MaxFileBytes bounds any single file in the bundle.
	MaxFileBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxCompressedBytes <= 0 {
		l.MaxCompressedBytes = DefaultMaxCompressedBytes
	}
	if l.MaxUncompressedBytes <= 0 {
		l.MaxUncompressedBytes = DefaultMaxUncompressedBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	return l
}

// Verification configures bundle signature checks (OPA's .signatures.json).
type Verification struct {
	// KeyID names the key; it must match the signature's "kid" when present.
	KeyID string
	// PublicKey is the PEM-encoded public key (or the shared secret for HS*).
	PublicKey string
	// Algorithm is the JWS algorithm, RS256 when empty.
	Algorithm string
	// Scope, when set, must equal the signature's scope.
	Scope string
	// Exclude lists glob patterns of files not covered by the signature.
	Exclude []string
}

// Sentinel errors callers can test with errors.Is.
var (
	ErrTooLarge       = errors.New("bundle exceeds size limit")
	ErrUnsupported    = errors.New("bundle type not supported")
	ErrInvalidArchive = errors.New("bundle archive is invalid")
)

// Reader reads bundles with fixed limits and verification settings.
type Reader struct {
	limits Limits
	verify *opabundle.VerificationConfig
}

// NewReader returns a Reader. A nil verification accepts unsigned bundles
// and rejects signed ones (there is no key to check them with), as OPA does.
func NewReader(limits Limits, verification *Verification) *Reader {
	r := &Reader{limits: limits.withDefaults()}
	if verification != nil {
		keyID := verification.KeyID
		if keyID == "" {
			keyID = "default"
		}
		alg := verification.Algorithm
		if alg == "" {
			alg = "RS256"
		}
		r.verify = opabundle.NewVerificationConfig(
			map[string]*opabundle.KeyConfig{keyID: {Key: verification.PublicKey, Algorithm: alg, Scope: verification.Scope}},
			keyID, verification.Scope, verification.Exclude)
	}
	return r
}

// ReadPath reads a directory bundle or a .tar.gz file.
func (r *Reader) ReadPath(name, path string) (*Bundle, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: %w", path, err)
	}
	if fi.IsDir() {
		return r.read(name, opabundle.NewDirectoryLoader(path), path)
	}
	if fi.Size() > r.limits.MaxCompressedBytes {
		return nil, fmt.Errorf("bundle %q: %w: archive is %d bytes, limit %d", path, ErrTooLarge, fi.Size(), r.limits.MaxCompressedBytes)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: %w", path, err)
	}
	b, err := r.ReadArchive(name, raw)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: %w", path, err)
	}
	return b, nil
}

// ReadArchive reads a .tar.gz bundle held in memory.
func (r *Reader) ReadArchive(name string, raw []byte) (*Bundle, error) {
	if int64(len(raw)) > r.limits.MaxCompressedBytes {
		return nil, fmt.Errorf("%w: archive is %d bytes, limit %d", ErrTooLarge, len(raw), r.limits.MaxCompressedBytes)
	}
	if err := checkUncompressed(raw, r.limits.MaxUncompressedBytes); err != nil {
		return nil, err
	}
	return r.read(name, opabundle.NewTarballLoader(bytes.NewReader(raw)), "")
}

// ReadFS reads a bundle from a file system, such as one embedded in the
// binary. Rego test files (*_test.rego) are left out: they belong to the
// library's tests, not to the served policy.
func (r *Reader) ReadFS(name string, fsys fs.FS) (*Bundle, error) {
	loader, err := opabundle.NewFSLoader(fsys)
	if err != nil {
		return nil, err
	}
	loader = loader.WithFilter(func(path string, info fs.FileInfo, _ int) bool {
		return !info.IsDir() && strings.HasSuffix(path, "_test.rego")
	})
	return r.read(name, loader, "")
}

// checkUncompressed decompresses raw once, counting bytes, so that a small
// archive that expands to gigabytes is refused before OPA buffers it.
func checkUncompressed(raw []byte, limit int64) error {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("%w: not a gzip stream", ErrInvalidArchive)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, limit+1))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArchive, err)
	}
	if n > limit {
		return fmt.Errorf("%w: archive expands beyond %d bytes", ErrTooLarge, limit)
	}
	return nil
}

func (r *Reader) read(name string, loader opabundle.DirectoryLoader, baseDir string) (*Bundle, error) {
	keeper := &dataKeeper{DirectoryLoader: loader.WithSizeLimitBytes(r.limits.MaxFileBytes), limit: r.limits.MaxFileBytes, dir: baseDir != ""}
	rd := opabundle.NewCustomReader(keeper).
		WithBundleName(name).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(r.limits.MaxFileBytes).
		WithProcessAnnotations(true)
	if baseDir != "" {
		rd = rd.WithBaseDir(baseDir)
	}
	if r.verify != nil {
		rd = rd.WithBundleVerificationConfig(r.verify)
	}
	b, err := rd.Read()
	if err != nil {
		return nil, classify(keeper.explain(err))
	}
	if b.Type() != opabundle.SnapshotBundleType {
		return nil, fmt.Errorf("%w: delta bundles are not supported", ErrUnsupported)
	}
	if b.Manifest.Roots == nil {
		b.Manifest.Init()
	}
	return &b, nil
}

func classify(err error) error {
	if strings.Contains(err.Error(), "exceeds configured size_limit_bytes") ||
		strings.Contains(err.Error(), "exceeded max size") {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return err
}

// Limits returns the reader's effective limits.
func (r *Reader) Limits() Limits { return r.limits }
