package tlsconfig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/tlsconfig"
)

func selfSigned(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "pdp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func servedSerial(t *testing.T, cfg *tls.Config) int64 {
	t.Helper()
	c, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.Int64()
}

func TestReloadsChangedFilesAndKeepsLastGood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	write := func(c, k []byte, at time.Time) {
		for p, b := range map[string][]byte{certFile: c, keyFile: k} {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	c1, k1 := selfSigned(t, 1)
	write(c1, k1, time.Now().Add(-time.Minute))
	r, err := tlsconfig.New(tlsconfig.Files{CertFile: certFile, KeyFile: keyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.Config()
	if got := servedSerial(t, cfg); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}

	c2, k2 := selfSigned(t, 2)
	write(c2, k2, time.Now())
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, cfg) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("rotated certificate not served within 5s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A broken rotation keeps the last good identity and reports the error.
	write([]byte("garbage"), k2, time.Now().Add(time.Minute))
	time.Sleep(1100 * time.Millisecond)
	if got := servedSerial(t, cfg); got != 2 {
		t.Fatalf("after a broken rotation serial %d, want the previous 2", got)
	}
	if r.LastError() == nil {
		t.Fatal("the failed reload is not reported")
	}
}

func TestNewRejectsBadFiles(t *testing.T) {
	t.Parallel()
	if _, err := tlsconfig.New(tlsconfig.Files{CertFile: "missing.pem", KeyFile: "missing-key.pem"}, nil); err == nil {
		t.Fatal("missing files accepted")
	}
	if _, err := tlsconfig.New(tlsconfig.Files{CertFile: "c.pem"}, nil); err == nil {
		t.Fatal("certificate without key accepted")
	}
}
