package deploy_test

// Checks of the Envoy bootstraps in deploy/envoy and the Istio manifests in
// deploy/istio. No Envoy binary runs here: the bootstraps are parsed into
// go-control-plane's generated types, which know every field, type and enum
// Envoy does, and checked with the generated protoc-gen-validate rules,
// including inside every typed_config. What Envoy checks only at runtime
// (that files exist, that DNS resolves) is not checked.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Registered so that the typed_config Anys resolve. Keep one import per
	// "@type" the bootstraps use.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"

	"github.com/verdictpdp/verdict/internal/config"
)

// envoyBootstraps are the files under test and whether each talks TLS to
// Verdict.
var envoyBootstraps = map[string]bool{
	"envoy/envoy.yaml":           true,
	"envoy/envoy-plaintext.yaml": false,
}

const envoyExtAuthzName = "envoy.filters.http.ext_authz"

// envoyLoad parses a bootstrap the way Envoy reads one (YAML → JSON → proto,
// unknown fields and unknown enum values rejected), validates it and every
// typed_config inside it, and checks that each cluster named by a route, a
// gRPC service or an HTTP URI is defined. It returns the bootstrap and every
// message in it, typed_configs unpacked.
func envoyLoad(data []byte) (*bootstrapv3.Bootstrap, []proto.Message, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, nil, fmt.Errorf("yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: %w", err)
	}
	var msgs []proto.Message
	if err := envoyWalk(b.ProtoReflect(), func(m proto.Message) { msgs = append(msgs, m) }); err != nil {
		return nil, nil, err
	}
	if err := envoyCheckRefs(b, msgs); err != nil {
		return nil, nil, err
	}
	return b, msgs, nil
}

// envoyWalk visits m and every message under it. The generated ValidateAll
// stops at an Any, so each Any is unpacked (its type must be registered) and
// validated here, then walked in turn.
func envoyWalk(m protoreflect.Message, visit func(proto.Message)) error {
	visit(m.Interface())
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
		}
		v, ok := inner.(interface{ ValidateAll() error })
		if !ok {
			return fmt.Errorf("%s: no generated validation", a.GetTypeUrl())
		}
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
		}
		return envoyWalk(inner.ProtoReflect(), visit)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = envoyWalk(mv.Message(), visit)
					return err == nil
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len() && err == nil; i++ {
					err = envoyWalk(v.List().Get(i).Message(), visit)
				}
			}
		case fd.Message() != nil:
			err = envoyWalk(v.Message(), visit)
		}
		return err == nil
	})
	return err
}

// envoyCheckRefs reports cluster names used but not defined: Envoy would
// refuse the bootstrap (envoy_grpc) or answer 503 (routes).
func envoyCheckRefs(b *bootstrapv3.Bootstrap, msgs []proto.Message) error {
	defined := map[string]bool{}
	for _, c := range b.GetStaticResources().GetClusters() {
		defined[c.GetName()] = true
	}
	var errs []error
	use := func(what, name string) {
		if name != "" && !defined[name] {
			errs = append(errs, fmt.Errorf("%s names cluster %q, which is not defined", what, name))
		}
	}
	for _, m := range msgs {
		switch m := m.(type) {
		case *corev3.GrpcService_EnvoyGrpc:
			use("envoy_grpc", m.GetClusterName())
		case *routev3.RouteAction:
			use("route", m.GetCluster())
		case *corev3.HttpUri:
			use("http_uri", m.GetCluster())
		case *clusterv3.Cluster:
			if n := m.GetLoadAssignment().GetClusterName(); n != "" && n != m.GetName() {
				errs = append(errs, fmt.Errorf("cluster %q: load_assignment.cluster_name is %q", m.GetName(), n))
			}
		}
	}
	return errors.Join(errs...)
}

