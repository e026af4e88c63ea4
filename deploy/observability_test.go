package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/verdictpdp/verdict/internal/audit"
	"github.com/verdictpdp/verdict/internal/cache"
	"github.com/verdictpdp/verdict/internal/metrics"
	"github.com/verdictpdp/verdict/internal/status"
)

const (
	obsDashboardPath      = "grafana/verdict-dashboard.json"
	obsAlertsPath         = "prometheus/verdict-alerts.yaml"
	obsPrometheusRulePath = "prometheus/verdict-prometheusrule.yaml"
	obsDocsPath           = "../docs/audit.md"
)

// obsMetrics maps each series name a query may select to the label names
// its series carry.
type obsMetrics map[string]map[string]bool

// obsTargetLabels are attached by Prometheus to every scraped series.
var obsTargetLabels = map[string]bool{"job": true, "instance": true}

// obsRegistryMetrics builds the metrics as the app does, with every source
// set and one event of each kind observed so that every vector has a
// series, and returns what a scrape of /metrics serves.
func obsRegistryMetrics(t *testing.T) obsMetrics {
	t.Helper()
	m := metrics.New(metrics.Sources{
		Cache: func() (cache.Stats, bool) { return cache.Stats{}, true },
		Bundles: func() []status.Source {
			return []status.Source{{Name: "main", Revision: "r1", LastSuccess: time.Unix(1, 0)}}
		},
		Audit: func() metrics.AuditStats {
			return metrics.AuditStats{QueueCapacity: 1, Sinks: []audit.SinkStatus{{Name: "file", Healthy: true}}}
		},
		Entrypoints: func() map[string]bool { return map[string]bool{"authz/allow": true} },
		Controls:    func() (metrics.ControlStats, bool) { return metrics.ControlStats{}, true },
		Sessions:    func() (metrics.SessionStats, bool) { return metrics.SessionStats{}, true },
	})
	m.ObserveControlEvent("approval.requested")
	m.ObserveContainment("deny-storm", "deny_rate")
	m.ObserveDecision("authz/allow", metrics.ResultAllow, false, time.Millisecond, time.Millisecond)
	m.ObserveDecision("authz/allow", metrics.ResultDeny, true, 0, time.Microsecond)
	m.ObserveBundleActivation("main", true)
	m.ObserveBundleActivation("main", false)
	m.ObserveRateLimited("authz/allow")
	m.ObserveApprovalRequired("authz/allow")
	m.ObserveRedis("ratelimit", time.Millisecond, nil)
	m.ObserveGatewayMessage("client", "tools/call", "forwarded")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}

	out := obsMetrics{
		// Written by Prometheus for every target.
		"up": {},
	}
	add := func(name string, labels []*dto.LabelPair, extra ...string) {
		set := out[name]
		if set == nil {
			set = map[string]bool{}
			out[name] = set
		}
		for _, l := range labels {
			set[l.GetName()] = true
		}
		for _, l := range extra {
			set[l] = true
		}
	}
	for name, mf := range families {
		for _, s := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", s.GetLabel(), "le")
				add(name+"_sum", s.GetLabel())
				add(name+"_count", s.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, s.GetLabel(), "quantile")
				add(name+"_sum", s.GetLabel())
				add(name+"_count", s.GetLabel())
			default:
				add(name, s.GetLabel())
			}
		}
	}
	// Sanity: the scrape holds the families the dashboard is built on.
	for _, want := range []string{"verdict_decisions_total", "verdict_decision_duration_seconds_bucket", "verdict_cache_hits_total", "verdict_audit_sink_healthy", "verdict_entrypoint_undefined"} {
		if out[want] == nil {
			t.Fatalf("/metrics serves no %s", want)
		}
	}
	return out
}

// obsGrafanaVars stand for Grafana's interval variables, which are not
// PromQL; the other variables ($job, $instance) only appear inside strings.
var obsGrafanaVars = regexp.MustCompile(`\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}`)

