package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/verdictpdp/verdict/internal/control"
)

// maxBodyBytes bounds a request body: notes are 1 KiB, grants a few.
const maxBodyBytes = 64 << 10

// Approvers turns an Authorization header value into a verified approver
// (Authenticator; tests may fix one).
type Approvers interface {
	Approver(ctx context.Context, authorization string) (control.Approver, *control.Error)
}

var _ Approvers = Authenticator{}

// API serves the runtime controls over HTTP.
type API struct {
	Controls *control.Controls
	Auth     Approvers
	Logger   *slog.Logger
}

// Register adds the API's and the page's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("GET /v1/approvals", a.listApprovals())
	mux.Handle("GET /v1/approvals/{id}", a.getApproval())
	mux.Handle("POST /v1/approvals/{id}/approve", a.resolve(true))
	mux.Handle("POST /v1/approvals/{id}/deny", a.resolve(false))
	mux.Handle("GET /v1/grants", a.listGrants())
	mux.Handle("POST /v1/grants", a.createGrant())
	mux.Handle("POST /v1/grants/{id}/revoke", a.revokeGrant())
	mux.Handle("GET /v1/quarantines", a.listQuarantines())
	mux.Handle("POST /v1/quarantines", a.createQuarantine())
	mux.Handle("POST /v1/quarantines/{id}/release", a.releaseQuarantine())
	registerPage(mux)
}

// serve answers a request of the API: the approver is authenticated, the
// body (of type B, none when B is struct{}) decoded, then do runs and its
// value is sent under key with status ok, or its refusal as the error.
func serve[B any](a *API, ok int, key string, optional bool, do func(r *http.Request, ap control.Approver, body *B) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ap, e := a.Auth.Approver(r.Context(), r.Header.Get("Authorization"))
		if e != nil {
			a.fail(w, e)
			return
		}
		var body B
		if _, none := any(body).(struct{}); !none && !a.decode(w, r, &body, optional) {
			return
		}
		v, err := do(r, ap, &body)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, ok, map[string]any{key: v})
	}
}

type noBody = struct{}

type noteBody struct {
	Note string `json:"note"`
}

func (a *API) listApprovals() http.HandlerFunc {
	return serve(a, http.StatusOK, "approvals", false, func(r *http.Request, ap control.Approver, _ *noBody) (any, error) {
		q := r.URL.Query()
		f := control.Filter{Status: control.Status(q.Get("status")), Subject: q.Get("subject")}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n <= 0 {
				return nil, &control.Error{Code: "request.invalid", Status: http.StatusBadRequest, Message: "limit must be a positive integer"}
			}
			f.Limit = n
		}
		list, err := a.Controls.Approvals(r.Context(), ap, f)
		return orEmpty(list), err
	})
}

func (a *API) getApproval() http.HandlerFunc {
	return serve(a, http.StatusOK, "approval", false, func(r *http.Request, ap control.Approver, _ *noBody) (any, error) {
		return a.Controls.Approval(r.Context(), ap, r.PathValue("id"))
	})
}

func (a *API) resolve(approve bool) http.HandlerFunc {
	return serve(a, http.StatusOK, "approval", true, func(r *http.Request, ap control.Approver, body *noteBody) (any, error) {
		return a.Controls.Resolve(r.Context(), ap, r.PathValue("id"), approve, body.Note)
	})
}

func (a *API) listGrants() http.HandlerFunc {
	return serve(a, http.StatusOK, "grants", false, func(r *http.Request, ap control.Approver, _ *noBody) (any, error) {
		list, err := a.Controls.Grants(r.Context(), ap, r.URL.Query().Get("all") == "true")
		return orEmpty(list), err
	})
}

type grantBody struct {
	control.GrantRequest
	// Duration is a Go duration ("1h30m"); ExpiresAt RFC 3339.
	Duration  string `json:"duration"`
	ExpiresAt string `json:"expires_at"`
}

