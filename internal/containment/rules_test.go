package containment

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func decode(t testing.TB, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseExample(t *testing.T) {
	t.Parallel()
	r, err := Parse(decode(t, `{"rules": [
	  {"id": "deny-storm", "signal": "deny_rate", "scope": "subject", "window_seconds": 300, "min_calls": 20, "threshold": 0.5},
	  {"id": "leaky", "signal": "findings", "scope": "session", "window_seconds": 600, "threshold": 10, "detectors": ["secret","private_key"]},
	  {"id": "destructive-burst", "signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 5},
	  {"id": "poisoned", "signal": "poisoned", "scope": "session", "window_seconds": 600, "threshold": 1}],
	 "quarantine_seconds": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rules) != 4 || r.QuarantineFor != 0 {
		t.Fatalf("rules = %+v", r)
	}
	want := Rule{ID: "deny-storm", Signal: DenyRate, Scope: ScopeSubject, Window: 5 * time.Minute, MinCalls: 20, Threshold: 0.5}
	if got := r.Rules[0]; got.ID != want.ID || got.Signal != want.Signal || got.Scope != want.Scope || got.Window != want.Window || got.MinCalls != want.MinCalls || got.Threshold != want.Threshold {
		t.Errorf("rule 0 = %+v, want %+v", got, want)
	}
	if d := r.Rules[1].Detectors; len(d) != 2 || d[0] != "private_key" || d[1] != "secret" {
		t.Errorf("detectors = %v", d)
	}
	if r.Rules[2].Threshold != 5 || r.Rules[3].Scope != ScopeSession {
		t.Errorf("rules = %+v", r.Rules)
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	rule := func(extra string) string {
		return `{"rules": [{"id": "r", "signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 5` + extra + `}]}`
	}
	for _, c := range []struct{ name, doc, want string }{
		{"not an object", `[]`, "not an object"},
		{"unknown top member", `{"rule": []}`, `unknown member "rule"`},
		{"rules not an array", `{"rules": {}}`, "not an array"},
		{"rule not an object", `{"rules": [1]}`, "rules[0]: a rule is a number"},
		{"unknown rule member", rule(`, "treshold": 5`), `unknown member "treshold"`},
		{"no id", `{"rules": [{"signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 5}]}`, "id is required"},
		{"bad id", `{"rules": [{"id": "a b", "signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 5}]}`, `id "a b"`},
		{"unknown signal", `{"rules": [{"id": "r", "signal": "latency", "scope": "subject", "window_seconds": 60, "threshold": 5}]}`, `signal "latency"`},
		{"unknown scope", `{"rules": [{"id": "r", "signal": "destructive", "scope": "tenant", "window_seconds": 60, "threshold": 5}]}`, `scope "tenant"`},
		{"no window", `{"rules": [{"id": "r", "signal": "destructive", "scope": "subject", "threshold": 5}]}`, "window_seconds is required"},
		{"zero window", `{"rules": [{"id": "r", "signal": "destructive", "scope": "subject", "window_seconds": 0, "threshold": 5}]}`, "window_seconds"},
		{"fractional window", `{"rules": [{"id": "r", "signal": "destructive", "scope": "subject", "window_seconds": 1.5, "threshold": 5}]}`, "whole number"},
		{"window too long", `{"rules": [{"id": "r", "signal": "destructive", "scope": "subject", "window_seconds": 86401, "threshold": 5}]}`, "window_seconds"},
		{"string window", `{"rules": [{"id": "r", "signal": "destructive", "scope": "subject", "window_seconds": "60", "threshold": 5}]}`, "window_seconds"},
		{"no threshold", `{"rules": [{"id": "r", "signal": "destructive", "scope": "subject", "window_seconds": 60}]}`, "threshold is required"},
		{"zero count", `{"rules": [{"id": "r", "signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 0}]}`, "threshold"},
		{"fractional count", `{"rules": [{"id": "r", "signal": "poisoned", "scope": "subject", "window_seconds": 60, "threshold": 0.5}]}`, "threshold"},
		{"rate above 1", `{"rules": [{"id": "r", "signal": "deny_rate", "scope": "subject", "window_seconds": 60, "threshold": 1.5}]}`, "(0, 1]"},
		{"rate 0", `{"rules": [{"id": "r", "signal": "deny_rate", "scope": "subject", "window_seconds": 60, "threshold": 0}]}`, "(0, 1]"},
		{"min_calls 0", `{"rules": [{"id": "r", "signal": "deny_rate", "scope": "subject", "window_seconds": 60, "threshold": 0.5, "min_calls": 0}]}`, "min_calls"},
		{"min_calls off deny_rate", rule(`, "min_calls": 3`), "min_calls is for deny_rate"},
		{"detectors off findings", rule(`, "detectors": ["secret"]`), "detectors are for findings"},
		{"empty detectors", `{"rules": [{"id": "r", "signal": "findings", "scope": "subject", "window_seconds": 60, "threshold": 1, "detectors": []}]}`, "detectors"},
		{"bad detector", `{"rules": [{"id": "r", "signal": "findings", "scope": "subject", "window_seconds": 60, "threshold": 1, "detectors": ["Secret"]}]}`, "not a detector name"},
		{"twice a detector", `{"rules": [{"id": "r", "signal": "findings", "scope": "subject", "window_seconds": 60, "threshold": 1, "detectors": ["secret", "secret"]}]}`, "twice"},
		{"duplicate id", `{"rules": [` + strings.Repeat(`{"id": "r", "signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 5},`, 2) + `{"id": "s", "signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 5}]}`, "used twice"},
		{"negative quarantine", `{"quarantine_seconds": -1}`, "quarantine_seconds"},
		{"quarantine too long", `{"quarantine_seconds": 2592001}`, "quarantine_seconds"},
		{"too many rules", `{"rules": [` + strings.TrimSuffix(strings.Repeat(`{},`, MaxRules+1), ",") + `]}`, "at most 64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(decode(t, c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse = %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{`{}`, `{"rules": []}`, `{"quarantine_seconds": 3600}`} {
		r, err := Parse(decode(t, doc))
		if err != nil || !r.Empty() {
			t.Errorf("Parse(%s) = %+v, %v; want empty rules", doc, r, err)
		}
	}
	var none *Rules
	if !none.Empty() {
		t.Error("nil rules are not empty")
	}
	// float64 numbers (encoding/json without UseNumber) are read the same.
	var v any
	_ = json.Unmarshal([]byte(`{"rules": [{"id": "r", "signal": "deny_rate", "scope": "session", "window_seconds": 60, "threshold": 0.25}], "quarantine_seconds": 90}`), &v)
	r, err := Parse(v)
	if err != nil || r.Rules[0].Threshold != 0.25 || r.QuarantineFor != 90*time.Second || r.Rules[0].MinCalls != 1 {
		t.Errorf("Parse = %+v, %v", r, err)
	}
}

// FuzzParse: bundle data is untrusted. Parse never panics; what it
// accepts is within the bounds and is accepted again when written back.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"rules": [{"id": "deny-storm", "signal": "deny_rate", "scope": "subject", "window_seconds": 300, "min_calls": 20, "threshold": 0.5}], "quarantine_seconds": 0}`,
		`{"rules": [{"id": "leaky", "signal": "findings", "scope": "session", "window_seconds": 600, "threshold": 10, "detectors": ["secret","private_key"]}]}`,
		`{"rules": [{"id": "b", "signal": "destructive", "scope": "subject", "window_seconds": 60, "threshold": 5}, {"id": "p", "signal": "poisoned", "scope": "session", "window_seconds": 600, "threshold": 1}]}`,
		`{"rules": [{"id": "x", "signal": "deny_rate", "scope": "subject", "window_seconds": 1e3, "threshold": 1e-300}]}`,
		`{"quarantine_seconds": 1.0}`, `[]`, `null`, `{"rules": [null]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		d := json.NewDecoder(strings.NewReader(doc))
		d.UseNumber()
		var v any
		if d.Decode(&v) != nil {
			return
		}
		r, err := Parse(v)
		if err != nil {
			if r != nil {
				t.Fatal("rules with an error")
			}
			return
		}
		if len(r.Rules) > MaxRules || r.QuarantineFor < 0 || r.QuarantineFor > MaxQuarantine {
			t.Fatalf("out of bounds: %+v", r)
		}
		for _, rule := range r.Rules {
			if rule.Window < time.Second || rule.Window > MaxWindow || rule.Threshold <= 0 ||
				(rule.Signal == DenyRate && (rule.Threshold > 1 || rule.MinCalls < 1)) ||
				(rule.Signal != DenyRate && rule.Threshold != float64(int64(rule.Threshold))) {
				t.Fatalf("rule out of bounds: %+v", rule)
			}
			ring := newRing(rule.Window)
			if len(ring.buckets) == 0 || len(ring.buckets) > maxBuckets {
				t.Fatalf("window %v has %d buckets", rule.Window, len(ring.buckets))
			}
		}
		// Written back, it parses to the same rules.
		back := map[string]any{"quarantine_seconds": int64(r.QuarantineFor / time.Second)}
		var list []any
		for _, rule := range r.Rules {
			m := map[string]any{"id": rule.ID, "signal": string(rule.Signal), "scope": string(rule.Scope),
				"window_seconds": int64(rule.Window / time.Second), "threshold": rule.Threshold}
			if rule.Signal == DenyRate {
				m["min_calls"] = rule.MinCalls
			}
			if rule.Detectors != nil {
				ds := make([]any, len(rule.Detectors))
				for i, s := range rule.Detectors {
					ds[i] = s
				}
				m["detectors"] = ds
			}
			list = append(list, m)
		}
		back["rules"] = list
		again, err := Parse(back)
		if err != nil || len(again.Rules) != len(r.Rules) {
			t.Fatalf("written back: %v", err)
		}
	})
}