// obsCheckExpr parses expr as PromQL and reports each metric or label it
// names that the registry does not serve.
func obsCheckExpr(reg obsMetrics, expr string) []string {
	expr = obsGrafanaVars.ReplaceAllString(expr, "5m")
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return []string{fmt.Sprintf("does not parse: %v", err)}
	}
	var problems []string
	// labelsUnder is the union of the labels of the metrics selected under n,
	// target labels included.
	labelsUnder := func(n parser.Node) map[string]bool {
		set := map[string]bool{}
		for l := range obsTargetLabels {
			set[l] = true
		}
		parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				for l := range reg[obsSelectorName(vs)] {
					set[l] = true
				}
			}
			return nil
		})
		return set
	}
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := obsSelectorName(n)
			labels, ok := reg[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("metric %q is not served", name))
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !obsTargetLabels[m.Name] && !labels[m.Name] {
					problems = append(problems, fmt.Sprintf("metric %q has no label %q", name, m.Name))
				}
			}
		case *parser.AggregateExpr:
			if n.Without {
				return nil
			}
			have := labelsUnder(n.Expr)
			for _, l := range n.Grouping {
				if !have[l] {
					problems = append(problems, fmt.Sprintf("%s by (%s): no metric under it has label %q", n.Op, strings.Join(n.Grouping, ", "), l))
				}
			}
		case *parser.BinaryExpr:
			if n.VectorMatching == nil || !n.VectorMatching.On {
				return nil
			}
			have := labelsUnder(n)
			for _, l := range slices.Concat(n.VectorMatching.MatchingLabels, n.VectorMatching.Include) {
				if !have[l] {
					problems = append(problems, fmt.Sprintf("on/group_left/group_right: no metric has label %q", l))
				}
			}
		}
		return nil
	})
	return problems
}

func obsSelectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			return m.Value
		}
	}
	return ""
}

// obsDashboardTargets returns the expr of every target of every panel,
// nested panels (rows) included, keyed by "panel title/refId".
func obsDashboardTargets(v any, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if targets, ok := v["targets"].([]any); ok {
			title, _ := v["title"].(string)
			for _, t := range targets {
				t, _ := t.(map[string]any)
				expr, _ := t["expr"].(string)
				ref, _ := t["refId"].(string)
				out[title+"/"+ref] = expr
			}
		}
		if panels, ok := v["panels"].([]any); ok {
			for _, p := range panels {
				obsDashboardTargets(p, out)
			}
		}
	case []any:
		for _, x := range v {
			obsDashboardTargets(x, out)
		}
	}
}

type obsDashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	Description   string `json:"description"`
	SchemaVersion int    `json:"schemaVersion"`
	Panels        []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

var obsLabelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// obsCheckDashboard reports what is wrong with the dashboard's JSON.
func obsCheckDashboard(reg obsMetrics, data []byte) []string {
	var problems []string
	var d obsDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return []string{fmt.Sprintf("dashboard: %v", err)}
	}
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		problems = append(problems, fmt.Sprintf("dashboard: schemaVersion %d, uid %q, title %q", d.SchemaVersion, d.UID, d.Title))
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type != "query" {
			continue
		}
		query := v.Query
		if q, ok := v.Query.(map[string]any); ok {
			query = q["query"]
		}
		if query != v.Definition {
			problems = append(problems, fmt.Sprintf("variable %s: query %q differs from its definition %q", v.Name, query, v.Definition))
		}
		for _, def := range []any{query, v.Definition} {
			// label_values(selector, label): the selector must select a
			// served metric and the label must be one of its.
			s, _ := def.(string)
			m := obsLabelValues.FindStringSubmatch(s)
			if m == nil {
				problems = append(problems, fmt.Sprintf("variable %s: %q is not label_values(selector, label)", v.Name, s))
				continue
			}
			for _, p := range obsCheckExpr(reg, fmt.Sprintf("count by (%s) (%s)", m[2], m[1])) {
				problems = append(problems, fmt.Sprintf("variable %s: %s", v.Name, p))
			}
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "instance": "query"} {
		if vars[name] != typ {
			problems = append(problems, fmt.Sprintf("dashboard: variable %s is %q, want %q", name, vars[name], typ))
		}
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			problems = append(problems, fmt.Sprintf("panel %q: id %d is repeated", p.Title, p.ID))
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			problems = append(problems, fmt.Sprintf("panel %q: datasource is not the ${datasource} variable", p.Title))
		}
		if len(p.Targets) == 0 {
			problems = append(problems, fmt.Sprintf("panel %q: no targets", p.Title))
		}
	}
	var all any
	if err := json.Unmarshal(data, &all); err != nil {
		return append(problems, err.Error())
	}
	targets := map[string]string{}
	obsDashboardTargets(all, targets)
	for _, key := range obsSortedKeys(targets) {
		expr := targets[key]
		if expr == "" {
			problems = append(problems, fmt.Sprintf("panel %s: empty expr", key))
			continue
		}
		if !strings.Contains(expr, `job=~"$job"`) || !strings.Contains(expr, `instance=~"$instance"`) {
			problems = append(problems, fmt.Sprintf("panel %s: expr does not filter on $job and $instance", key))
		}
		for _, p := range obsCheckExpr(reg, expr) {
			problems = append(problems, fmt.Sprintf("panel %s: %s", key, p))
		}
	}
	return problems
}