func (a *API) createGrant() http.HandlerFunc {
	return serve(a, http.StatusCreated, "grant", false, func(r *http.Request, ap control.Approver, body *grantBody) (any, error) {
		req := body.GrantRequest
		if body.Duration != "" {
			d, err := time.ParseDuration(body.Duration)
			if err != nil {
				return nil, &control.Error{Code: control.CodeInvalidGrant, Status: http.StatusBadRequest, Message: `duration must be a duration such as "30m" or "2h"`}
			}
			if d == 0 {
				d = -1 // "0s" is a bound of nothing: refused as not positive
			}
			req.Duration = d
		}
		if body.ExpiresAt != "" {
			t, err := time.Parse(time.RFC3339, body.ExpiresAt)
			if err != nil {
				return nil, &control.Error{Code: control.CodeInvalidGrant, Status: http.StatusBadRequest, Message: "expires_at must be an RFC 3339 time"}
			}
			req.ExpiresAt = t
		}
		return a.Controls.Grant(r.Context(), ap, req)
	})
}

func (a *API) revokeGrant() http.HandlerFunc {
	return serve(a, http.StatusOK, "grant", true, func(r *http.Request, ap control.Approver, body *noteBody) (any, error) {
		return a.Controls.Revoke(r.Context(), ap, r.PathValue("id"), body.Note)
	})
}

func (a *API) listQuarantines() http.HandlerFunc {
	return serve(a, http.StatusOK, "quarantines", false, func(r *http.Request, ap control.Approver, _ *noBody) (any, error) {
		list, err := a.Controls.Quarantines(r.Context(), ap, r.URL.Query().Get("all") == "true")
		return orEmpty(list), err
	})
}

type quarantineBody struct {
	control.QuarantineRequest
	Duration string `json:"duration"`
}

func (a *API) createQuarantine() http.HandlerFunc {
	return serve(a, http.StatusCreated, "quarantine", false, func(r *http.Request, ap control.Approver, body *quarantineBody) (any, error) {
		req := body.QuarantineRequest
		if body.Duration != "" {
			d, err := time.ParseDuration(body.Duration)
			if err != nil || d <= 0 {
				return nil, &control.Error{Code: control.CodeInvalidQuar, Status: http.StatusBadRequest, Message: `duration must be a positive duration such as "1h"`}
			}
			req.Duration = d
		}
		return a.Controls.Quarantine(r.Context(), ap, req)
	})
}

func (a *API) releaseQuarantine() http.HandlerFunc {
	return serve(a, http.StatusOK, "quarantine", true, func(r *http.Request, ap control.Approver, body *noteBody) (any, error) {
		return a.Controls.Release(r.Context(), ap, r.PathValue("id"), body.Note)
	})
}

// orEmpty answers an empty list as [], not null.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

// decode reads one JSON object of known members into v; an empty body is
// fine when optional.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	bad := func(msg string) bool {
		a.fail(w, &control.Error{Code: "request.invalid", Status: http.StatusBadRequest, Message: msg})
		return false
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		a.fail(w, &control.Error{Code: "request.invalid", Status: http.StatusUnsupportedMediaType, Message: "the body must be application/json"})
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.fail(w, &control.Error{Code: "request.too_large", Status: http.StatusRequestEntityTooLarge, Message: "the body is larger than 64 KiB"})
			return false
		}
		return bad("the body could not be read")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if optional {
			return true
		}
		return bad("a JSON object is required")
	}
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return bad("the body is not a valid JSON object of the expected members: " + jsonProblem(err))
	}
	if d.More() {
		return bad("the body holds more than one JSON value")
	}
	return true
}

// jsonProblem says what is wrong with a body without quoting it.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "syntax error at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "syntax error: the JSON ends too early"
	case errors.As(err, &typ):
		field := typ.Field
		// The request types embed their member structs: leave their
		// names out.
		if first, rest, ok := strings.Cut(field, "."); ok && first != "" && first[0] >= 'A' && first[0] <= 'Z' {
			field = rest
		}
		return "member " + field + " must be " + typ.Type.String()
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

// fail answers with the refusal's status and reason; internal causes are
// logged, never sent.
func (a *API) fail(w http.ResponseWriter, err error) {
	e := control.ErrorOf(err)
	if e.Err != nil && a.Logger != nil {
		a.Logger.Warn("control action failed", "code", e.Code, "err", e.Err)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="verdict-approvals"`)
	}
	body := map[string]any{"code": e.Code, "message": e.Message}
	if len(e.Reasons) > 0 {
		body["reasons"] = e.Reasons
	}
	status := e.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}
