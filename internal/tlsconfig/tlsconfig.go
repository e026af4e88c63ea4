// Package tlsconfig builds server TLS configurations from PEM files and
// reloads them when the files change, so certificates rotate without a
// restart. It knows nothing about gRPC or policy.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of a server identity and, for mTLS, the CA that
// signs client certificates.
type Files struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
}

// Enabled reports whether TLS is configured.
func (f Files) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" }

// recheck bounds how often file modification times are looked at.
const recheck = time.Second

// Reloader serves a tls.Config that follows the files on disk. A file that
// fails to load leaves the previous configuration in place.
type Reloader struct {
	files  Files
	logger *slog.Logger

	mu        sync.Mutex
	cfg       *tls.Config
	stamp     string
	checkedAt time.Time
	lastErr   error
}

// New loads the files once (so a bad configuration fails at start) and
// returns a Reloader that logs failed reloads to logger (nil discards).
func New(files Files, logger *slog.Logger) (*Reloader, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("tls: both a certificate file and a key file are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{files: files, logger: logger}
	cfg, stamp, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cfg, r.stamp, r.checkedAt = cfg, stamp, time.Now()
	return r, nil
}

// Config returns a tls.Config for a server listener; every handshake gets
// the current files' configuration.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current(), nil
		},
	}
}

// LastError returns the error of the last failed reload, or nil.
func (r *Reloader) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func (r *Reloader) current() *tls.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checkedAt) < recheck {
		return r.cfg
	}
	r.checkedAt = time.Now()
	stamp, err := r.fileStamp()
	if err != nil || stamp == r.stamp {
		return r.cfg
	}
	cfg, stamp, err := r.load()
	if err != nil {
		if r.lastErr == nil || r.lastErr.Error() != err.Error() {
			r.logger.Error("TLS files changed but cannot be loaded; keeping the previous certificate", "err", err)
		}
		r.lastErr = err // keep serving the previous identity
		return r.cfg
	}
	r.logger.Info("TLS certificate reloaded", "cert_file", r.files.CertFile)
	r.cfg, r.stamp, r.lastErr = cfg, stamp, nil
	return r.cfg
}

func (r *Reloader) fileStamp() (string, error) {
	var stamp string
	for _, p := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

func (r *Reloader) load() (*tls.Config, string, error) {
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, "", fmt.Errorf("tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return nil, "", fmt.Errorf("tls: load %s / %s: %w", r.files.CertFile, r.files.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
	}
	if r.files.ClientCAFile != "" {
		pem, err := os.ReadFile(r.files.ClientCAFile)
		if err != nil {
			return nil, "", fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("tls: %s holds no PEM certificate", r.files.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, stamp, nil
}
