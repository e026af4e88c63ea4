package extauthz

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/projection"
)

var _ engine.PrunedInput = (*envoyInput)(nil)

// PrunedValue builds only the members of the input that p reads, with the
// builder's own code, under the conditions the fast key is written under
// (byHand: Value would succeed, and would build every member by hand). A
// member read whole, or one this adapter does not take apart (a peer, the
// time, parsed_path, the identity, ...), is built whole; attributes,
// request, http and headers are built with only the members read below
// them. A member the input never has is left out, as Value leaves it out. It
// returns false, and the engine evaluates Value, for a projection that reads
// the input itself or a member Value does not write today (if it starts to,
// the whole input is evaluated).
func (in *envoyInput) PrunedValue(p *projection.Projection) (ast.Value, bool) {
	t := p.Tree()
	if t == nil || t.Whole {
		return nil, false
	}
	line, ok := in.byHand()
	if !ok {
		return nil, false
	}
	pr := pruner{in: in, line: line, b: builder{terms: make([]ast.Term, 0, 2*len(line.http.GetHeaders())+16), kv: make([][2]*ast.Term, 0, len(line.http.GetHeaders())+8)}}
	v, ok := pr.input(t)
	if !ok || pr.b.err != nil {
		return nil, false
	}
	in.pruned = true
	return v, true
}

// pruner writes the members a Tree names, as builder writes them.
type pruner struct {
	in   *envoyInput
	line *requestLine
	b    builder
}

func (pr *pruner) input(t *projection.Tree) (ast.Value, bool) {
	b, in := &pr.b, pr.in
	for _, m := range t.Members {
		name, ok := m.Key.(ast.String)
		if !ok {
			continue // the input is an object: a number names no member
		}
		switch string(name) {
		case "attributes":
			a := in.req.GetAttributes()
			if m.Whole {
				b.add(kAttributes, b.attributes(a))
			} else {
				b.add(kAttributes, pr.attributes(a, m.Tree))
			}
		case "version":
			b.add(kVersion, versionTerm)
		case "parsed_path", "parsed_query":
			segs, q, err := pr.line.pathAndQuery()
			if err != nil {
				return nil, false
			}
			if name == "parsed_path" {
				b.add(kParsedPath, b.strings(segs))
			} else {
				b.add(kParsedQuery, b.query(q))
			}
		case "normalized_path":
			b.add(kNormalizedPath, b.str(pr.line.norm))
		case "parsed_body", "truncated_body":
			if in.opts.SkipBodyParse {
				continue
			}
			// byHand let through only requests without a body to parse:
			// parseBody answers without looking at the payload.
			h := pr.line.http
			body, truncated, err := parseBody(h.GetHeaders(), h.GetBody(), h.GetRawBody(), in.opts.jsonLimits())
			if err != nil {
				return nil, false
			}
			if name == "truncated_body" {
				b.add(kTruncatedBody, ast.InternedTerm(truncated))
				continue
			}
			v, err := ast.InterfaceToValue(body)
			if err != nil {
				return nil, false
			}
			b.add(kParsedBody, b.term(v))
		case "source_principal":
			if p := in.req.GetAttributes().GetSource().GetPrincipal(); p != "" {
				b.add(kSourcePrincipal, b.str(p))
			}
		case "subject", "verified_claims", "peer":
			x, ok := in.ident.member(string(name))
			if !ok {
				continue
			}
			v, err := ast.InterfaceToValue(x)
			if err != nil {
				return nil, false
			}
			b.add(ast.NewTerm(name), b.term(v))
		case "mcp":
			// Requests decided here are not decided as MCP: their input
			// has no mcp member.
		default:
			return nil, false
		}
	}
	return ast.NewObject(b.kv...), true
}

func (pr *pruner) attributes(a *authv3.AttributeContext, t *projection.Tree) *ast.Term {
	b := &pr.b
	start := len(b.kv)
	for _, m := range t.Members {
		name, ok := m.Key.(ast.String)
		if !ok {
			continue
		}
		switch string(name) {
		case "source":
			if p := a.GetSource(); p != nil {
				b.add(kSource, b.peer(p))
			}
		case "destination":
			if p := a.GetDestination(); p != nil {
				b.add(kDestination, b.peer(p))
			}
		case "request":
			if r := a.GetRequest(); r != nil {
				if m.Whole {
					b.add(kRequest, b.request(r))
				} else {
					b.add(kRequest, pr.request(r, m.Tree))
				}
			}
		case "contextExtensions":
			if ext := a.GetContextExtensions(); len(ext) > 0 {
				b.add(kContextExtensions, b.stringMap(ext))
			}
		}
		// The other members are written through protojson, and byHand let
		// through only requests without them.
	}
	return b.object(start)
}

func (pr *pruner) request(r *authv3.AttributeContext_Request, t *projection.Tree) *ast.Term {
	b := &pr.b
	start := len(b.kv)
	for _, m := range t.Members {
		name, ok := m.Key.(ast.String)
		if !ok {
			continue
		}
		switch string(name) {
		case "time":
			if ts := r.GetTime(); ts != nil {
				b.add(kTime, b.timestamp(ts))
			}
		case "http":
			if h := r.GetHttp(); h != nil {
				if m.Whole {
					b.add(kHTTP, b.http(h))
				} else {
					b.add(kHTTP, pr.http(h, m.Tree))
				}
			}
		}
	}
	return b.object(start)
}

func (pr *pruner) http(h *authv3.AttributeContext_HttpRequest, t *projection.Tree) *ast.Term {
	b := &pr.b
	start := len(b.kv)
	for _, m := range t.Members {
		name, ok := m.Key.(ast.String)
		if !ok {
			continue
		}
		if name == "headers" {
			if hs := h.GetHeaders(); len(hs) > 0 {
				if m.Whole {
					b.add(kHeaders, b.stringMap(hs))
				} else {
					b.add(kHeaders, pr.headers(hs, m.Tree))
				}
			}
			continue
		}
		for _, f := range httpStrings {
			if f.name == string(name) {
				b.field(f.key, f.get(h))
				break
			}
		}
		// headerMap: byHand let through none.
	}
	return b.object(start)
}

// headers writes the headers read by name; a header the request does not
// have is left out, as it is not in the whole map.
func (pr *pruner) headers(hs map[string]string, t *projection.Tree) *ast.Term {
	b := &pr.b
	start := len(b.kv)
	for _, m := range t.Members {
		name, ok := m.Key.(ast.String)
		if !ok {
			continue
		}
		if v, ok := hs[string(name)]; ok {
			b.add(b.text(string(name)), b.text(v))
		}
	}
	return b.object(start)
}
