package extauthz

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/verdictpdp/verdict/internal/audit"
)

// WriteAuditInput implements audit.InputWriter: on a cache hit the audit
// log's copy of the input is written as JSON straight from the CheckRequest,
// the JSON twin of BuildValue plus the identity members. Members are
// written in Rego's key order, and every check that makes BuildValue fail
// fails it (TestAuditJSONMatchesValue, FuzzAuditJSON).
func (in *envoyInput) WriteAuditInput(w *audit.JSONWriter) error {
	if in.done || !handBuilt {
		v, err := in.Value()
		if err != nil {
			return err
		}
		w.Value(v)
		return nil
	}
	line, err := in.check()
	if err != nil {
		return err
	}
	return writeInput(w, in.req, in.opts, line, in.ident)
}

var errUTF8 = badRequest(reasonEncode, errors.New("string field or map key is not valid UTF-8"))

// writeInput writes the input members in key order: attributes,
// normalized_path, parsed_body, parsed_path, parsed_query, peer,
// source_principal, subject, truncated_body, verified_claims, version.
func writeInput(w *audit.JSONWriter, req *authv3.CheckRequest, opts InputOptions, line *requestLine, ident *requestIdentity) error {
	w.BeginObject()
	w.Key("attributes")
	if err := writeAttributes(w, req.GetAttributes()); err != nil {
		return err
	}
	w.Key("normalized_path")
	w.String(line.norm)

	var truncated bool
	if !opts.SkipBodyParse {
		h := line.http
		body, trunc, err := parseBody(h.GetHeaders(), h.GetBody(), h.GetRawBody(), opts.jsonLimits())
		if err != nil {
			return err
		}
		w.Key("parsed_body")
		if err := w.Go(body); err != nil {
			return badRequest(reasonConvert, err)
		}
		truncated = trunc
	}
	segs, q, err := line.pathAndQuery()
	if err != nil {
		return err
	}
	w.Key("parsed_path")
	w.BeginArray()
	for _, s := range segs {
		w.String(s)
	}
	w.EndArray()
	w.Key("parsed_query")
	var scratch [16]string
	w.BeginObject()
	for _, k := range sortedKeys(scratch[:0], q) {
		w.Key(k)
		w.BeginArray()
		for _, v := range q[k] {
			w.String(v)
		}
		w.EndArray()
	}
	w.EndObject()

	if err := writeIdentity(w, ident, "peer"); err != nil {
		return err
	}
	if p := req.GetAttributes().GetSource().GetPrincipal(); p != "" {
		w.Key("source_principal")
		w.String(p)
	}
	if err := writeIdentity(w, ident, "subject"); err != nil {
		return err
	}
	if !opts.SkipBodyParse {
		w.Key("truncated_body")
		w.Bool(truncated)
	}
	if err := writeIdentity(w, ident, "verified_claims"); err != nil {
		return err
	}
	w.Key("version")
	if err := w.Go(versionInfo); err != nil { // versionTerm's Go form
		return badRequest(reasonConvert, err)
	}
	w.EndObject()
	return nil
}

// writeIdentity writes the identity's member name when it adds one.
func writeIdentity(w *audit.JSONWriter, id *requestIdentity, name string) error {
	x, ok := id.member(name)
	if !ok {
		return nil
	}
	w.Key(name)
	if err := w.Go(x); err != nil {
		return badRequest(reasonConvert, err)
	}
	return nil
}

// sortedKeys appends m's keys to dst in byte-wise order.
func sortedKeys[V any](dst []string, m map[string]V) []string {
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}

// writeField writes a proto3 string as protojson does: left out when empty,
// refused when not valid UTF-8.
func writeField(w *audit.JSONWriter, key, s string) error {
	if s == "" {
		return nil
	}
	if !utf8.ValidString(s) {
		return errUTF8
	}
	w.Key(key)
	w.String(s)
	return nil
}

func writeStringMap(w *audit.JSONWriter, m map[string]string) error {
	var scratch [32]string
	w.BeginObject()
	for _, k := range sortedKeys(scratch[:0], m) {
		v := m[k]
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return errUTF8
		}
		w.Key(k)
		w.String(v)
	}
	w.EndObject()
	return nil
}

// writeViaJSON writes the subtrees BuildValue takes through protojson,
// built the same way.
func writeViaJSON(w *audit.JSONWriter, m proto.Message) error {
	var b builder
	t := b.viaJSON(m)
	if b.err != nil {
		return b.err
	}
	w.Value(t.Value)
	return nil
}

// jsonMember writes one member of a message (key and value) when present.
type jsonMember[M any] struct {
	name  string
	write func(w *audit.JSONWriter, m M) error
}

// sortedMembers merges the string members BuildValue writes from a table
// with the others, in key order.
func sortedMembers[M any](strs []stringMember[M], others ...jsonMember[M]) []jsonMember[M] {
	out := slices.Clone(others)
	for _, f := range strs {
		out = append(out, jsonMember[M]{name: f.name, write: func(w *audit.JSONWriter, m M) error {
			return writeField(w, f.name, f.get(m))
		}})
	}
	slices.SortFunc(out, func(a, b jsonMember[M]) int { return strings.Compare(a.name, b.name) })
	return out
}

