package authzen_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/verdictpdp/verdict/internal/adapter/authzen"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// fuzzPolicy decides every input without an error: read is allowed.
const fuzzPolicy = `package authzen

default decision := {"decision": false}

decision := {"decision": true} if input.action.name == "read"
`

// FuzzEvaluationsBody sends any body to POST /access/v1/evaluations: the
// service never panics and answers 200 or 400; a 400 has a JSON error with
// a code; a 200 to a request with items answers them in order, all of them
// unless the semantic stopped at the last one answered.
func FuzzEvaluationsBody(f *testing.F) {
	raw, err := os.ReadFile("../../../testdata/authzen/decisions-authorization-api-1_0-02.json")
	if err != nil {
		f.Fatal(err)
	}
	var interop struct {
		Evaluation, Evaluations []struct {
			Request json.RawMessage `json:"request"`
		}
	}
	if err := json.Unmarshal(raw, &interop); err != nil {
		f.Fatal(err)
	}
	for _, c := range append(interop.Evaluations, interop.Evaluation[:3]...) {
		f.Add([]byte(c.Request))
	}
	for _, s := range []string{
		`{"subject":{"type":"user","id":"a"},"action":{"name":"read"},"options":{"evaluations_semantic":"deny_on_first_deny"},"evaluations":[{"resource":{"type":"d","id":"1"}},{"action":{"name":"write"},"resource":{"type":"d","id":"2"}},{"resource":{"type":"d","id":"3"}}]}`,
		`{"subject":{"type":"user","id":"a"},"options":{"evaluations_semantic":"permit_on_first_permit"},"evaluations":[{"action":{"name":"x"},"resource":{"type":"d","id":"1"}},{"action":{"name":"read"},"resource":{"type":"d","id":"2"}},{}]}`,
		`{"evaluations":[{"subject":{"type":"u","id":"a","properties":{"n":1e999999}},"action":{"name":"read"},"resource":{"type":"d","id":"1"}}]}`,
		`{"evaluations":[],"subject":{"type":"u","id":"a"},"action":{"name":"read"},"resource":{"type":"d","id":"1"}}`,
		`{"evaluations":null}`, `[]`, `{"a":1,"a":2}`, `{"evaluations":[1]}`, `{`,
	} {
		f.Add([]byte(s))
	}
	e := newEngine(f, policyBundle(f, "fuzz-1", fuzzPolicy, nil), true)
	h := authzen.NewServer(pipeline.New(e, pipeline.Options{}), authzen.Options{}).Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, authzen.PathEvaluations, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d with a body that is not a JSON object: %q", rec.Code, rec.Body.Bytes())
		}
		switch rec.Code {
		case http.StatusBadRequest:
			if msg, _ := out["error"].(string); msg == "" || out["code"] == "" {
				t.Fatalf("400 without an error and a code: %s", rec.Body.Bytes())
			}
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
		var in map[string]any
		_ = json.Unmarshal(body, &in) // a 200 was JSON; duplicates were refused
		items, _ := in["evaluations"].([]any)
		if len(items) == 0 {
			if _, ok := out["decision"].(bool); !ok {
				t.Fatalf("one evaluation answered %s", rec.Body.Bytes())
			}
			return
		}
		answers, ok := out["evaluations"].([]any)
		if !ok || len(answers) == 0 || len(answers) > len(items) {
			t.Fatalf("%d items answered with %s", len(items), rec.Body.Bytes())
		}
		semantic := "execute_all"
		if opts, ok := in["options"].(map[string]any); ok {
			if s, ok := opts["evaluations_semantic"].(string); ok {
				semantic = s
			}
		}
		for i, a := range answers {
			m, _ := a.(map[string]any)
			allowed, ok := m["decision"].(bool)
			if !ok {
				t.Fatalf("answer %d has no boolean decision: %s", i, rec.Body.Bytes())
			}
			stops := semantic == "deny_on_first_deny" && !allowed || semantic == "permit_on_first_permit" && allowed
			switch last := i == len(answers)-1; {
			case !last && stops:
				t.Fatalf("semantic %s: answer %d (decision %v) should have been the last: %s", semantic, i, allowed, rec.Body.Bytes())
			case last && !stops && len(answers) < len(items):
				t.Fatalf("semantic %s: %d of %d items answered, the last without a reason to stop: %s", semantic, len(answers), len(items), rec.Body.Bytes())
			}
		}
	})
}
