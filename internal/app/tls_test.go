package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/verdictpdp/verdict/internal/config"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key signed by the CA.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		spiffe, _ := url.Parse("spiffe://example.org/gateway")
		tmpl.URIs = []*url.URL{spiffe}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMTLSRejectsClientsWithoutValidCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t, "verdict test CA")
	rogue := newCA(t, "rogue CA")
	srvCert, srvKey := ca.issue(t, "pdp", true)
	cliCert, cliKey := ca.issue(t, "gateway", false)
	rogueCert, rogueKey := rogue.issue(t, "gateway", false)

	cfg := config.Default()
	cfg.GRPC.TLS = config.TLS{
		CertFile:     writeFile(t, dir, "server.pem", srvCert),
		KeyFile:      writeFile(t, dir, "server-key.pem", srvKey),
		ClientCAFile: writeFile(t, dir, "ca.pem", ca.pem),
	}
	p := startPDP(t, cfg)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	pair := func(c, k []byte) []tls.Certificate {
		kp, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{kp}
	}
	cases := []struct {
		name    string
		certs   []tls.Certificate
		wantErr bool
	}{
		{"no client certificate", nil, true},
		{"certificate from another CA", pair(rogueCert, rogueKey), true},
		{"valid client certificate", pair(cliCert, cliKey), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			creds := credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: tc.certs, MinVersion: tls.VersionTLS12})
			conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, checkReq())
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Check succeeded without a valid client certificate: %v", resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check with a valid client certificate: %v", err)
			}
			// The built-in policy denies GET / by default.
			if resp.GetStatus().GetCode() == 0 {
				t.Fatalf("built-in policy allowed GET /: %v", resp)
			}
		})
	}
}
