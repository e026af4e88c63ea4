package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Peer is the identity an mTLS client proved in the TLS handshake.
type Peer struct {
	// SpiffeID is the first URI SAN with scheme spiffe of the leaf
	// certificate.
	SpiffeID string
	// Subject is the leaf's subject DN in RFC 2253 form.
	Subject string
	// DNSNames are the leaf's DNS SANs.
	DNSNames []string
	// Verified is true only when the handshake verified the client's chain.
	// Identity fields are filled only then.
	Verified bool
}

// PeerFromContext returns the verified mTLS identity of the gRPC peer in
// ctx. Plaintext connections, connections without a client certificate and
// certificates the handshake did not verify yield a zero Peer.
func PeerFromContext(ctx context.Context) Peer {
	p, ok := peer.FromContext(ctx)
	if !ok || p == nil {
		return Peer{}
	}
	switch info := p.AuthInfo.(type) {
	case credentials.TLSInfo:
		return peerFromState(info.State)
	case *credentials.TLSInfo:
		if info != nil {
			return peerFromState(info.State)
		}
	}
	return Peer{}
}

func peerFromState(state tls.ConnectionState) Peer {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return Peer{}
	}
	leaf := state.VerifiedChains[0][0]
	p := Peer{Subject: leaf.Subject.String(), DNSNames: slices.Clone(leaf.DNSNames), Verified: true}
	for _, u := range leaf.URIs {
		if u != nil && strings.EqualFold(u.Scheme, "spiffe") {
			p.SpiffeID = u.String()
			break
		}
	}
	return p
}

// Input renders the peer for policy input: "spiffe_id", "subject" and
// "dns_names" when not empty, and always "verified".
func (p Peer) Input() map[string]any {
	in := map[string]any{"verified": p.Verified}
	if p.SpiffeID != "" {
		in["spiffe_id"] = p.SpiffeID
	}
	if p.Subject != "" {
		in["subject"] = p.Subject
	}
	if len(p.DNSNames) > 0 {
		in["dns_names"] = slices.Clone(p.DNSNames)
	}
	return in
}

// PeerAllowList admits only verified mTLS peers with an allowed identity.
// An empty (or nil) list admits everyone.
type PeerAllowList struct {
	spiffeIDs map[string]struct{}
	prefixes  []string // "spiffe://trust-domain/path/", matching IDs below it
	subjects  map[string]struct{}
	logger    *slog.Logger
}

// NewPeerAllowList parses allowed entries, each one of:
//   - an exact SPIFFE ID, spiffe://trust-domain/path;
//   - a SPIFFE prefix ending in "/*", matching every ID below that path
//     (spiffe://cluster.local/ns/istio-system/* matches
//     spiffe://cluster.local/ns/istio-system/sa/x, not the path itself);
//   - a distinguished name (for example CN=client,O=Example) compared
//     exactly with Peer.Subject.
//
// Empty entries and malformed SPIFFE IDs (query, fragment, port, userinfo,
// a bad trust domain or path) are errors. Refusals are logged to the logger
// set with [PeerAllowList.WithLogger].
func NewPeerAllowList(allowed []string) (*PeerAllowList, error) {
	a := &PeerAllowList{
		spiffeIDs: make(map[string]struct{}),
		subjects:  make(map[string]struct{}),
		logger:    slog.New(slog.DiscardHandler),
	}
	for i, entry := range allowed {
		if err := a.add(entry); err != nil {
			return nil, fmt.Errorf("identity: peer allow-list entry %d: %w", i, err)
		}
	}
	return a, nil
}

func (a *PeerAllowList) add(entry string) error {
	switch {
	case strings.TrimSpace(entry) == "":
		return errors.New("empty entry")
	case strings.HasPrefix(strings.ToLower(entry), "spiffe:"):
		if base, isPrefix := strings.CutSuffix(entry, "/*"); isPrefix {
			if err := validateSpiffeID(base); err != nil {
				return err
			}
			a.prefixes = append(a.prefixes, base+"/")
			return nil
		}
		if err := validateSpiffeID(entry); err != nil {
			return err
		}
		a.spiffeIDs[entry] = struct{}{}
		return nil
	case strings.Contains(entry, "="):
		a.subjects[entry] = struct{}{}
		return nil
	default:
		return fmt.Errorf("%q is neither a SPIFFE ID (spiffe://...) nor a distinguished name (CN=...)", entry)
	}
}

// maxSpiffeIDLen is the SPIFFE specification's limit on an ID's length.
const maxSpiffeIDLen = 2048

