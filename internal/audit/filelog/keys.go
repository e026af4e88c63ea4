package filelog

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// LoadPrivateKey reads an Ed25519 private key from a PEM "PRIVATE KEY"
// (PKCS #8) file, as `openssl genpkey -algorithm ed25519` writes.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("filelog: private key %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("filelog: private key %s: a %T, not an Ed25519 key", path, key)
	}
	return priv, nil
}

// LoadPublicKey reads an Ed25519 public key from a PEM "PUBLIC KEY" (PKIX)
// file, as `openssl pkey -pubout` writes.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("filelog: public key %s: %w", path, err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("filelog: public key %s: a %T, not an Ed25519 key", path, key)
	}
	return pub, nil
}

func readPEM(path, blockType string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("filelog: read key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != blockType {
		return nil, fmt.Errorf("filelog: %s holds no PEM %q block", path, blockType)
	}
	return block.Bytes, nil
}

// GenerateKeyFiles creates a new Ed25519 key pair: the private key in
// privPath (PKCS #8 PEM, mode 0600) and the public key in pubPath (PKIX PEM,
// mode 0644). It refuses to overwrite either file.
func GenerateKeyFiles(privPath, pubPath string) error {
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("filelog: generate keys: %s already exists (or cannot be checked): %w", p, fs.ErrExist)
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("filelog: generate keys: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("filelog: generate keys: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("filelog: generate keys: %w", err)
	}
	if err := writeNew(privPath, 0o600, &pem.Block{Type: "PRIVATE KEY", Bytes: privDER}); err != nil {
		return err
	}
	if err := writeNew(pubPath, 0o644, &pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}); err != nil {
		_ = os.Remove(privPath)
		return err
	}
	return nil
}

// writeNew writes a PEM block to a file that must not exist yet.
func writeNew(path string, mode fs.FileMode, block *pem.Block) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("filelog: generate keys: %w", err)
	}
	if err := pem.Encode(f, block); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("filelog: generate keys: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("filelog: generate keys: %w", err)
	}
	return nil
}
