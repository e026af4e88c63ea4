package audit

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maskNode marks object members to replace while an input is written: a
// node with leaf set replaces the member's value; children go deeper.
type maskNode struct {
	leaf     bool
	children map[string]*maskNode
	// pointer is the member's JSON pointer from the event ("/input/…"),
	// listed in the event's masked pointers when a leaf is replaced.
	pointer string
}

// add marks the member at segs below n, the node at pointer base.
func (n *maskNode) add(base string, segs ...string) {
	p := base
	for _, s := range segs[:len(segs)-1] {
		p += "/" + escapePointer(s)
		if n.children == nil {
			n.children = map[string]*maskNode{}
		}
		c := n.children[s]
		if c == nil {
			c = &maskNode{pointer: p}
			n.children[s] = c
		}
		n = c
	}
	if n.children == nil {
		n.children = map[string]*maskNode{}
	}
	last := segs[len(segs)-1]
	n.children[last] = &maskNode{leaf: true, pointer: p + "/" + escapePointer(last)}
}

// SensitiveHeaders are the request headers whose values are never written
// to the audit log: they carry credentials. Envoy sends header names in
// lower case.
var SensitiveHeaders = []string{
	"authorization", "proxy-authorization", "cookie", "set-cookie",
	"x-api-key", "x-auth-token", "x-amz-security-token",
}

// envoyMask is the always-on masking of the opa-envoy-plugin input.
var envoyMask = headerMask()

// mcpOverEnvoyMask is envoyMask for the MCP input of a request that came
// through Envoy, whose opa-envoy-plugin input is input.envoy.
var mcpOverEnvoyMask = headerMask("envoy")

// headerMask masks the sensitive headers of the opa-envoy-plugin input
// found at below (under the event's input).
func headerMask(below ...string) *maskNode {
	root := &maskNode{pointer: "/input"}
	for _, h := range SensitiveHeaders {
		root.add(root.pointer, append(slices.Clone(below), "attributes", "request", "http", "headers", h)...)
	}
	return root
}

// kindMask is the masking of kind's input while it is written.
func kindMask(kind Kind) *maskNode {
	switch kind {
	case KindEnvoy:
		return envoyMask
	case KindMCPOverEnvoy:
		return mcpOverEnvoyMask
	case KindMCP, KindAuthZEN, KindControl, KindGateway:
		// The native MCP and AuthZEN inputs carry no credential headers;
		// lifecycle events have no input.
	}
	return nil
}

// Mask replaces what the audit log must not hold in clear.
const Mask = "[REDACTED]"

// appendAST writes v as JSON, replacing the members mask names; each
// replaced member's pointer is appended to masked.
func appendAST(buf []byte, v ast.Value, mask *maskNode, masked *[]string) []byte {
	var w astWriter
	return w.append(buf, v, mask, masked)
}

// astWriter is appendAST's state. Its callbacks are bound once, so that
// writing an object or a set allocates nothing: a JSONWriter keeps one.
type astWriter struct {
	buf    []byte
	masked *[]string
	mask   *maskNode // of the object being written
	n      int       // members or elements written in it

	member  func(k, v *ast.Term)
	element func(t *ast.Term)
}

func (w *astWriter) append(buf []byte, v ast.Value, mask *maskNode, masked *[]string) []byte {
	if w.member == nil {
		w.member, w.element = w.writeMember, w.writeElement
	}
	w.buf, w.masked = buf, masked
	w.value(v, mask)
	buf = w.buf
	w.buf, w.masked = nil, nil
	return buf
}

func (w *astWriter) value(v ast.Value, mask *maskNode) {
	switch x := v.(type) {
	case ast.Null:
		w.buf = append(w.buf, "null"...)
	case ast.Boolean:
		w.buf = strconv.AppendBool(w.buf, bool(x))
	case ast.Number:
		w.buf = append(w.buf, x...)
	case ast.String:
		w.buf = appendString(w.buf, string(x))
	case *ast.Array:
		w.buf = append(w.buf, '[')
		for i := range x.Len() {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.value(x.Elem(i).Value, nil)
		}
		w.buf = append(w.buf, ']')
	case ast.Set:
		prevMask, prevN := w.mask, w.n
		w.mask, w.n = nil, 0
		w.buf = append(w.buf, '[')
		x.Foreach(w.element)
		w.buf = append(w.buf, ']')
		w.mask, w.n = prevMask, prevN
	case ast.Object:
		prevMask, prevN := w.mask, w.n
		w.mask, w.n = mask, 0
		w.buf = append(w.buf, '{')
		x.Foreach(w.member)
		w.buf = append(w.buf, '}')
		w.mask, w.n = prevMask, prevN
	default:
		// Not a JSON value (a reference, a call): write its Rego text.
		w.buf = appendString(w.buf, v.String())
	}
}

func (w *astWriter) writeElement(t *ast.Term) {
	if w.n > 0 {
		w.buf = append(w.buf, ',')
	}
	w.n++
	w.value(t.Value, nil)
}