// validateSpiffeID checks id against the SPIFFE ID grammar: a lowercase
// scheme and trust domain of [a-z0-9._-], and a path of non-empty
// [A-Za-z0-9._-] segments other than "." and "..".
func validateSpiffeID(id string) error {
	const scheme = "spiffe://"
	rest, ok := strings.CutPrefix(id, scheme)
	if !ok {
		return fmt.Errorf("SPIFFE ID %q must start with %q", id, scheme)
	}
	if len(id) > maxSpiffeIDLen {
		return fmt.Errorf("SPIFFE ID is longer than %d bytes", maxSpiffeIDLen)
	}
	if strings.Contains(rest, "?") {
		return fmt.Errorf("SPIFFE ID %q must not have a query", id)
	}
	if strings.Contains(rest, "#") {
		return fmt.Errorf("SPIFFE ID %q must not have a fragment", id)
	}
	trustDomain, path, _ := strings.Cut(rest, "/")
	if err := validateTrustDomain(trustDomain); err != nil {
		return fmt.Errorf("SPIFFE ID %q: %w", id, err)
	}
	if !strings.Contains(rest, "/") {
		return nil
	}
	for _, segment := range strings.Split(path, "/") {
		if err := validatePathSegment(segment); err != nil {
			return fmt.Errorf("SPIFFE ID %q: %w", id, err)
		}
	}
	return nil
}

func validateTrustDomain(td string) error {
	switch {
	case td == "":
		return errors.New("trust domain is empty")
	case strings.Contains(td, "@"):
		return errors.New("userinfo is not allowed")
	case strings.Contains(td, ":"):
		return errors.New("a port is not allowed")
	}
	for i := range len(td) {
		if c := td[i]; !isLowerAlnum(c) && !isSpiffePunct(c) {
			return fmt.Errorf("trust domain %q may hold only lowercase letters, digits, '.', '-' and '_'", td)
		}
	}
	return nil
}

func validatePathSegment(segment string) error {
	switch segment {
	case "":
		return errors.New("path has an empty segment (double or trailing slash)")
	case ".", "..":
		return errors.New(`path segments "." and ".." are not allowed`)
	}
	for i := range len(segment) {
		if c := segment[i]; !isLowerAlnum(c) && !isUpper(c) && !isSpiffePunct(c) {
			return fmt.Errorf("path segment %q may hold only letters, digits, '.', '-' and '_'", segment)
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

func isSpiffePunct(c byte) bool { return c == '.' || c == '-' || c == '_' }

// WithLogger returns a copy of the list that logs refused peers to logger
// (nil discards).
func (a *PeerAllowList) WithLogger(logger *slog.Logger) *PeerAllowList {
	if a == nil {
		return nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := *a
	c.logger = logger
	return &c
}

// empty reports whether the list imposes no requirement.
func (a *PeerAllowList) empty() bool {
	return a == nil || len(a.spiffeIDs)+len(a.prefixes)+len(a.subjects) == 0
}

// Allows reports whether p may call: always for an empty list, otherwise
// only a verified peer whose SPIFFE ID or subject matches an entry.
func (a *PeerAllowList) Allows(p Peer) bool {
	if a.empty() {
		return true
	}
	if !p.Verified {
		return false
	}
	if p.SpiffeID != "" {
		if _, ok := a.spiffeIDs[p.SpiffeID]; ok {
			return true
		}
		for _, prefix := range a.prefixes {
			if strings.HasPrefix(p.SpiffeID, prefix) && len(p.SpiffeID) > len(prefix) {
				return true
			}
		}
	}
	if p.Subject != "" {
		if _, ok := a.subjects[p.Subject]; ok {
			return true
		}
	}
	return false
}

// UnaryInterceptor refuses unary RPCs from peers the list does not allow
// with codes.PermissionDenied. No method is exempt, health checks included.
func (a *PeerAllowList) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := a.admit(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor is the streaming counterpart of UnaryInterceptor.
func (a *PeerAllowList) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := a.admit(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// admit returns the status error for a refused peer, logging who it was
// (certificate identities are not secrets); the caller learns nothing more.
func (a *PeerAllowList) admit(ctx context.Context, method string) error {
	if a.empty() {
		return nil
	}
	p := PeerFromContext(ctx)
	if a.Allows(p) {
		return nil
	}
	attrs := []any{"method", method, "verified", p.Verified, "spiffe_id", p.SpiffeID, "subject", p.Subject}
	if remote, ok := peer.FromContext(ctx); ok && remote != nil && remote.Addr != nil {
		attrs = append(attrs, "peer_addr", remote.Addr.String())
	}
	a.logger.InfoContext(ctx, "identity: peer identity not allowed", attrs...)
	return status.Error(codes.PermissionDenied, "peer identity not allowed")
}