type obsRuleFile struct {
	Groups []obsRuleGroup `json:"groups"`
}

type obsRuleGroup struct {
	Name     string    `json:"name"`
	Interval string    `json:"interval,omitempty"`
	Rules    []obsRule `json:"rules"`
}

type obsRule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type obsPrometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec obsRuleFile `json:"spec"`
}

// obsCheckRules reports what is wrong with a rule file: what Prometheus
// itself rejects, PromQL that selects metrics or labels not served, and for each alert a duration,
// a severity and the annotations an on-call engineer needs. docs, when not
// empty, must name every alert.
func obsCheckRules(reg obsMetrics, data []byte, docs string) (obsRuleFile, []string) {
	var f obsRuleFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return f, []string{fmt.Sprintf("rules: %v", err)}
	}
	var problems []string
	// What promtool check rules does: the rule file format, the PromQL and
	// the annotation templates, with Prometheus's own code.
	_, errs := rulefmt.Parse(data, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		problems = append(problems, fmt.Sprintf("rulefmt: %v", err))
	}
	if len(f.Groups) == 0 {
		problems = append(problems, "rules: no groups")
	}
	groups, alerts := map[string]bool{}, map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" || groups[g.Name] {
			problems = append(problems, fmt.Sprintf("group %q: empty or repeated name", g.Name))
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				problems = append(problems, fmt.Sprintf("group %s: a rule that is not an alert (record %q)", g.Name, r.Record))
				continue
			}
			if alerts[name] {
				problems = append(problems, fmt.Sprintf("alert %s: repeated", name))
			}
			alerts[name] = true
			for _, p := range obsCheckExpr(reg, r.Expr) {
				problems = append(problems, fmt.Sprintf("alert %s: %s", name, p))
			}
			if d, err := model.ParseDuration(r.For); err != nil || d <= 0 {
				problems = append(problems, fmt.Sprintf("alert %s: for %q is not a positive duration", name, r.For))
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				problems = append(problems, fmt.Sprintf("alert %s: severity %q", name, r.Labels["severity"]))
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					problems = append(problems, fmt.Sprintf("alert %s: no %s annotation", name, a))
				}
			}
			if rb := r.Annotations["runbook"]; rb != "" && docs != "" && !strings.HasPrefix(rb, "docs/audit.md#") {
				problems = append(problems, fmt.Sprintf("alert %s: runbook %q is not in docs/audit.md", name, rb))
			}
			if docs != "" && !strings.Contains(docs, "`"+name+"`") {
				problems = append(problems, fmt.Sprintf("alert %s: not described in docs/audit.md", name))
			}
		}
	}
	return f, problems
}

func obsSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func obsRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestObservabilityDashboard(t *testing.T) {
	reg := obsRegistryMetrics(t)
	for _, p := range obsCheckDashboard(reg, obsRead(t, obsDashboardPath)) {
		t.Error(p)
	}
}