// envoyAll returns the messages of type T among msgs.
func envoyAll[T proto.Message](msgs []proto.Message) []T {
	var out []T
	for _, m := range msgs {
		if t, ok := m.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// envoyPerRoute unpacks a route's ext_authz per-route config (nil if none).
func envoyPerRoute(r *routev3.Route) (*extauthzv3.ExtAuthzPerRoute, error) {
	a, ok := r.GetTypedPerFilterConfig()[envoyExtAuthzName]
	if !ok {
		return nil, nil
	}
	pr := &extauthzv3.ExtAuthzPerRoute{}
	return pr, a.UnmarshalTo(pr)
}

// envoyCheckSemantics checks what Verdict's documentation asks of the Envoy
// side (docs/configuration.md "Envoy", docs/security.md).
func envoyCheckSemantics(b *bootstrapv3.Bootstrap, msgs []proto.Message, tls bool) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	// The connection manager: path normalization, ext_authz before the router.
	hcms := envoyAll[*hcmv3.HttpConnectionManager](msgs)
	if len(hcms) != 1 {
		return fmt.Errorf("want one http_connection_manager, got %d", len(hcms))
	}
	hcm := hcms[0]
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() ||
		hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		fail("http_connection_manager: want normalize_path, merge_slashes and path_with_escaped_slashes_action REJECT_REQUEST")
	}
	var names []string
	for _, f := range hcm.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	if len(names) < 2 || names[len(names)-1] != "envoy.filters.http.router" ||
		!slices.Contains(names, envoyExtAuthzName) {
		fail("http_filters: want ext_authz, then the router last; got %v", names)
	}

	// The ext_authz filter.
	eas := envoyAll[*extauthzv3.ExtAuthz](msgs)
	if len(eas) != 1 {
		return errors.Join(append(errs, fmt.Errorf("want one ext_authz filter, got %d", len(eas)))...)
	}
	ea := eas[0]
	if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		fail("ext_authz: transport_api_version is %v, want V3", ea.GetTransportApiVersion())
	}
	if ea.GetFailureModeAllow() {
		fail("ext_authz: failure_mode_allow must be false")
	}
	if ea.GetStatusOnError().GetCode() != 403 {
		fail("ext_authz: status_on_error is %v, want 403", ea.GetStatusOnError().GetCode())
	}
	if wb := ea.GetWithRequestBody(); wb == nil || wb.GetMaxRequestBytes() == 0 ||
		wb.GetMaxRequestBytes() > 1<<20 || !wb.GetPackAsBytes() {
		fail("ext_authz: with_request_body must be set, max_request_bytes at most 1 MiB (--max-body-bytes), pack_as_bytes true")
	}
	// The gRPC service: envoy_grpc calls envoy.service.auth.v3.Authorization
	// on the cluster, which is all a bootstrap can say about the method.
	gs := ea.GetGrpcService()
	if gs.GetEnvoyGrpc().GetClusterName() != "verdict" {
		fail("ext_authz: grpc_service.envoy_grpc.cluster_name is %q, want verdict", gs.GetEnvoyGrpc().GetClusterName())
	}
	if d := gs.GetTimeout().AsDuration(); d <= 0 || d > 5*time.Second {
		fail("ext_authz: grpc_service.timeout is %v, want a short positive timeout", d)
	}

	// The routes: every per-filter key names a filter of the chain, the MCP
	// route is marked, only the health route skips Verdict.
	var mcpMarked, healthOff bool
	for _, r := range envoyAll[*routev3.Route](msgs) {
		for k := range r.GetTypedPerFilterConfig() {
			if !slices.Contains(names, k) {
				fail("route %v: typed_per_filter_config names %q, which is not in http_filters", r.GetMatch(), k)
			}
		}
		pr, err := envoyPerRoute(r)
		if err != nil {
			fail("route %v: %v", r.GetMatch(), err)
			continue
		}
		if pr.GetDisabled() {
			if r.GetMatch().GetPath() != "/healthz" {
				fail("route %v: ext_authz disabled on a route other than /healthz", r.GetMatch())
			}
			healthOff = true
		}
		if r.GetRoute().GetCluster() == "mcp_crm" {
			if pr.GetCheckSettings().GetContextExtensions()["mcp_server"] != "crm" {
				fail("route to mcp_crm: want check_settings.context_extensions mcp_server: crm")
			} else {
				mcpMarked = true
			}
		}
	}
	if !mcpMarked {
		fail("no MCP route marked with mcp_server")
	}
	if !healthOff {
		fail("no /healthz route with ext_authz disabled")
	}

	// The verdict cluster: HTTP/2, and mTLS when tls.
	var verdict *clusterv3.Cluster
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == "verdict" {
			verdict = c
		}
	}
	if verdict == nil {
		return errors.Join(append(errs, errors.New("no verdict cluster"))...)
	}
	po := &upstreamhttpv3.HttpProtocolOptions{}
	if a := verdict.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; a == nil || a.UnmarshalTo(po) != nil ||
		po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		fail("cluster verdict: want HttpProtocolOptions explicit_http_config.http2_protocol_options (gRPC)")
	}
	var port uint32
	for _, e := range verdict.GetLoadAssignment().GetEndpoints() {
		for _, le := range e.GetLbEndpoints() {
			port = le.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
		}
	}
	if port != 9191 {
		fail("cluster verdict: port %d, want 9191", port)
	}
	ts := verdict.GetTransportSocket()
	if !tls {
		if ts != nil {
			fail("cluster verdict: plaintext bootstrap has a transport_socket")
		}
		return errors.Join(errs...)
	}
	up := &tlsv3.UpstreamTlsContext{}
	if ts.GetTypedConfig() == nil || ts.GetTypedConfig().UnmarshalTo(up) != nil {
		return errors.Join(append(errs, errors.New("cluster verdict: want an UpstreamTlsContext transport_socket"))...)
	}
	ctc := up.GetCommonTlsContext()
	if len(ctc.GetTlsCertificates()) != 1 || ctc.GetTlsCertificates()[0].GetCertificateChain().GetFilename() == "" ||
		ctc.GetTlsCertificates()[0].GetPrivateKey().GetFilename() == "" {
		fail("cluster verdict: want one client certificate and key (mTLS)")
	}
	if ctc.GetValidationContext().GetTrustedCa().GetFilename() == "" {
		fail("cluster verdict: want validation_context.trusted_ca")
	}
	if !slices.Contains(ctc.GetAlpnProtocols(), "h2") {
		fail("cluster verdict: want alpn_protocols [h2]: grpc-go refuses TLS without it")
	}
	return errors.Join(errs...)
}

