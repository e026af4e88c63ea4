package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// testPKI is a CA with a server certificate and client certificates.
type testPKI struct {
	pool    *x509.CertPool
	server  tls.Certificate
	clients map[string]tls.Certificate
}

const (
	apiID    = "spiffe://example.org/ns/prod/sa/api"
	workerID = "spiffe://example.org/ns/dev/sa/worker"
	legacyDN = "CN=legacy-client,O=Example"
)

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey := newECKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{pool: x509.NewCertPool(), clients: map[string]tls.Certificate{}}
	p.pool.AddCert(ca)
	issue := func(serial int64, tmpl *x509.Certificate, usage x509.ExtKeyUsage, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) tls.Certificate {
		key := newECKey(t)
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	p.server = issue(2, &x509.Certificate{
		Subject: pkix.Name{CommonName: "pdp"}, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, x509.ExtKeyUsageServerAuth, ca, caKey)
	p.clients["api"] = issue(3, &x509.Certificate{
		Subject: pkix.Name{CommonName: "api"}, DNSNames: []string{"api.prod.svc"}, URIs: []*url.URL{mustURL(t, apiID)},
	}, x509.ExtKeyUsageClientAuth, ca, caKey)
	p.clients["worker"] = issue(4, &x509.Certificate{
		Subject: pkix.Name{CommonName: "worker"}, URIs: []*url.URL{mustURL(t, "https://example.org/not-spiffe"), mustURL(t, workerID)},
	}, x509.ExtKeyUsageClientAuth, ca, caKey)
	p.clients["legacy"] = issue(5, &x509.Certificate{
		Subject: pkix.Name{CommonName: "legacy-client", Organization: []string{"Example"}},
	}, x509.ExtKeyUsageClientAuth, ca, caKey)
	// Not signed by the CA, claiming the allowed SPIFFE ID.
	p.clients["rogue"] = issue(6, &x509.Certificate{
		Subject: pkix.Name{CommonName: "api"}, URIs: []*url.URL{mustURL(t, apiID)},
	}, x509.ExtKeyUsageClientAuth, nil, nil)
	return p
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// peerRecorder remembers the Peer the last handled RPC saw.
type peerRecorder struct {
	mu   sync.Mutex
	last Peer
	n    int
}

func (r *peerRecorder) record(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.n = PeerFromContext(ctx), r.n+1
}

func (r *peerRecorder) get() (Peer, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.n
}

// startHealthServer serves the standard health service on 127.0.0.1 behind
// the allow-list's interceptors, and records the Peer handlers see.
func startHealthServer(t *testing.T, creds credentials.TransportCredentials, allow *PeerAllowList) (string, *peerRecorder) {
	t.Helper()
	rec := &peerRecorder{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(allow.UnaryInterceptor(),
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				rec.record(ctx)
				return handler(ctx, req)
			}),
		grpc.ChainStreamInterceptor(allow.StreamInterceptor(),
			func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
				rec.record(ss.Context())
				return handler(srv, ss)
			}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), rec
}

func tlsServerCreds(p *testPKI, auth tls.ClientAuthType) credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: auth, MinVersion: tls.VersionTLS13,
	})
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func clientCreds(p *testPKI, client string) credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		RootCAs: p.pool, Certificates: []tls.Certificate{p.clients[client]}, MinVersion: tls.VersionTLS13,
	})
}

func healthCheck(t *testing.T, c healthpb.HealthClient) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
	if st := status.Convert(err); st.Code() == codes.PermissionDenied && st.Message() != "peer identity not allowed" {
		t.Errorf("refusal message %q reveals more than it should", st.Message())
	}
	return status.Code(err)
}

func healthWatch(t *testing.T, c healthpb.HealthClient) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	return status.Code(err)
}

func TestPeerAllowListOverMTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	tests := []struct {
		name    string
		allowed []string
		want    map[string]codes.Code // client -> outcome
	}{
		{"exact SPIFFE ID", []string{apiID},
			map[string]codes.Code{"api": codes.OK, "worker": codes.PermissionDenied, "legacy": codes.PermissionDenied}},
		{"SPIFFE prefix", []string{"spiffe://example.org/ns/dev/*"},
			map[string]codes.Code{"api": codes.PermissionDenied, "worker": codes.OK, "legacy": codes.PermissionDenied}},
		{"trust domain prefix", []string{"spiffe://example.org/*"},
			map[string]codes.Code{"api": codes.OK, "worker": codes.OK, "legacy": codes.PermissionDenied}},
		{"distinguished name", []string{legacyDN},
			map[string]codes.Code{"api": codes.PermissionDenied, "worker": codes.PermissionDenied, "legacy": codes.OK}},
		{"no requirement", nil,
			map[string]codes.Code{"api": codes.OK, "worker": codes.OK, "legacy": codes.OK}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			allow, err := NewPeerAllowList(tc.allowed)
			if err != nil {
				t.Fatal(err)
			}
			logger, logs := newTestLogger()
			addr, _ := startHealthServer(t, tlsServerCreds(p, tls.RequireAndVerifyClientCert), allow.WithLogger(logger))
			for client, want := range tc.want {
				c := dial(t, addr, clientCreds(p, client))
				if got := healthCheck(t, c); got != want {
					t.Errorf("%s: Check = %v, want %v", client, got, want)
				}
				if got := healthWatch(t, c); got != want {
					t.Errorf("%s: Watch = %v, want %v", client, got, want)
				}
			}
			out := logs.String()
			for client, want := range tc.want {
				if want == codes.PermissionDenied && client == "worker" &&
					(!strings.Contains(out, "spiffe_id="+workerID) || !strings.Contains(out, "/grpc.health.v1.Health/Check")) {
					t.Errorf("refusal of %s not logged with its identity and method:\n%s", client, out)
				}
			}
		})
	}
}

func TestPeerFromContextOverMTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	allow, err := NewPeerAllowList([]string{apiID})
	if err != nil {
		t.Fatal(err)
	}
	addr, rec := startHealthServer(t, tlsServerCreds(p, tls.RequireAndVerifyClientCert), allow)
	if got := healthCheck(t, dial(t, addr, clientCreds(p, "api"))); got != codes.OK {
		t.Fatalf("Check = %v", got)
	}
	got, _ := rec.get()
	want := Peer{SpiffeID: apiID, Subject: "CN=api", DNSNames: []string{"api.prod.svc"}, Verified: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("peer (-want +got):\n%s", diff)
	}
	wantInput := map[string]any{"spiffe_id": apiID, "subject": "CN=api", "dns_names": []string{"api.prod.svc"}, "verified": true}
	if diff := cmp.Diff(wantInput, got.Input()); diff != "" {
		t.Errorf("input (-want +got):\n%s", diff)
	}

	// The handshake refuses a certificate from another CA outright.
	if got := healthCheck(t, dial(t, addr, clientCreds(p, "rogue"))); got != codes.Unavailable {
		t.Errorf("rogue client: %v, want Unavailable (handshake failure)", got)
	}
	// The first spiffe URI is used even when another URI comes first.
	addr2, rec2 := startHealthServer(t, tlsServerCreds(p, tls.RequireAndVerifyClientCert), nil)
	healthCheck(t, dial(t, addr2, clientCreds(p, "worker")))
	if got, _ := rec2.get(); got.SpiffeID != workerID || got.Subject != "CN=worker" {
		t.Errorf("worker peer = %+v", got)
	}
}

func TestPeerFromContextUnverifiedCertificate(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	allow, err := NewPeerAllowList([]string{apiID})
	if err != nil {
		t.Fatal(err)
	}
	// The server asks for a certificate without verifying it: the rogue's
	// claimed SPIFFE ID must not count.
	addr, rec := startHealthServer(t, tlsServerCreds(p, tls.RequestClientCert), nil)
	if got := healthCheck(t, dial(t, addr, clientCreds(p, "rogue"))); got != codes.OK {
		t.Fatalf("Check = %v", got)
	}
	if got, _ := rec.get(); !cmp.Equal(got, Peer{}) {
		t.Errorf("unverified peer = %+v, want zero", got)
	}
	addr2, _ := startHealthServer(t, tlsServerCreds(p, tls.RequestClientCert), allow)
	if got := healthCheck(t, dial(t, addr2, clientCreds(p, "rogue"))); got != codes.PermissionDenied {
		t.Errorf("unverified rogue with allow-list: %v, want PermissionDenied", got)
	}
}

