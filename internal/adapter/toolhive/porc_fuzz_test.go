package toolhive_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/adapter/toolhive"
	"github.com/verdictpdp/verdict/internal/engine/enginetest"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// allowAll is an MCP policy that allows every question and shows every
// list entry: under it, only the adapter can deny.
const allowAll = `package verdict.mcp

decision := {"allow": true, "visible": [it.name | some it in input.list.items]} if input.list

decision := {"allow": true} if not input.list
`

// allowAllHandler returns a handler deciding with allowAll.
func allowAllHandler(tb testing.TB, opts toolhive.Options) *toolhive.Handler {
	tb.Helper()
	eng := enginetest.Engine(tb, mcp.DefaultPath, allowAll, nil)
	return toolhive.NewHandler(mcp.NewDecider(pipeline.New(eng, pipeline.Options{}), mcp.DefaultPath, false), opts)
}

// corpusBodies returns the PORC bodies of testdata/toolhive as ToolHive
// would send them.
func corpusBodies(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob("../../../testdata/toolhive/*.yaml")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no corpus: %v", err)
	}
	var out [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var cf struct {
			Cases []struct {
				PORC map[string]any `json:"porc"`
			} `json:"cases"`
		}
		if err := yaml.Unmarshal(raw, &cf); err != nil {
			tb.Fatal(err)
		}
		for _, c := range cf.Cases {
			b, err := json.Marshal(c.PORC)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// keyPolicies read, between them, what a ToolHive question puts in the MCP
// input: the principal's claims (JSON numbers, nested annotations), the
// arguments, list entries, and the whole input.
var keyPolicies = []string{
	`package verdict.mcp
decision := {"allow": true} if {
	input.subject.id == "ana"
	input.subject.roles[0] == "analyst"
	input.subject.groups[0]
	input.subject.scopes[1] == "b"
	input.subject.tenant
	input.subject.clearance == "internal"
	input.subject.claims.mannotations.team == "east"
	input.subject.claims.n > 2
	input.subject.claims.mroles[0] == "analyst"
	input.subject.source == "gateway"
	input.tool.name == "read_file"
	input.tool.arguments.limit <= 100
	input.tool.arguments.nested.list[0] == null
	input.prompt.arguments.x == "1"
	input.resource.uri
	input.server.name == "files"
	input.list.items[0].name
	input.method == "tools/call"
}`,
	`package verdict.mcp
decision := {"allow": true} if {
	input.subject.claims == {}
	input.tool.arguments == {}
	input.list == {}
}`,
	`package verdict.mcp
decision := {"allow": true} if input[_] == "x"`, // reads the whole input
}

func post(h http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, toolhive.DecisionPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// FuzzPORC holds the parser and the handler to their contract on any body:
// no panic; a body the parser refuses is answered 400 with a code, never
// 200 and never an allow, even under a policy that allows everything; a
// body it accepts is answered 200 with a boolean allow, and the input it
// becomes keys the decision cache as its built form does.
func FuzzPORC(f *testing.F) {
	for _, b := range corpusBodies(f) {
		f.Add(b)
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `{"principal":{}}`, `"mcp:tool:call"`,
		`{"principal":{"sub":"a"},"operation":"mcp:tool:call","resource":"mrn:mcp:s:tool:t","context":{"mcp":{"args":{"x":[1,{"y":null}]}}}}`,
		`{"principal":{"sub":"a","scope":"a b"},"operation":"mcp:resource:read","resource":"mrn:mcp:s:resource:file:///x:y"}`,
		`{"principal":{"sub":"a"},"operation":"mcp:tool:call","resource":"mrn:mcp:s:prompt:t"}`,
		`{"principal":{"sub":"a"},"operation":"mcp:tool:list","resource":"mrn:mcp:s:tool:"}`,
		`{"principal":{"sub":1},"operation":"mcp:tool:call","resource":"mrn:mcp:s:tool:t"}`,
		`{"principal":{"sub":"a"},"operation":"mcp:tool:call","resource":"mrn:mcp:s:tool:t","operation":"mcp:tool:call"}`,
	} {
		f.Add([]byte(s))
	}
	calls := allowAllHandler(f, toolhive.Options{})
	lists := allowAllHandler(f, toolhive.Options{ListsWithoutArgs: true})
	ps := enginetest.Projections(f, "data.verdict.mcp.decision", keyPolicies...)
	f.Fuzz(func(t *testing.T, body []byte) {
		q, perr := toolhive.ParsePORC(body, toolhive.Limits{})
		listMode := len(body)%2 == 1
		h := calls
		if listMode {
			h = lists
		}
		rec := post(h, body)
		if perr != nil {
			if q != nil {
				t.Fatalf("refused (%v) with a question", perr)
			}
			if perr.Code == "" || perr.Message == "" {
				t.Fatalf("refusal without code or message: %+v", perr)
			}
			var r struct {
				Allow *bool  `json:"allow"`
				Code  string `json:"code"`
			}
			if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &r) != nil || r.Allow != nil || r.Code != perr.Code {
				t.Fatalf("refused body %q (%v) answered %d %s", body, perr, rec.Code, rec.Body)
			}
			return
		}
		if q.Server == "" || mcp.ValidName("server", q.Server) != nil || q.Feature == "" || q.Operation == "" {
			t.Fatalf("accepted question without a valid server, feature or operation: %+v", q)
		}
		var a struct {
			Allow *bool `json:"allow"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &a) != nil || a.Allow == nil {
			t.Fatalf("accepted body %q answered %d %s", body, rec.Code, rec.Body)
		}
		// The question's input keys the decision cache as the input built
		// from it does.
		k := &enginetest.KeyChecker{T: t, Projections: ps}
		krec := post(toolhive.NewHandler(mcp.NewDecider(pipeline.New(k, pipeline.Options{}), mcp.DefaultPath, false), toolhive.Options{ListsWithoutArgs: listMode}), body)
		var ka struct {
			Reasons []pipeline.Reason `json:"reasons"`
		}
		_ = json.Unmarshal(krec.Body.Bytes(), &ka)
		// Only a question refused before the decision may skip the
		// evaluator, or the key check tests nothing.
		if k.Checked == 0 && (len(ka.Reasons) == 0 || ka.Reasons[0].Code != toolhive.ReasonUnsupported && ka.Reasons[0].Code != mcp.ReasonInvalidRequest) {
			t.Fatalf("decided %q without asking the evaluator: %s", body, krec.Body)
		}
	})
}