var attributeMembers = []jsonMember[*authv3.AttributeContext]{
	{"contextExtensions", func(w *audit.JSONWriter, a *authv3.AttributeContext) error {
		if m := a.GetContextExtensions(); len(m) > 0 {
			w.Key("contextExtensions")
			return writeStringMap(w, m)
		}
		return nil
	}},
	{"destination", func(w *audit.JSONWriter, a *authv3.AttributeContext) error {
		if p := a.GetDestination(); p != nil {
			w.Key("destination")
			return writePeer(w, p)
		}
		return nil
	}},
	{"metadataContext", func(w *audit.JSONWriter, a *authv3.AttributeContext) error {
		if m := a.GetMetadataContext(); m != nil {
			w.Key("metadataContext")
			return writeViaJSON(w, m)
		}
		return nil
	}},
	{"request", func(w *audit.JSONWriter, a *authv3.AttributeContext) error {
		if r := a.GetRequest(); r != nil {
			w.Key("request")
			return writeRequest(w, r)
		}
		return nil
	}},
	{"routeMetadataContext", func(w *audit.JSONWriter, a *authv3.AttributeContext) error {
		if m := a.GetRouteMetadataContext(); m != nil {
			w.Key("routeMetadataContext")
			return writeViaJSON(w, m)
		}
		return nil
	}},
	{"source", func(w *audit.JSONWriter, a *authv3.AttributeContext) error {
		if p := a.GetSource(); p != nil {
			w.Key("source")
			return writePeer(w, p)
		}
		return nil
	}},
	{"tlsSession", func(w *audit.JSONWriter, a *authv3.AttributeContext) error {
		if t := a.GetTlsSession(); t != nil {
			w.Key("tlsSession")
			return writeViaJSON(w, t)
		}
		return nil
	}},
}

func writeAttributes(w *audit.JSONWriter, a *authv3.AttributeContext) error {
	return writeMembers(w, attributeMembers, a)
}

func writeMembers[M any](w *audit.JSONWriter, members []jsonMember[M], m M) error {
	w.BeginObject()
	for _, f := range members {
		if err := f.write(w, m); err != nil {
			return err
		}
	}
	w.EndObject()
	return nil
}

var peerMembers = sortedMembers(peerStrings,
	jsonMember[peerAttrs]{"address", func(w *audit.JSONWriter, p peerAttrs) error {
		if a := p.GetAddress(); a != nil {
			w.Key("address")
			return writeAddress(w, a)
		}
		return nil
	}},
	jsonMember[peerAttrs]{"labels", func(w *audit.JSONWriter, p peerAttrs) error {
		if m := p.GetLabels(); len(m) > 0 {
			w.Key("labels")
			return writeStringMap(w, m)
		}
		return nil
	}},
)

func writePeer(w *audit.JSONWriter, p peerAttrs) error { return writeMembers(w, peerMembers, p) }

// writeAddress is builder.address's twin: the socket address by hand, every
// other shape through protojson.
func writeAddress(w *audit.JSONWriter, a *corev3.Address) error {
	sw, ok := a.GetAddress().(*corev3.Address_SocketAddress)
	if !ok || sw == nil || sw.SocketAddress == nil || sw.SocketAddress.GetNetworkNamespaceFilepath() != "" {
		return writeViaJSON(w, a)
	}
	sa := sw.SocketAddress
	w.BeginObject()
	w.Key("socketAddress")
	w.BeginObject()
	if err := writeField(w, "address", sa.GetAddress()); err != nil {
		return err
	}
	if sa.GetIpv4Compat() {
		w.Key("ipv4Compat")
		w.Bool(true)
	}
	var num [20]byte
	switch port := sa.GetPortSpecifier().(type) {
	case *corev3.SocketAddress_NamedPort:
		if port != nil {
			if !utf8.ValidString(port.NamedPort) {
				return errUTF8
			}
			w.Key("namedPort")
			w.String(port.NamedPort)
		}
	case *corev3.SocketAddress_PortValue:
		if port != nil {
			w.Key("portValue")
			w.Number(string(strconv.AppendUint(num[:0], uint64(port.PortValue), 10)))
		}
	}
	if p := sa.GetProtocol(); p != corev3.SocketAddress_TCP {
		w.Key("protocol")
		// protojson writes a value the enum does not name as its number.
		if name, ok := corev3.SocketAddress_Protocol_name[int32(p)]; ok {
			w.String(name)
		} else {
			w.Number(string(strconv.AppendInt(num[:0], int64(p), 10)))
		}
	}
	if err := writeField(w, "resolverName", sa.GetResolverName()); err != nil {
		return err
	}
	w.EndObject()
	w.EndObject()
	return nil
}

func writeRequest(w *audit.JSONWriter, r *authv3.AttributeContext_Request) error {
	w.BeginObject()
	if h := r.GetHttp(); h != nil {
		w.Key("http")
		if err := writeMembers(w, httpMembers, h); err != nil {
			return err
		}
	}
	if t := r.GetTime(); t != nil {
		if err := writeTimestamp(w, t); err != nil {
			return err
		}
	}
	w.EndObject()
	return nil
}

// writeTimestamp writes what protojson writes and refuses what it refuses,
// as builder.timestamp does.
func writeTimestamp(w *audit.JSONWriter, ts *timestamppb.Timestamp) error {
	if err := ts.CheckValid(); err != nil {
		return badRequest(reasonEncode, err)
	}
	var buf [40]byte
	w.Key("time")
	w.String(string(appendTimestamp(buf[:0], ts)))
	return nil
}

var httpMembers = sortedMembers(httpStrings,
	jsonMember[httpAttrs]{"headerMap", func(w *audit.JSONWriter, h httpAttrs) error {
		if m := h.GetHeaderMap(); m != nil {
			w.Key("headerMap")
			return writeViaJSON(w, m)
		}
		return nil
	}},
	jsonMember[httpAttrs]{"headers", func(w *audit.JSONWriter, h httpAttrs) error {
		if m := h.GetHeaders(); len(m) > 0 {
			w.Key("headers")
			return writeStringMap(w, m)
		}
		return nil
	}},
)