func TestEnvoyBootstraps(t *testing.T) {
	for file, tls := range envoyBootstraps {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b, msgs, err := envoyLoad(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := envoyCheckSemantics(b, msgs, tls); err != nil {
				t.Fatal(err)
			}
			if a := b.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 9901 {
				t.Errorf("admin on %s:%d, want 127.0.0.1:9901", a.GetAddress(), a.GetPortValue())
			}
		})
	}
}

// TestEnvoyBootstrapMutations checks that the checks above catch mistakes:
// each case changes envoy.yaml once and must be refused.
func TestEnvoyBootstrapMutations(t *testing.T) {
	orig, err := os.ReadFile("envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new, want string
	}{
		{"unknown field", "failure_mode_allow: false", "failure_mode_alow: false", "unknown field"},
		{"bad enum", "path_with_escaped_slashes_action: REJECT_REQUEST", "path_with_escaped_slashes_action: REJECT", "enum"},
		{"wrong type", "max_request_bytes: 1048576", "max_request_bytes: lots", "maxRequestBytes"},
		{"rule inside typed_config", "stat_prefix: ingress_http", `stat_prefix: ""`, "StatPrefix"},
		{"rule in the bootstrap", "port_value: 9191", "port_value: 91910", "PortValue"},
		{"unregistered type", "ext_authz.v3.ExtAuthzPerRoute", "ext_authz.v3.ExtAuthzPerRout", "ExtAuthzPerRout"},
		{"missing grpc cluster", "envoy_grpc: {cluster_name: verdict}", "envoy_grpc: {cluster_name: verdikt}", `"verdikt"`},
		{"missing route cluster", "route: {cluster: app}", "route: {cluster: ap}", `"ap"`},
		{"fail open", "failure_mode_allow: false", "failure_mode_allow: true", "failure_mode_allow"},
		{"HTTP/1.1 to verdict", "http2_protocol_options: {}", "http_protocol_options: {}", "http2_protocol_options"},
		{"MCP route unmarked", "mcp_server: crm", "mcp_servers: crm", "mcp_server"},
		{"per-route key typo", "envoy.filters.http.ext_authz:\n", "envoy.filters.http.extauthz:\n", "not in http_filters"},
		{"no path normalization", "normalize_path: true", "normalize_path: false", "normalize_path"},
		{"body as string", "pack_as_bytes: true", "pack_as_bytes: false", "pack_as_bytes"},
		{"no ALPN", "alpn_protocols: [h2]", "alpn_protocols: [http/1.1]", "alpn_protocols"},
		{"empty key file", "private_key: {filename: /etc/envoy/tls/client-key.pem}", `private_key: {filename: ""}`, "Filename"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(orig, []byte(tc.old)) {
				t.Fatalf("envoy.yaml has no %q to change", tc.old)
			}
			mutated := bytes.Replace(orig, []byte(tc.old), []byte(tc.new), 1)
			b, msgs, err := envoyLoad(mutated)
			if err == nil {
				err = envoyCheckSemantics(b, msgs, true)
			}
			if err == nil {
				t.Fatal("mutated bootstrap accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// Istio. istio.io/api is not a dependency of Verdict, so the manifests are
// checked against local structs mirroring the fields these files use
// (istio.io/api networking/v1, security/v1, mesh/v1alpha1 names), decoded
// strictly: a misspelt or misplaced field fails. A field Istio has and these
// structs lack fails too; add it here when a manifest starts using it.

type istioMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

type istioSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type istioOperator struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   istioMeta `json:"metadata"`
	Spec       struct {
		MeshConfig struct {
			ExtensionProviders []struct {
				Name              string `json:"name"`
				EnvoyExtAuthzGrpc *struct {
					Service                   string `json:"service"`
					Port                      uint32 `json:"port"`
					Timeout                   string `json:"timeout,omitempty"`
					FailOpen                  *bool  `json:"failOpen,omitempty"`
					StatusOnError             string `json:"statusOnError,omitempty"`
					ClearRouteCache           bool   `json:"clearRouteCache,omitempty"`
					IncludeRequestBodyInCheck *struct {
						MaxRequestBytes     uint32 `json:"maxRequestBytes"`
						AllowPartialMessage bool   `json:"allowPartialMessage"`
						PackAsBytes         bool   `json:"packAsBytes"`
					} `json:"includeRequestBodyInCheck,omitempty"`
				} `json:"envoyExtAuthzGrpc,omitempty"`
			} `json:"extensionProviders"`
		} `json:"meshConfig"`
	} `json:"spec"`
}

type istioOperation struct {
	Hosts      []string `json:"hosts,omitempty"`
	NotHosts   []string `json:"notHosts,omitempty"`
	Ports      []string `json:"ports,omitempty"`
	Methods    []string `json:"methods,omitempty"`
	NotMethods []string `json:"notMethods,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	NotPaths   []string `json:"notPaths,omitempty"`
}

type istioSource struct {
	Principals    []string `json:"principals,omitempty"`
	NotPrincipals []string `json:"notPrincipals,omitempty"`
	Namespaces    []string `json:"namespaces,omitempty"`
}

type istioAuthorizationPolicy struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   istioMeta `json:"metadata"`
	Spec       struct {
		Selector *istioSelector `json:"selector,omitempty"`
		Action   string         `json:"action"`
		Provider *struct {
			Name string `json:"name"`
		} `json:"provider,omitempty"`
		Rules []struct {
			From []struct {
				Source istioSource `json:"source"`
			} `json:"from,omitempty"`
			To []struct {
				Operation istioOperation `json:"operation"`
			} `json:"to,omitempty"`
		} `json:"rules"`
	} `json:"spec"`
}

type istioDestinationRule struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   istioMeta `json:"metadata"`
	Spec       struct {
		Host          string `json:"host"`
		TrafficPolicy struct {
			TLS struct {
				Mode string `json:"mode"`
			} `json:"tls"`
		} `json:"trafficPolicy"`
	} `json:"spec"`
}

type istioPeerAuthentication struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   istioMeta `json:"metadata"`
	Spec       struct {
		Selector *istioSelector `json:"selector,omitempty"`
		MTLS     struct {
			Mode string `json:"mode"`
		} `json:"mtls"`
	} `json:"spec"`
}

// istioManifests holds the decoded documents by kind.
type istioManifests struct {
	operators []istioOperator
	policies  []istioAuthorizationPolicy
	rules     []istioDestinationRule
	peers     []istioPeerAuthentication
}

// istioDecode strictly decodes every document of a multi-document YAML
// file by its kind, and fails on a kind it does not know.
func istioDecode(m *istioManifests, data []byte) error {
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(d), &head); err != nil {
			return err
		}
		var err error
		switch head.APIVersion + " " + head.Kind {
		case " ":
			continue // empty document
		case "install.istio.io/v1alpha1 IstioOperator":
			var o istioOperator
			err = istioStrict([]byte(d), &o)
			m.operators = append(m.operators, o)
		case "security.istio.io/v1 AuthorizationPolicy":
			var p istioAuthorizationPolicy
			err = istioStrict([]byte(d), &p)
			m.policies = append(m.policies, p)
		case "networking.istio.io/v1 DestinationRule":
			var r istioDestinationRule
			err = istioStrict([]byte(d), &r)
			m.rules = append(m.rules, r)
		case "security.istio.io/v1 PeerAuthentication":
			var p istioPeerAuthentication
			err = istioStrict([]byte(d), &p)
			m.peers = append(m.peers, p)
		default:
			err = fmt.Errorf("unexpected %q %q", head.APIVersion, head.Kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// istioStrict decodes doc into v, refusing unknown fields. encoding/json
// matches names regardless of case, Istio and Kubernetes do not: the keys
// are checked again, case-sensitively, against v's json tags.
func istioStrict(doc []byte, v any) error {
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return err
	}
	var generic any
	if err := yaml.Unmarshal(doc, &generic); err != nil {
		return err
	}
	return istioKeys("", generic, reflect.TypeOf(v))
}

func istioKeys(path string, v any, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, _ := v.(map[string]any)
		for k, val := range m {
			var ft reflect.Type
			for i := range t.NumField() {
				if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name == k {
					ft = t.Field(i).Type
				}
			}
			if ft == nil {
				return fmt.Errorf("%s: unknown field %q", path, k)
			}
			if err := istioKeys(path+"."+k, val, ft); err != nil {
				return err
			}
		}
	case reflect.Slice:
		l, _ := v.([]any)
		for i, e := range l {
			if err := istioKeys(fmt.Sprintf("%s[%d]", path, i), e, t.Elem()); err != nil {
				return err
			}
		}
	default:
		// scalars and maps (matchLabels) have no field names to check
	}
	return nil
}

// istioCheck checks what Verdict needs of the mesh: a provider on port
// 9191 that fails closed and sends the body, CUSTOM policies that name it
// and match requests, TLS settings Istio knows.
func istioCheck(m istioManifests) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(m.operators) != 1 {
		return fmt.Errorf("want one IstioOperator, got %d", len(m.operators))
	}
	providers := map[string]string{} // name → service
	for _, p := range m.operators[0].Spec.MeshConfig.ExtensionProviders {
		g := p.EnvoyExtAuthzGrpc
		if g == nil {
			continue
		}
		providers[p.Name] = g.Service
		if g.Port != 9191 {
			fail("provider %s: port %d, want 9191", p.Name, g.Port)
		}
		if g.FailOpen == nil || *g.FailOpen {
			fail("provider %s: want failOpen: false, set explicitly", p.Name)
		}
		if d, err := time.ParseDuration(g.Timeout); err != nil || d <= 0 {
			fail("provider %s: timeout %q: want a positive duration", p.Name, g.Timeout)
		}
		if b := g.IncludeRequestBodyInCheck; b == nil || b.MaxRequestBytes == 0 || b.MaxRequestBytes > 1<<20 || !b.PackAsBytes {
			fail("provider %s: want includeRequestBodyInCheck with maxRequestBytes at most 1 MiB and packAsBytes", p.Name)
		}
	}
	var custom int
	for _, p := range m.policies {
		if !slices.Contains([]string{"ALLOW", "DENY", "AUDIT", "CUSTOM"}, p.Spec.Action) {
			fail("AuthorizationPolicy %s: action %q", p.Metadata.Name, p.Spec.Action)
		}
		if p.Spec.Action != "CUSTOM" {
			continue
		}
		custom++
		if p.Spec.Provider == nil || providers[p.Spec.Provider.Name] == "" {
			fail("AuthorizationPolicy %s: provider is not an envoyExtAuthzGrpc extension provider", p.Metadata.Name)
		}
		if len(p.Spec.Rules) == 0 {
			fail("AuthorizationPolicy %s: CUSTOM without rules never asks Verdict", p.Metadata.Name)
		}
		if p.Spec.Selector == nil || len(p.Spec.Selector.MatchLabels) == 0 {
			fail("AuthorizationPolicy %s: want a selector", p.Metadata.Name)
		}
	}
	if custom == 0 {
		fail("no CUSTOM AuthorizationPolicy")
	}
	for _, r := range m.rules {
		if !slices.Contains([]string{"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"}, r.Spec.TrafficPolicy.TLS.Mode) {
			fail("DestinationRule %s: tls mode %q", r.Metadata.Name, r.Spec.TrafficPolicy.TLS.Mode)
		}
		if providers["verdict"] != r.Spec.Host {
			fail("DestinationRule %s: host %q, provider service %q", r.Metadata.Name, r.Spec.Host, providers["verdict"])
		}
	}
	for _, p := range m.peers {
		if !slices.Contains([]string{"UNSET", "DISABLE", "PERMISSIVE", "STRICT"}, p.Spec.MTLS.Mode) {
			fail("PeerAuthentication %s: mode %q", p.Metadata.Name, p.Spec.MTLS.Mode)
		}
	}
	return errors.Join(errs...)
}

var istioFiles = []string{"istio/extension-provider.yaml", "istio/authorization-policy.yaml", "istio/verdict-mtls.yaml"}

// istioLoad decodes and checks the manifests, with replace applied to the
// file it names (for the mutation cases).
func istioLoad(t *testing.T, replace map[string][2]string) error {
	t.Helper()
	var m istioManifests
	for _, f := range istioFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := replace[f]; ok {
			if !bytes.Contains(data, []byte(r[0])) {
				t.Fatalf("%s has no %q to change", f, r[0])
			}
			data = bytes.Replace(data, []byte(r[0]), []byte(r[1]), 1)
		}
		if err := istioDecode(&m, data); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return istioCheck(m)
}

func TestIstioManifests(t *testing.T) {
	if err := istioLoad(t, nil); err != nil {
		t.Fatal(err)
	}
}

func TestIstioManifestMutations(t *testing.T) {
	const (
		ep = "istio/extension-provider.yaml"
		ap = "istio/authorization-policy.yaml"
		mt = "istio/verdict-mtls.yaml"
	)
	cases := []struct {
		name, file, old, new, want string
	}{
		{"misspelt field", ep, "failOpen: false", "failOpn: false", "unknown field"},
		{"wrong case", ep, "failOpen: false", "failopen: false", "unknown field"},
		{"fail open", ep, "failOpen: false", "failOpen: true", "failOpen"},
		{"wrong port", ep, "port: 9191", "port: 8181", "port 8181"},
		{"no body", ep, "packAsBytes: true", "packAsBytes: false", "includeRequestBodyInCheck"},
		{"field at the wrong level", ap, "  action: CUSTOM", "  action: CUSTOM\n  name: verdict", "unknown field"},
		{"unknown provider", ap, "name: verdict ", "name: verdikt ", "provider"},
		{"bad action", ap, "action: CUSTOM", "action: EXTERNAL", "action"},
		{"old API version", ap, "security.istio.io/v1\n", "security.istio.io/v2\n", "unexpected"},
		{"bad TLS mode", mt, "mode: ISTIO_MUTUAL", "mode: MUTUAL_TLS", "tls mode"},
		{"rule for another host", mt, "host: verdict.verdict-system", "host: verdict.default", "host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := istioLoad(t, map[string][2]string{tc.file: {tc.old, tc.new}})
			if err == nil {
				t.Fatal("mutated manifests accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestIstioVerdictConfig loads the Verdict configuration for Istio with
// Verdict's own loader: listening beyond loopback, MCP routes marked.
func TestIstioVerdictConfig(t *testing.T) {
	cfg, err := config.Load("istio/verdict-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.GRPC.Addr != "0.0.0.0:9191" {
		t.Errorf("grpc.addr %q: the sidecars reach Verdict over the network", cfg.GRPC.Addr)
	}
	if len(cfg.MCP.Routes) == 0 {
		t.Error("no mcp.routes: every request would go to the ext_authz policy")
	}
	for _, r := range cfg.MCP.Routes {
		if r.Server == "" || r.PathPrefix == "" {
			t.Errorf("mcp.routes entry %+v: want path_prefix and server", r)
		}
	}
}

// TestEnvoyConfigurationDocSnippet checks the ext_authz filter and cluster
// docs/configuration.md shows under "Envoy" the same way as the bootstraps.
func TestEnvoyConfigurationDocSnippet(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "The ext_authz filter and the `verdict` cluster it calls:\n\n```yaml\n")
	if !ok {
		t.Fatal("docs/configuration.md: the Envoy snippet is gone")
	}
	snippet, _, _ := strings.Cut(rest, "```")
	js, err := yaml.YAMLToJSON([]byte(snippet))
	if err != nil {
		t.Fatal(err)
	}
	// The snippet's two keys belong to an HttpConnectionManager and to the
	// bootstrap's static_resources.
	var parts map[string]json.RawMessage
	if err := json.Unmarshal(js, &parts); err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := protojson.Unmarshal([]byte(`{"http_filters":`+string(parts["http_filters"])+`}`), hcm); err != nil {
		t.Fatal(err)
	}
	sr := &bootstrapv3.Bootstrap_StaticResources{}
	if err := protojson.Unmarshal([]byte(`{"clusters":`+string(parts["clusters"])+`}`), sr); err != nil {
		t.Fatal(err)
	}
	var msgs []proto.Message
	for _, m := range []proto.Message{hcm, sr} {
		if err := envoyWalk(m.ProtoReflect(), func(m proto.Message) { msgs = append(msgs, m) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := sr.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if err := envoyCheckRefs(&bootstrapv3.Bootstrap{StaticResources: sr}, msgs); err != nil {
		t.Fatal(err)
	}
	ea := envoyAll[*extauthzv3.ExtAuthz](msgs)
	if len(ea) != 1 || ea[0].GetFailureModeAllow() || ea[0].GetWithRequestBody() == nil {
		t.Fatal("snippet: want one ext_authz filter, failing closed, with the body")
	}
	po := &upstreamhttpv3.HttpProtocolOptions{}
	if a := sr.GetClusters()[0].GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; a == nil ||
		a.UnmarshalTo(po) != nil || po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Fatal("snippet: the verdict cluster must speak HTTP/2")
	}
}