func (w *astWriter) writeMember(k, e *ast.Term) {
	if w.n > 0 {
		w.buf = append(w.buf, ',')
	}
	w.n++
	key, ok := k.Value.(ast.String)
	if !ok {
		key = ast.String(k.Value.String())
	}
	w.buf = appendString(w.buf, string(key))
	w.buf = append(w.buf, ':')
	var child *maskNode
	if w.mask != nil {
		child = w.mask.children[string(key)]
	}
	switch {
	case child != nil && child.leaf:
		w.buf = appendString(w.buf, Mask)
		*w.masked = append(*w.masked, child.pointer)
	default:
		w.value(e.Value, child)
	}
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

func escapePointer(s string) string {
	if !containsAny(s, "~/") {
		return s
	}
	out := make([]byte, 0, len(s)+2)
	for i := range len(s) {
		switch s[i] {
		case '~':
			out = append(out, '~', '0')
		case '/':
			out = append(out, '~', '1')
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}

func containsAny(s, chars string) bool {
	for i := range len(s) {
		for j := range len(chars) {
			if s[i] == chars[j] {
				return true
			}
		}
	}
	return false
}

// event is what one record holds, in OPA's decision-log field names where
// OPA has them.
type event struct {
	e          *Entry
	labels     []byte // pre-encoded labels object
	inputJSON  []byte // nil: no input member
	resultJSON []byte // nil: no result member
	erased     []string
	masked     []string
	retention  int
}

// appendEvent writes the event as one JSON object.
func appendEvent(buf []byte, ev *event) []byte {
	e := ev.e
	buf = append(buf, '{')
	if len(ev.labels) > 0 {
		buf = append(buf, `"labels":`...)
		buf = append(buf, ev.labels...)
		buf = append(buf, ',')
	}
	buf = append(buf, `"decision_id":`...)
	buf = appendString(buf, e.DecisionID)
	if e.TraceID != "" {
		buf = append(buf, `,"trace_id":`...)
		buf = appendString(buf, e.TraceID)
		buf = append(buf, `,"span_id":`...)
		buf = appendString(buf, e.SpanID)
	}
	buf = append(buf, `,"path":`...)
	buf = appendString(buf, e.Path)
	if ev.inputJSON != nil {
		buf = append(buf, `,"input":`...)
		buf = append(buf, ev.inputJSON...)
	}
	if ev.resultJSON != nil {
		buf = append(buf, `,"result":`...)
		buf = append(buf, ev.resultJSON...)
	}
	if len(e.Bundles) > 0 {
		buf = append(buf, `,"bundles":{`...)
		names := make([]string, 0, len(e.Bundles))
		for n := range e.Bundles {
			names = append(names, n)
		}
		slices.Sort(names)
		for i, n := range names {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, n)
			buf = append(buf, `:{"revision":`...)
			buf = appendString(buf, e.Bundles[n].Revision)
			buf = append(buf, '}')
		}
		buf = append(buf, '}')
	}
	buf = appendStrings(buf, "erased", ev.erased)
	buf = appendStrings(buf, "masked", ev.masked)
	if e.Err != nil {
		buf = append(buf, `,"error":{"code":`...)
		buf = appendString(buf, e.Err.Code)
		buf = append(buf, `,"message":`...)
		buf = appendString(buf, e.Err.Message)
		buf = append(buf, '}')
	}
	if e.RequestedBy != "" {
		buf = append(buf, `,"requested_by":`...)
		buf = appendString(buf, e.RequestedBy)
	}
	buf = append(buf, `,"timestamp":"`...)
	buf = e.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","metrics":{`...)
	if e.EvalTook > 0 {
		buf = append(buf, `"timer_rego_query_eval_ns":`...)
		buf = strconv.AppendInt(buf, e.EvalTook.Nanoseconds(), 10)
		buf = append(buf, ',')
	}
	buf = append(buf, `"timer_server_handler_ns":`...)
	buf = strconv.AppendInt(buf, e.Took.Nanoseconds(), 10)
	buf = append(buf, `},"decision":`...)
	buf = appendString(buf, e.Decision)
	if len(e.Reasons) > 0 {
		buf = append(buf, `,"reasons":[`...)
		for i, r := range e.Reasons {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"code":`...)
			buf = appendString(buf, r.Code)
			buf = append(buf, `,"message":`...)
			buf = appendString(buf, r.Message)
			buf = append(buf, '}')
		}
		buf = append(buf, ']')
	}
	if e.Obligations != nil {
		buf = append(buf, `,"obligations":`...)
		buf = appendGo(buf, e.Obligations)
	}
	if e.Subject != "" {
		buf = append(buf, `,"subject":`...)
		buf = appendString(buf, e.Subject)
	}
	if e.Request != nil {
		buf = append(buf, `,"request":`...)
		buf = appendGo(buf, e.Request)
	}
	if len(e.Findings) > 0 {
		buf = append(buf, `,"findings":`...)
		buf = appendGo(buf, e.Findings)
	}
	if e.Approval != nil {
		buf = append(buf, `,"approval":`...)
		buf = appendGo(buf, e.Approval)
	}
	if e.Control != nil {
		buf = append(buf, `,"control":`...)
		buf = appendGo(buf, e.Control)
	}
	if e.Gateway != nil {
		buf = append(buf, `,"gateway":`...)
		buf = appendGo(buf, e.Gateway)
	}
	if e.HTTPStatus != 0 {
		buf = append(buf, `,"http_status":`...)
		buf = strconv.AppendInt(buf, int64(e.HTTPStatus), 10)
	}
	buf = append(buf, `,"cached":`...)
	buf = strconv.AppendBool(buf, e.Cached)
	if e.DryRun {
		buf = append(buf, `,"dry_run":true`...)
	}
	buf = append(buf, `,"retention_days":`...)
	buf = strconv.AppendInt(buf, int64(ev.retention), 10)
	return append(buf, '}')
}

func appendStrings(buf []byte, name string, ss []string) []byte {
	if len(ss) == 0 {
		return buf
	}
	buf = append(buf, ',', '"')
	buf = append(buf, name...)
	buf = append(buf, `":[`...)
	for i, s := range ss {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, s)
	}
	return append(buf, ']')
}
