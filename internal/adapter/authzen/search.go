package authzen

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// Kind is what a search looks for.
type Kind uint8

// Search kinds, named as in their endpoints and policy rules.
const (
	SearchSubject Kind = iota + 1
	SearchResource
	SearchAction
)

func (k Kind) String() string {
	switch k {
	case SearchSubject:
		return memberSubject
	case SearchResource:
		return memberResource
	case SearchAction:
		return memberAction
	default:
		return "unknown"
	}
}

var kinds = [...]Kind{SearchSubject, SearchResource, SearchAction}

// SearchPaths are the entrypoints of the search rules for the decision
// entrypoint path: <parent>/search/subject, .../resource and .../action.
func SearchPaths(path string) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = searchPath(path, k)
	}
	return out
}

func searchPath(path string, k Kind) string {
	base := ""
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			base = path[:i+1]
			break
		}
	}
	return base + "search/" + k.String()
}

// search is a checked search request.
type search struct {
	kind Kind
	// query is the policy input of the search rule: the request's
	// subject, action, resource and context, without the searched
	// member's id (without the action for an action search).
	query map[string]any
	// typ is the searched entity's type (empty for actions).
	typ   string
	token string
	limit int
}

// parseSearch checks a search request: the members an evaluation needs,
// except the searched one, of which only the type is needed (and the id,
// if given, is ignored) or nothing at all for an action search.
func parseSearch(k Kind, body map[string]any, maxLimit int) (search, *requestError) {
	s := search{kind: k, query: pick(body), limit: maxLimit}
	var err *requestError
	switch k {
	case SearchSubject:
		err = firstErr(checkEntity(s.query, memberSubject, false), checkAction(s.query), checkEntity(s.query, memberResource, true))
	case SearchResource:
		err = firstErr(checkEntity(s.query, memberSubject, true), checkAction(s.query), checkEntity(s.query, memberResource, false))
	case SearchAction:
		delete(s.query, memberAction)
		err = firstErr(checkEntity(s.query, memberSubject, true), checkEntity(s.query, memberResource, true))
	}
	if err == nil {
		err = checkContext(s.query)
	}
	if err != nil {
		return search{}, err
	}
	if k != SearchAction {
		e, _ := s.query[k.String()].(map[string]any)
		s.typ, _ = e["type"].(string)
		if _, ok := e["id"]; ok {
			c := make(map[string]any, len(e))
			for key, v := range e {
				if key != "id" {
					c[key] = v
				}
			}
			s.query[k.String()] = c
		}
	}
	if err := s.parsePage(body, maxLimit); err != nil {
		return search{}, err
	}
	return s, nil
}

func firstErr(errs ...*requestError) *requestError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// parsePage reads page.token (page.next_token, as drafts of the spec
// named it, is read too) and page.limit, clamped to maxLimit.
func (s *search) parsePage(body map[string]any, maxLimit int) *requestError {
	v, ok := body["page"]
	if !ok || v == nil {
		return nil
	}
	page, ok := v.(map[string]any)
	if !ok {
		return invalid("page must be an object")
	}
	for _, k := range [...]string{"token", "next_token"} {
		tv, ok := page[k]
		if !ok || tv == nil {
			continue
		}
		t, ok := tv.(string)
		if !ok {
			return invalid("page.%s must be a string", k)
		}
		if s.token != "" && t != "" && t != s.token {
			return invalid("page.token and page.next_token differ")
		}
		if t != "" {
			s.token = t
		}
	}
	if lv, ok := page["limit"]; ok && lv != nil {
		n, ok := lv.(json.Number)
		if !ok {
			return invalid("page.limit must be a positive integer")
		}
		l, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || l < 1 {
			return invalid("page.limit must be a positive integer")
		}
		s.limit = int(min(l, int64(maxLimit)))
	}
	return nil
}

// Page tokens are opaque to callers: base64url of a version byte, the
// search kind, the offset of the next candidate (uvarint), and 8 bytes of
// the SHA-256 of the policy revision and of the query each. A token is
// refused when it was issued for another query (invalid_page_token) or
// under another policy revision (stale_page_token: the candidates may have
// changed, so the caller starts again). Tokens are not signed: a forged
// offset only skips to another part of the same search, and every result
// is still evaluated.
const (
	tokenVersion  = 1
	maxTokenBytes = 64
)

func digest8(b []byte) [8]byte {
	sum := sha256.Sum256(b)
	return [8]byte(sum[:8])
}

func (s *search) queryDigest() [8]byte {
	raw, _ := json.Marshal(s.query) // decoded JSON: always encodes; map keys sorted
	return digest8(append(raw, byte(s.kind)))
}