func TestObservabilityAlerts(t *testing.T) {
	reg := obsRegistryMetrics(t)
	docs := string(obsRead(t, obsDocsPath))
	if !strings.Contains(docs, "\n## Dashboards and alerts\n") {
		t.Errorf("%s has no \"Dashboards and alerts\" section, which the runbook annotations point at", obsDocsPath)
	}
	rules, problems := obsCheckRules(reg, obsRead(t, obsAlertsPath), docs)
	for _, p := range problems {
		t.Error(p)
	}

	var cr obsPrometheusRule
	if err := yaml.UnmarshalStrict(obsRead(t, obsPrometheusRulePath), &cr); err != nil {
		t.Fatalf("%s: %v", obsPrometheusRulePath, err)
	}
	if cr.APIVersion != "monitoring.coreos.com/v1" || cr.Kind != "PrometheusRule" || cr.Metadata.Name == "" {
		t.Errorf("%s: %s %s named %q, want a monitoring.coreos.com/v1 PrometheusRule with a name", obsPrometheusRulePath, cr.APIVersion, cr.Kind, cr.Metadata.Name)
	}
	if diff := cmp.Diff(rules.Groups, cr.Spec.Groups); diff != "" {
		t.Errorf("the groups of %s differ from %s (-alerts +PrometheusRule):\n%s", obsPrometheusRulePath, obsAlertsPath, diff)
	}
}

// TestObservabilityChecksCatchMistakes breaks copies of the dashboard and
// the rules and expects the checks above to say so.
func TestObservabilityChecksCatchMistakes(t *testing.T) {
	reg := obsRegistryMetrics(t)
	dashboard := obsRead(t, obsDashboardPath)
	alerts := obsRead(t, obsAlertsPath)

	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"renamed metric in the dashboard", obsDashboardPath, "verdict_cache_hits_total", "verdict_cache_hit_total", `metric "verdict_cache_hit_total" is not served`},
		{"renamed histogram in the dashboard", obsDashboardPath, "verdict_decision_duration_seconds_bucket", "verdict_decision_latency_seconds_bucket", `metric "verdict_decision_latency_seconds_bucket" is not served`},
		{"wrong label in a dashboard grouping", obsDashboardPath, "sum by (sink)", "sum by (sink_name)", `no metric under it has label "sink_name"`},
		{"renamed metric in a variable", obsDashboardPath, "label_values(verdict_decisions_total, job)", "label_values(verdict_decision_total, job)", `variable job: metric "verdict_decision_total" is not served`},
		{"renamed metric in an alert", obsAlertsPath, "verdict_audit_sink_healthy", "verdict_audit_sink_up", `alert VerdictAuditSinkUnhealthy: metric "verdict_audit_sink_up" is not served`},
		{"wrong matcher label in an alert", obsAlertsPath, `reason="queue_full"`, `cause="queue_full"`, `has no label "cause"`},
		{"broken PromQL in an alert", obsAlertsPath, "verdict_entrypoint_undefined{job=\"verdict\"} == 1", "verdict_entrypoint_undefined{job=\"verdict\" == 1", "does not parse"},
		{"alert without for", obsAlertsPath, "        for: 1m\n", "", `for "" is not a positive duration`},
		{"alert without severity", obsAlertsPath, "severity: warning", "team: warning", `severity ""`},
		{"broken annotation template", obsAlertsPath, "{{ $value | humanizePercentage }}", "{{ $value | humanisePercentage }}", `rulefmt: `},
		{"unknown rule field", obsAlertsPath, "        for: 10m\n", "        for: 10m\n        keep_firing: 5m\n", "keep_firing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := dashboard
			if tc.file == obsAlertsPath {
				src = alerts
			}
			if !bytes.Contains(src, []byte(tc.old)) {
				t.Fatalf("%s holds no %q to break", tc.file, tc.old)
			}
			broken := bytes.Replace(src, []byte(tc.old), []byte(tc.new), 1)
			var problems []string
			if tc.file == obsAlertsPath {
				_, problems = obsCheckRules(reg, broken, "")
			} else {
				problems = obsCheckDashboard(reg, broken)
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("no problem reported contains %q; reported:\n%s", tc.want, strings.Join(problems, "\n"))
			}
		})
	}
}
