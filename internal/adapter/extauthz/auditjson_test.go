package extauthz

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/verdictpdp/verdict/internal/audit"
)

// sameAuditJSON reports how the audit log's JSON written straight from req
// (WriteAuditInput) differs from the JSON the recorder writes for the value
// AuditInput builds: success against failure, the bytes, or the masked
// pointers.
func sameAuditJSON(req *authv3.CheckRequest, opts InputOptions, ident *requestIdentity) error {
	v, wantErr := (&envoyInput{req: req, opts: opts, ident: ident}).AuditInput()
	got, gotMasked, gotErr := audit.AppendWrittenInput(nil, audit.KindEnvoy, &envoyInput{req: req, opts: opts, ident: ident})
	switch {
	case wantErr != nil && gotErr != nil:
		return nil
	case wantErr != nil:
		return fmt.Errorf("AuditInput failed (%w), WriteAuditInput wrote %s", wantErr, got)
	case gotErr != nil:
		return fmt.Errorf("AuditInput succeeded, WriteAuditInput failed: %w", gotErr)
	}
	want, wantMasked := audit.AppendInput(nil, audit.KindEnvoy, v)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("JSON differs:\n AuditInput:      %s\n WriteAuditInput: %s", want, got)
	}
	if !slices.Equal(gotMasked, wantMasked) {
		return fmt.Errorf("masked = %q, want %q", gotMasked, wantMasked)
	}
	return nil
}

var auditJSONOptions = []InputOptions{{}, {SkipBodyParse: true}, {MaxBodyBytes: 16}, {AllowDuplicateKeys: true}}

func TestAuditJSONMatchesValue(t *testing.T) {
	cases := buildValueCases(t)
	for _, mode := range []struct {
		name      string
		handBuilt bool
	}{{"hand-built", true}, {"protojson fallback", false}} {
		t.Run(mode.name, func(t *testing.T) {
			defer func(prev bool) { handBuilt = prev }(handBuilt)
			handBuilt = mode.handBuilt
			for name, req := range cases {
				for _, opts := range auditJSONOptions {
					if err := sameAuditJSON(req, opts, nil); err != nil {
						t.Errorf("%s %+v: %v", name, opts, err)
					}
				}
			}
		})
	}
}

func TestAuditJSONMatchesCorpus(t *testing.T) {
	seeds := seedRequestsFrom(t, "../../../testdata/extauthz/*.yaml", "../../../testdata/hostile/envoy.yaml", "../../../testdata/mcp/envoy.yaml")
	for i, wire := range seeds {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			t.Fatal(err)
		}
		for _, opts := range auditJSONOptions {
			if err := sameAuditJSON(&req, opts, nil); err != nil {
				t.Errorf("corpus request %d %+v: %v", i, opts, err)
			}
		}
		a := seedArgs(&req)
		for _, flags := range []uint16{0, fVerifying | fAuthenticated | fPeer, fVerifying, fPeer | fSourceLabels | fDestination | fNamedPort} {
			a.flags |= flags
			a.subject, a.claims, a.dns = "alice,reader", `{"tenant":"acme","n":2,"list":[1,"b"]}`, "gw.example"
			req, opts, ident := a.request()
			if err := sameAuditJSON(req, opts, ident); err != nil {
				t.Errorf("corpus request %d, flags %#x: %v", i, a.flags, err)
			}
		}
	}
}

func TestAuditJSONMatchesKeySeeds(t *testing.T) {
	for i, a := range envoyKeySeeds {
		req, opts, ident := a.request()
		if err := sameAuditJSON(req, opts, ident); err != nil {
			t.Errorf("seed %d (%+v): %v", i, a, err)
		}
	}
}

// TestAuditJSONMasksCredentials: the credential headers never reach the
// JSON, and their pointers are listed.
func TestAuditJSONMasksCredentials(t *testing.T) {
	req := httpRequest(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/a", Headers: map[string]string{
		"authorization": "Bearer secret-token", "cookie": "session=secret-cookie", "x-roles": "reader",
	}})
	got, masked, err := audit.AppendWrittenInput(nil, audit.KindEnvoy, &envoyInput{req: req})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte("secret")) || !bytes.Contains(got, []byte(`"authorization":"[REDACTED]"`)) {
		t.Errorf("credentials not masked: %s", got)
	}
	want := []string{"/input/attributes/request/http/headers/authorization", "/input/attributes/request/http/headers/cookie"}
	if !slices.Equal(masked, want) {
		t.Errorf("masked = %q, want %q", masked, want)
	}
	if err := sameAuditJSON(req, InputOptions{}, nil); err != nil {
		t.Error(err)
	}
}

// TestAuditJSONMemberOrder: the members are written in Rego's key order.
func TestAuditJSONMemberOrder(t *testing.T) {
	for name, names := range map[string][]string{
		"attributes": memberNames(attributeMembers),
		"peer":       memberNames(peerMembers),
		"http":       memberNames(httpMembers),
	} {
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("%s members out of order: %s", name, strings.Join(names, ", "))
		}
	}
}

func memberNames[M any](ms []jsonMember[M]) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.name
	}
	return out
}

// FuzzAuditJSON holds WriteAuditInput to the recorder's encoding of the
// value AuditInput builds, byte for byte, on arbitrary CheckRequest wire
// bytes.
func FuzzAuditJSON(f *testing.F) {
	for _, s := range seedRequestsFrom(f, "../../../testdata/extauthz/*.yaml", "../../../testdata/hostile/envoy.yaml", "../../../testdata/mcp/envoy.yaml") {
		f.Add(s, false, false)
	}
	for _, req := range buildValueCases(f) {
		if wire, err := proto.Marshal(req); err == nil && len(wire) < 4096 {
			f.Add(wire, false, false)
			f.Add(wire, true, true)
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte, skipBody, allowDups bool) {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			return
		}
		if err := sameAuditJSON(&req, InputOptions{MaxBodyBytes: 1 << 16, SkipBodyParse: skipBody, AllowDuplicateKeys: allowDups}, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzAuditJSONIdentity does the same on requests built from fuzz bytes as
// FuzzEnvoyKey builds them, with the identity members (subject, verified
// claims, peer).
func FuzzAuditJSONIdentity(f *testing.F) {
	for _, a := range envoyKeySeeds {
		f.Add(a.path, a.method, a.headers, a.body, a.rawBody, a.ext, a.principal, a.sec, a.nanos, a.flags, a.subject, a.claims, a.dns)
	}
	f.Fuzz(func(t *testing.T, path, method, headers, body string, rawBody []byte, ext, principal string,
		sec int64, nanos int32, flags uint16, subject, claims, dns string,
	) {
		a := envoyKeyArgs{path, method, headers, body, rawBody, ext, principal, sec, nanos, flags, subject, claims, dns, ""}
		req, opts, ident := a.request()
		if err := sameAuditJSON(req, opts, ident); err != nil {
			t.Fatal(err)
		}
	})
}