func (s *search) encodeToken(offset int, revision string) string {
	buf := make([]byte, 0, 2+binary.MaxVarintLen64+16)
	buf = append(buf, tokenVersion, byte(s.kind))
	buf = binary.AppendUvarint(buf, uint64(offset)) //nolint:gosec // an index, never negative
	rev, q := digest8([]byte(revision)), s.queryDigest()
	buf = append(append(buf, rev[:]...), q[:]...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// pageStart is where a page starts: the offset of a token and the digest
// of the revision it was issued under.
type pageStart struct {
	offset   int
	revision [8]byte
	token    bool
}

// start reads the page token: it must be one issued for this search.
func (s *search) start() (pageStart, *requestError) {
	if s.token == "" {
		return pageStart{}, nil
	}
	bad := &requestError{Status: http.StatusBadRequest, Code: CodeInvalidPageToken, Message: "page token is not one this service issued for this search"}
	if len(s.token) > maxTokenBytes {
		return pageStart{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s.token)
	if err != nil || len(raw) < 2 || raw[0] != tokenVersion || raw[1] != byte(s.kind) {
		return pageStart{}, bad
	}
	off, n := binary.Uvarint(raw[2:])
	if n <= 0 || len(raw) != 2+n+16 || off > 1<<31 {
		return pageStart{}, bad
	}
	rest := raw[2+n:]
	if q := s.queryDigest(); string(rest[8:]) != string(q[:]) {
		return pageStart{}, bad
	}
	return pageStart{offset: int(off), revision: [8]byte(rest[:8]), token: true}, nil
}

// check refuses a token issued under another policy revision: its
// candidates may not be these.
func (p pageStart) check(revision string) *requestError {
	if p.token && p.revision != digest8([]byte(revision)) {
		return &requestError{Status: http.StatusBadRequest, Code: CodeStalePageToken,
			Message: "the policy changed since this page token was issued: start the search again without a token"}
	}
	return nil
}

// candidates is the search rule's value: the entities it proposes, in its
// order, without repeats (by type and id; by name for actions). It is
// shared with the decision cache: never modify it.
type candidates []map[string]any

// deriveCandidates reads the search rule's value for kind k: an array of
// entities; anything else wraps pipeline.ErrInvalidDecision.
func deriveCandidates(k Kind) engine.Derive {
	return func(r engine.Result) (any, error) {
		arr, ok := r.Value.([]any)
		if !ok {
			return nil, fmt.Errorf("%w: %s search candidates must be an array", pipeline.ErrInvalidDecision, k)
		}
		out := make(candidates, 0, len(arr))
		seen := make(map[[2]string]bool, len(arr))
		for i, v := range arr {
			e, ok := v.(map[string]any)
			var err *requestError
			if !ok {
				err = invalid("not an object")
			} else if k == SearchAction {
				err = firstErr(nonEmpty(e, "candidate", "name"), checkProperties(e, "candidate"))
			} else {
				err = checkEntity(map[string]any{"candidate": e}, "candidate", true)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %s search candidate %d: %s", pipeline.ErrInvalidDecision, k, i, err.Message)
			}
			var id [2]string
			if k == SearchAction {
				id[1], _ = e["name"].(string)
			} else {
				id[0], _ = e["type"].(string)
				id[1], _ = e["id"].(string)
			}
			if !seen[id] {
				seen[id] = true
				out = append(out, e)
			}
		}
		return out, nil
	}
}

// searchResult is one page of a search.
type searchResult struct {
	Results []map[string]any `json:"results"`
	Page    pageJSON         `json:"page"`
}

type pageJSON struct {
	NextToken string `json:"next_token"`
}

// runSearch answers s: the search rule proposes candidates, and each
// candidate of the page is kept only when the decision entrypoint, asked
// with the searched member replaced by the candidate, allows it. A search
// is one audit event (its input the query, its result the page); the
// evaluations of the candidates go through the decision cache but are not
// recorded one by one.
func (s *Server) runSearch(ctx context.Context, o *pipeline.Outcome, q *search) (searchResult, *failure, *requestError) {
	start, rerr := q.start()
	if rerr != nil {
		return searchResult{}, nil, rerr
	}
	var list candidates
	if c, ok, rerr := s.catalogCandidates(ctx, q); rerr != nil {
		return searchResult{}, nil, rerr
	} else if ok {
		list = c
		o.Revision = s.p.Revision()
	} else if s.p.Decide(ctx, o, pipeline.MapInput(q.query), deriveCandidates(q.kind), false, inputRefused) {
		list, _ = o.Derived.(candidates)
	} else {
		switch e, _ := errors.AsType[*engine.Error](o.Err); {
		case e != nil && e.Code == engine.CodeUndefined:
			o.Err, o.Failure = nil, nil // no candidates
		case e != nil && e.Code == engine.CodeUnknownEntrypoint:
			return searchResult{}, &failure{status: http.StatusNotImplemented, code: CodeSearchUnsupported,
				message: "the active policy defines no " + q.kind.String() + " search"}, nil
		default:
			return searchResult{}, decideFailure(o), nil
		}
	}
	if rerr := start.check(o.Revision); rerr != nil {
		return searchResult{}, nil, rerr
	}
	if q.kind != SearchAction {
		kept := make(candidates, 0, len(list))
		for _, c := range list {
			if c["type"] == q.typ {
				kept = append(kept, c)
			}
		}
		list = kept
	}
	res := searchResult{Results: []map[string]any{}}
	i, evaluated := start.offset, 0
	for ; i < len(list) && len(res.Results) < q.limit && evaluated < s.opts.MaxCandidates; i++ {
		evaluated++
		in := make(map[string]any, len(q.query)+1)
		for k, v := range q.query {
			in[k] = v
		}
		in[q.kind.String()] = list[i]
		co := s.p.Sub(audit.KindAuthZEN, s.path)
		d, f := s.decideAs(ctx, &co, in, false)
		if f != nil {
			o.Err, o.Failure = co.Err, co.Failure
			return searchResult{}, f, nil
		}
		if d.Decision {
			res.Results = append(res.Results, list[i])
		}
	}
	if i < len(list) {
		res.Page.NextToken = q.encodeToken(i, o.Revision)
	}
	o.Result = res.Results
	o.Verdict = pipeline.Allow
	msg := fmt.Sprintf("%d of %d candidates evaluated allowed", len(res.Results), evaluated)
	if len(res.Results) == 0 {
		o.Verdict = pipeline.Deny
	}
	o.Reasons = []pipeline.Reason{{Code: "authzen.search", Message: msg}}
	return res, nil, nil
}
