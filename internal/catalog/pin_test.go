package catalog

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/open-policy-agent/opa/v1/rego"
)

// TestCatalogPinMatchesOPA holds Pin to the builtin the library uses.
func TestCatalogPinMatchesOPA(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"plain":   `{"name":"search","description":"Search contacts.","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}}`,
		"unicode": `{"name":"météo","description":"Prévisions ☀ — 東京 \u0007 <b>&amp;</b> \ud83d\ude00","annotations":{"title":"Wetter\u200b"}}`,
		"numbers": `{"name":"n","inputSchema":{"type":"object","properties":{"x":{"type":"number","minimum":-1.5,"maximum":1e3,"multipleOf":0.1,"default":12345678901234567890}}}}`,
		"nested":  `{"name":"z","a":[1,{"b":null,"c":true}],"_meta":{"k":"v"},"A":"upper first"}`,
	}
	pq, err := rego.New(rego.Query("x := crypto.sha256(json.marshal(input))")).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			entry, err := decodeObject([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Pin(entry)
			if err != nil {
				t.Fatal(err)
			}
			// OPA sees the entry as the gateway sends it: parsed from JSON.
			rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(mustParse(t, src)))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := rs[0].Bindings["x"].(string)
			if got != want || want == "" {
				t.Errorf("Pin = %s, OPA = %s", got, want)
			}
		})
	}
}

func mustParse(t *testing.T, src string) ast.Value {
	t.Helper()
	v, err := ast.ValueFromReader(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
