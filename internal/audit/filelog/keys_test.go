package filelog

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestGenerateKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "audit.key"), filepath.Join(dir, "audit.pub")
	if err := GenerateKeyFiles(priv, pub); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(priv)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", fi.Mode().Perm())
	}
	k, err := LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(k.Public()) {
		t.Error("the public key file does not hold the private key's public key")
	}
	if !ed25519.Verify(p, []byte("m"), ed25519.Sign(k, []byte("m"))) {
		t.Error("a signature by the loaded key does not verify")
	}

	before, _ := os.ReadFile(priv)
	for _, paths := range [][2]string{{priv, filepath.Join(dir, "new.pub")}, {filepath.Join(dir, "new.key"), pub}} {
		if err := GenerateKeyFiles(paths[0], paths[1]); !errors.Is(err, fs.ErrExist) {
			t.Errorf("GenerateKeyFiles over %q = %v, want ErrExist", paths, err)
		}
	}
	if after, _ := os.ReadFile(priv); !bytes.Equal(before, after) {
		t.Error("the private key was overwritten")
	}
	for _, p := range []string{filepath.Join(dir, "new.key"), filepath.Join(dir, "new.pub")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was left behind by a refused GenerateKeyFiles", p)
		}
	}
	if _, err := LoadPrivateKey(pub); err == nil {
		t.Error("LoadPrivateKey of a public key: no error")
	}
	if _, err := LoadPublicKey(priv); err == nil {
		t.Error("LoadPublicKey of a private key: no error")
	}
}

// TestOpenSSLKeys loads keys made the way the operator's guide says, with
// openssl.
func TestOpenSSLKeys(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	dir := t.TempDir()
	priv, pub, rsa := filepath.Join(dir, "k.pem"), filepath.Join(dir, "k.pub"), filepath.Join(dir, "rsa.pem")
	for _, args := range [][]string{
		{"genpkey", "-algorithm", "ed25519", "-out", priv},
		{"pkey", "-in", priv, "-pubout", "-out", pub},
		{"genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", rsa},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	k, err := LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(k.Public()) {
		t.Error("openssl's public key does not match its private key")
	}
	if _, err := LoadPrivateKey(rsa); err == nil {
		t.Error("LoadPrivateKey of an RSA key: no error")
	}
}