func TestPeerPlaintext(t *testing.T) {
	t.Parallel()
	addr, rec := startHealthServer(t, insecure.NewCredentials(), nil)
	c := dial(t, addr, insecure.NewCredentials())
	if got := healthCheck(t, c); got != codes.OK {
		t.Fatalf("Check = %v", got)
	}
	got, n := rec.get()
	if n != 1 || !cmp.Equal(got, Peer{}) {
		t.Errorf("plaintext peer = %+v (%d calls), want zero", got, n)
	}
	if diff := cmp.Diff(map[string]any{"verified": false}, got.Input()); diff != "" {
		t.Errorf("zero peer input (-want +got):\n%s", diff)
	}
	if got := PeerFromContext(context.Background()); !cmp.Equal(got, Peer{}) {
		t.Errorf("no peer in context: %+v", got)
	}

	allow, err := NewPeerAllowList([]string{apiID})
	if err != nil {
		t.Fatal(err)
	}
	addr2, rec2 := startHealthServer(t, insecure.NewCredentials(), allow)
	c2 := dial(t, addr2, insecure.NewCredentials())
	if got := healthCheck(t, c2); got != codes.PermissionDenied {
		t.Errorf("plaintext with allow-list: %v, want PermissionDenied", got)
	}
	if got := healthWatch(t, c2); got != codes.PermissionDenied {
		t.Errorf("plaintext stream with allow-list: %v, want PermissionDenied", got)
	}
	if _, n := rec2.get(); n != 0 {
		t.Errorf("handlers ran %d times for refused peers", n)
	}
}

func TestNewPeerAllowListErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		entry string
		want  string
	}{
		{"", "empty entry"},
		{"  ", "empty entry"},
		{"spiffe://example.org/ns/a?x=1", "query"},
		{"spiffe://example.org/ns/a#frag", "fragment"},
		{"spiffe://example.org:8443/ns/a", "port"},
		{"spiffe://user@example.org/ns/a", "userinfo"},
		{"spiffe:///ns/a", "trust domain is empty"},
		{"spiffe://Example.org/ns/a", "lowercase"},
		{"spiffe://exa mple.org/a", "lowercase"},
		{"SPIFFE://example.org/a", "must start with"},
		{"spiffe:example.org/a", "must start with"},
		{"spiffe://example.org/ns//a", "empty segment"},
		{"spiffe://example.org/ns/a/", "empty segment"},
		{"spiffe://example.org/ns/../a", `"." and ".."`},
		{"spiffe://example.org/ns/a%20b", "path segment"},
		{"spiffe://example.org/ns/*/a", "path segment"},
		{"spiffe://example.org/ns*", "path segment"},
		{"spiffe://example.org/" + strings.Repeat("a", 2100), "longer than"},
		{"example.org/ns/a", "neither a SPIFFE ID"},
	}
	for _, tc := range tests {
		_, err := NewPeerAllowList([]string{apiID, tc.entry})
		if err == nil {
			t.Errorf("%q: want an error", tc.entry)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "entry 1") {
			t.Errorf("%q: error %q does not mention %q and the entry index", tc.entry, err, tc.want)
		}
	}
}

func TestPeerAllowListAllows(t *testing.T) {
	t.Parallel()
	allow, err := NewPeerAllowList([]string{
		apiID, "spiffe://cluster.local/ns/istio-system/*", "spiffe://example.org", legacyDN,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer Peer
		want bool
	}{
		{Peer{SpiffeID: apiID, Verified: true}, true},
		{Peer{SpiffeID: apiID}, false}, // not verified
		{Peer{SpiffeID: apiID + "/sub", Verified: true}, false},
		{Peer{SpiffeID: "spiffe://cluster.local/ns/istio-system/sa/ingress", Verified: true}, true},
		{Peer{SpiffeID: "spiffe://cluster.local/ns/istio-system", Verified: true}, false},
		{Peer{SpiffeID: "spiffe://cluster.local/ns/istio-system-evil/sa/x", Verified: true}, false},
		{Peer{SpiffeID: "spiffe://example.org", Verified: true}, true},
		{Peer{Subject: legacyDN, Verified: true}, true},
		{Peer{Subject: "CN=legacy-client", Verified: true}, false},
		{Peer{Subject: "cn=legacy-client,o=Example", Verified: true}, false},
		{Peer{Verified: true}, false},
		{Peer{}, false},
	}
	for _, tc := range tests {
		if got := allow.Allows(tc.peer); got != tc.want {
			t.Errorf("Allows(%+v) = %v, want %v", tc.peer, got, tc.want)
		}
	}
	empty, err := NewPeerAllowList(nil)
	if err != nil {
		t.Fatal(err)
	}
	var none *PeerAllowList
	if !empty.Allows(Peer{}) || !none.Allows(Peer{}) || none.WithLogger(nil) != nil {
		t.Error("an empty or nil list must allow everyone")
	}
}
