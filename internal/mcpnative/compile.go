package mcpnative

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcp"
)

// Classification levels and defaults, as catalog.rego and decision.rego
// define them.
var (
	levels               = map[string]int{"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
	defaultRetentionDays = map[string]any{"public": json.Number("2555"), "internal": json.Number("1825"), "confidential": json.Number("1095"), "restricted": json.Number("365")}
	defaultRedact        = map[string][]string{
		"public":       {"secret"},
		"internal":     {"card_number", "secret"},
		"confidential": {"card_number", "email", "iban", "secret", "us_ssn"},
		"restricted":   {"card_number", "email", "iban", "secret", "us_ssn"},
	}
	defaultOpenMethods = []string{
		"initialize", "server/discover", "ping", "tools/list", "resources/list", "resources/templates/list", "prompts/list",
		"notifications/initialized", "notifications/cancelled", "notifications/progress",
		"notifications/roots/list_changed",
	}
	defaultTrainedRoles   = []string{"hipaa_trained"}
	defaultHIPAAPurposes  = []string{"treatment", "payment", "operations"}
	defaultGDPRPurposes   = []string{"contract", "legal_obligation", "legitimate_interest", "consent", "support"}
	defaultGDPRRegions    = []string{"eu"}
	controlsAccess        = []string{"SOC2:CC6.1", "SOC2:CC6.3"}
	controlsFullAudit     = []string{"SOC2:CC7.2"}
	controlsHIPAA         = []string{"HIPAA:164.308(a)(5)", "HIPAA:164.312(b)", "HIPAA:164.502(b)", "HIPAA:164.506"}
	controlsGDPR          = []string{"GDPR:Art.5(1)(b)", "GDPR:Art.6", "GDPR:Art.32", "GDPR:Art.44"}
	unknownTargetControls = stringsAny(sortedCopy(controlsAccess))
)

// The kinds of catalog entries, which index rules.
const (
	kindTool = iota
	kindPrompt
	kindResource
	numKinds
)

var kindNames = [numKinds]string{"tools", "prompts", "resources"}

// Compiler is the engine's native compiler for the MCP library.
type Compiler struct{ lib *library }

// New returns a compiler that evaluates the library in fsys under dir (the
// shipped policies, as embedded) natively when a bundle runs it unchanged.
func New(fsys fs.FS, dir string) *Compiler { return &Compiler{lib: loadLibrary(fsys, dir)} }

// Compile implements engine.Native.
func (c *Compiler) Compile(ctx context.Context, p *engine.Policy) (engine.NativeEvaluator, error) {
	if err := c.lib.check(p.Bundles); err != nil {
		return nil, err
	}
	raw, err := readData(ctx, p.Store)
	if err != nil {
		return nil, err
	}
	cc := &compiler{ctx: ctx, policy: p, caps: p.Compiler.Capabilities(),
		schemas: map[int][]*compiledSchema{}, formatted: map[string]string{}}
	cat, err := cc.catalog(raw)
	if err != nil {
		return nil, fmt.Errorf("data.mcp: %w", err)
	}
	return cat, nil
}

type compiler struct {
	ctx    context.Context
	policy *engine.Policy
	caps   *ast.Capabilities
	// schemas and formatted share the work of equal schemas and lists
	// between entries (catalogs repeat them).
	schemas   map[int][]*compiledSchema // by the schema value's hash
	formatted map[string]string
}

type compiledSchema struct {
	value ast.Value
	slot  *schemaSlot
	err   error
}

// catalog is the compiled library data: the native evaluator.
type catalog struct {
	settings
	servers map[string]*server
	rules   []*rule
	index   [numKinds]index
	bySubj  subjectIndex
	caps    *ast.Capabilities
	// poisoning is the library's poisoning_pattern.
	poisoning *regexp.Regexp
	// flowRules are data.mcp.flows, decided natively. When some rule has
	// a shape only Rego reads exactly (flowsInRego), flows holds their
	// "after" conditions instead, and a request from a session that may
	// meet one is decided in Rego.
	flowRules []flowRule
	flows     []flowAfter
}

type settings struct {
	openMethods          []string
	allowUnauthenticated bool
	requireInputSchema   bool
	trainedRoles         []string
	trainedRolesV        string // %v of trainedRoles
	// hideLevel is hide_level: the least severity of a poisoning finding
	// that hides a list entry.
	hideLevel int
}

// poisoningSeverities is the library's poisoning_severities.
var poisoningSeverities = map[string]int{"low": 1, "medium": 2, "high": 3, "critical": 4}

type server struct {
	tenants    []string
	hasTenants bool
	tools      map[string]*entry
	prompts    map[string]*entry
	resources  []*entry // in catalog order; uri_prefix unique
}

// entry is a catalog entry with everything the library derives from it
// alone.
type entry struct {
	raw            map[string]any
	classification string
	level          int
	phi, personal  bool
	categories     []string // sorted, without duplicates
	blockOn        []string
	destructive    bool
	// flowLevel is the level the entry is explicitly classified at (0
	// without a known classification), as flow rules read it.
	flowLevel int
	// openWorld is the library's annotation(entry, "openWorldHint"):
	// anything but false, MCP's default true when absent.
	openWorld bool
	// poisoningExempt are the poisoning rules cleared for the entry.
	poisoningExempt []string
	// obligations are the decision's obligations when this entry is the
	// target, but for the rate limit's key.
	obligations map[string]any
	rateLimit   map[string]any // without "key"; nil when none
	// Tools: the input schema and the tenant argument.
	hasSchema    bool // input_schema present and not false
	schema       ast.Value
	slot         *schemaSlot
	tenantArg    []string
	hasTenantArg bool
	tenantArgRaw string
	// Regimes' purposes: the entry's own or the settings'.
	hipaaPurposes, gdprPurposes   []string
	hipaaPurposesV, gdprPurposesV string
	gdprRegions                   []string
	gdprRegionsV                  string
	// Lists: the pinned digest of the definition.
	pin    string
	hasPin bool
	// Resources: the URI prefix.
	uriPrefix string
}

func (cc *compiler) catalog(data map[string]any) (*catalog, error) {
	cat := &catalog{servers: map[string]*server{}, caps: cc.caps}
	pv, err := cc.eval(`data.verdict.mcp.poisoning_pattern`, ast.NewObject())
	if err != nil {
		return nil, err
	}
	pat, ok := pv.(ast.String)
	if !ok {
		return nil, errors.New("the library's poisoning_pattern is not a string")
	}
	if cat.poisoning, err = regexp.Compile(string(pat)); err != nil {
		return nil, err
	}
	st, err := objectOr(data, "settings")
	if err != nil {
		return nil, err
	}
	if err := cc.settings(cat, st); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	servers, err := objectOr(data, "servers")
	if err != nil {
		return nil, err
	}
	env, err := cc.entryEnv(st)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	for _, name := range sortedKeys(servers) {
		s, err := cc.server(servers[name], env)
		if err != nil {
			return nil, fmt.Errorf("servers[%q]: %w", name, err)
		}
		cat.servers[name] = s
	}
	if rv, ok := data["rules"]; ok {
		rules, ok := rv.([]any)
		if !ok {
			return nil, fmt.Errorf("rules is %s, not an array", mcp.TypeName(rv))
		}
		for i, r := range rules {
			cr, err := cc.rule(r)
			if err != nil {
				return nil, fmt.Errorf("rules[%d]: %w", i, err)
			}
			cat.rules = append(cat.rules, cr)
		}
	}
	if rules, ok := flowRules(data["flows"]); ok {
		cat.flowRules = rules
	} else {
		cat.flows = flowAfters(data["flows"])
	}
	for k := range numKinds {
		cat.index[k] = buildIndex(cat.rules, k)
	}
	cat.bySubj = buildSubjectIndex(cat.rules)
	return cat, nil
}

func (cc *compiler) settings(cat *catalog, st map[string]any) error {
	var err error
	if cat.openMethods, err = stringsOr(st, "open_methods", defaultOpenMethods); err != nil {
		return err
	}
	if cat.allowUnauthenticated, err = boolOr(st, "allow_unauthenticated", false); err != nil {
		return err
	}
	if cat.requireInputSchema, err = boolOr(st, "require_input_schema", true); err != nil {
		return err
	}
	po, err := objectOr(st, "poisoning")
	if err != nil {
		return err
	}
	cat.hideLevel = poisoningSeverities["high"]
	if hv, has := po["hide_severity"]; has {
		hs, _ := hv.(string)
		if cat.hideLevel = poisoningSeverities[hs]; cat.hideLevel == 0 {
			cat.hideLevel = 1 // an unknown level hides at any severity
		}
	}
	hipaa, err := objectOr(st, "hipaa")
	if err != nil {
		return err
	}
	if cat.trainedRoles, err = stringsOr(hipaa, "trained_roles", defaultTrainedRoles); err != nil {
		return fmt.Errorf("hipaa: %w", err)
	}
	cat.trainedRolesV, err = formatV(cat.trainedRoles)
	return err
}

// entryEnv is what entries derive from the settings.
type entryEnv struct {
	defaultClassification string
	retention             map[string]any
	redact                map[string][]string
	hipaa, gdpr           map[string]any
}

func (cc *compiler) entryEnv(st map[string]any) (*entryEnv, error) {
	env := &entryEnv{defaultClassification: "restricted", retention: map[string]any{}}
	if v, ok := st["default_classification"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("default_classification is %s, not a string", mcp.TypeName(v))
		}
		env.defaultClassification = s
	}
	for k, v := range defaultRetentionDays {
		env.retention[k] = v
	}
	rd, err := objectOr(st, "retention_days")
	if err != nil {
		return nil, err
	}
	for k, v := range rd {
		if _, ok := v.(json.Number); !ok {
			return nil, fmt.Errorf("retention_days[%q] is %s, not a number", k, mcp.TypeName(v))
		}
		env.retention[k] = v
	}
	env.redact = defaultRedact
	if rv, ok := st["redact"]; ok {
		m, ok := rv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("redact is %s, not an object", mcp.TypeName(rv))
		}
		env.redact = map[string][]string{}
		for k := range m {
			if env.redact[k], err = stringsOr(m, k, nil); err != nil {
				return nil, fmt.Errorf("redact: %w", err)
			}
		}
	}
	if env.hipaa, err = objectOr(st, "hipaa"); err != nil {
		return nil, err
	}
	if env.gdpr, err = objectOr(st, "gdpr"); err != nil {
		return nil, err
	}
	return env, nil
}

func (cc *compiler) server(v any, env *entryEnv) (*server, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("is %s, not an object", mcp.TypeName(v))
	}
	s := &server{tools: map[string]*entry{}, prompts: map[string]*entry{}}
	if _, ok := m["tenants"]; ok {
		var err error
		if s.tenants, err = stringsOr(m, "tenants", nil); err != nil {
			return nil, err
		}
		s.hasTenants = true
	}
	for _, kind := range []struct {
		member string
		into   map[string]*entry
		tool   bool
	}{{"tools", s.tools, true}, {"prompts", s.prompts, false}} {
		entries, err := objectOr(m, kind.member)
		if err != nil {
			return nil, err
		}
		for _, name := range sortedKeys(entries) {
			e, err := cc.entry(entries[name], env, kind.tool)
			if err != nil {
				return nil, fmt.Errorf("%s[%q]: %w", kind.member, name, err)
			}
			kind.into[name] = e
		}
	}
	if rv, ok := m["resources"]; ok {
		arr, ok := rv.([]any)
		if !ok {
			return nil, fmt.Errorf("resources is %s, not an array", mcp.TypeName(rv))
		}
		prefixes := map[string]bool{}
		for i, r := range arr {
			e, err := cc.entry(r, env, false)
			if err != nil {
				return nil, fmt.Errorf("resources[%d]: %w", i, err)
			}
			p, ok := e.raw["uri_prefix"].(string)
			if !ok {
				return nil, fmt.Errorf("resources[%d].uri_prefix is %s, not a string", i, mcp.TypeName(e.raw["uri_prefix"]))
			}
			if prefixes[p] {
				return nil, fmt.Errorf("resources[%d]: uri_prefix %q is listed twice", i, p)
			}
			prefixes[p] = true
			e.uriPrefix = p
			s.resources = append(s.resources, e)
		}
	}
	return s, nil
}

// entry compiles one catalog entry. tool says whether it is a tool (its
// "/arguments" redaction and schema apply).
func (cc *compiler) entry(v any, env *entryEnv, tool bool) (*entry, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("is %s, not an object", mcp.TypeName(v))
	}
	e := &entry{raw: m}
	// classification_of: the entry's, else the default; unknown → restricted.
	c := env.defaultClassification
	if cv, ok := m["classification"]; ok {
		s, ok := cv.(string)
		if !ok {
			return nil, fmt.Errorf("classification is %s, not a string", mcp.TypeName(cv))
		}
		c = s
	}
	if _, ok := levels[c]; !ok {
		c = "restricted"
	}
	e.classification, e.level = c, levels[c]
	cats, err := stringsOr(m, "data_categories", nil)
	if err != nil {
		return nil, err
	}
	e.categories = slices.Compact(slices.Sorted(slices.Values(cats)))
	e.phi = slices.Contains(cats, "phi")
	e.personal = e.phi || slices.Contains(cats, "personal_data")
	if e.blockOn, err = stringsOr(m, "block_on", nil); err != nil {
		return nil, err
	}
	if e.poisoningExempt, err = stringsOr(m, "poisoning_exempt", nil); err != nil {
		return nil, err
	}
	own, err := stringsOr(m, "redact", nil)
	if err != nil {
		return nil, err
	}
	ann, err := objectOr(m, "annotations")
	if err != nil {
		return nil, err
	}
	readOnly, err := boolOr(ann, "readOnlyHint", false)
	if err != nil {
		return nil, fmt.Errorf("annotations: %w", err)
	}
	destructive, err := boolOr(ann, "destructiveHint", true)
	if err != nil {
		return nil, fmt.Errorf("annotations: %w", err)
	}
	e.destructive = !readOnly && destructive
	e.openWorld = ann["openWorldHint"] != false
	if c, ok := m["classification"].(string); ok {
		e.flowLevel = levels[c]
	}
	if sv, ok := m["input_schema"]; ok && sv != false {
		if err := cc.schema(e, sv); err != nil {
			return nil, err
		}
	}
	if tv, ok := m["tenant_argument"]; ok {
		s, ok := tv.(string)
		if !ok {
			return nil, fmt.Errorf("tenant_argument is %s, not a string", mcp.TypeName(tv))
		}
		e.tenantArg, e.hasTenantArg, e.tenantArgRaw = strings.Split(s, "."), true, s
	}
	if pv, ok := m["pin_sha256"]; ok {
		s, ok := pv.(string)
		if !ok {
			return nil, fmt.Errorf("pin_sha256 is %s, not a string", mcp.TypeName(pv))
		}
		e.pin, e.hasPin = s, true
	}
	// Purposes and regions of the compliance rules.
	own2, hasOwn := m["purposes"]
	purposes := func(regime map[string]any, fallback []string) ([]string, string, error) {
		var list []string
		var err error
		if hasOwn {
			if list, err = stringList(own2); err != nil {
				return nil, "", fmt.Errorf("purposes: %w", err)
			}
		} else if list, err = stringsOr(regime, "purposes", fallback); err != nil {
			return nil, "", err
		}
		s, err := cc.formatV(list)
		return list, s, err
	}
	if e.hipaaPurposes, e.hipaaPurposesV, err = purposes(env.hipaa, defaultHIPAAPurposes); err != nil {
		return nil, err
	}
	if e.gdprPurposes, e.gdprPurposesV, err = purposes(env.gdpr, defaultGDPRPurposes); err != nil {
		return nil, err
	}
	if e.gdprRegions, err = stringsOr(env.gdpr, "allowed_regions", defaultGDPRRegions); err != nil {
		return nil, err
	}
	if e.gdprRegionsV, err = cc.formatV(e.gdprRegions); err != nil {
		return nil, err
	}
	if err := cc.obligations(e, env, own, tool); err != nil {
		return nil, err
	}
	return e, nil
}

// obligations precomputes the decision's obligations for e as the target.
func (cc *compiler) obligations(e *entry, env *entryEnv, own []string, tool bool) error {
	m := e.raw
	ob := map[string]any{"classification": e.classification}
	// retention
	switch rd, hasRD := m["retention_days"]; {
	case hasRD && rd != false:
		if _, ok := rd.(json.Number); !ok {
			return fmt.Errorf("retention_days is %s, not a number", mcp.TypeName(rd))
		}
		ob["retention_days"] = rd
	default:
		if rd == false {
			return errors.New("retention_days is false, not a number")
		}
		if rc, ok := m["retention_class"]; ok && rc != false {
			s, ok := rc.(string)
			if !ok {
				return fmt.Errorf("retention_class is %s, not a string", mcp.TypeName(rc))
			}
			if v, ok := env.retention[s]; ok {
				ob["retention_days"] = v
			}
		} else if v, ok := env.retention[e.classification]; ok {
			ob["retention_days"] = v
		}
	}
	// redact
	red := slices.Clone(own)
	red = append(red, env.redact[e.classification]...)
	if tool && e.classification == "restricted" {
		red = append(red, "/arguments")
	}
	slices.Sort(red)
	red = slices.Compact(red)
	if len(red) > 0 {
		ob["redact"] = stringsAny(red)
	}
	// controls
	ctl := slices.Clone(controlsAccess)
	if e.level >= levels["confidential"] {
		ctl = append(ctl, controlsFullAudit...)
	}
	if e.phi {
		ctl = append(ctl, controlsHIPAA...)
	}
	if e.personal {
		ctl = append(ctl, controlsGDPR...)
	}
	slices.Sort(ctl)
	ob["controls"] = stringsAny(slices.Compact(ctl))
	labels := map[string]any{"classification": e.classification}
	if e.level >= levels["confidential"] {
		labels["audit"] = "full"
	}
	ob["labels"] = labels
	if len(e.categories) > 0 {
		ob["data_categories"] = stringsAny(e.categories)
	}
	// rate_limit
	if lv, ok := m["rate_limit"]; ok {
		lm, ok := lv.(map[string]any)
		if !ok {
			return fmt.Errorf("rate_limit is %s, not an object", mcp.TypeName(lv))
		}
		limit, ok1 := lm["limit"].(json.Number)
		period, ok2 := lm["period_seconds"].(json.Number)
		if !ok1 || !ok2 {
			return errors.New("rate_limit needs numbers limit and period_seconds")
		}
		burst := any(limit)
		if bv, ok := lm["burst"]; ok {
			if _, ok := bv.(json.Number); !ok {
				return fmt.Errorf("rate_limit.burst is %s, not a number", mcp.TypeName(bv))
			}
			burst = bv
		}
		e.rateLimit = map[string]any{"limit": limit, "period_seconds": period, "burst": burst}
	}
	e.obligations = ob
	return nil
}

// schema compiles a tool's input schema with OPA's json.match_schema, as
// the library calls it; a schema it cannot compile keeps the library in
// Rego (where the check would be silently undefined).
func (cc *compiler) schema(e *entry, sv any) error {
	switch sv.(type) {
	case map[string]any, string:
	default:
		return fmt.Errorf("input_schema is %s, not an object or JSON text", mcp.TypeName(sv))
	}
	v, err := ast.InterfaceToValue(sv)
	if err != nil {
		return fmt.Errorf("input_schema: %w", err)
	}
	var cs *compiledSchema
	h := v.Hash()
	for _, c := range cc.schemas[h] {
		if c.value.Compare(v) == 0 {
			cs = c
			break
		}
	}
	if cs == nil {
		cs = &compiledSchema{value: v, slot: &schemaSlot{}}
		switch {
		case !localRefs(sv):
			cs.err = errors.New("input_schema refers to another document ($ref or $id)")
		default:
			_, err := call(cc.ctx, builtinMatchSchema, cs.slot, cc.caps, ast.NewTerm(ast.NewObject()), ast.NewTerm(v))
			if err != nil || !cs.slot.loaded() {
				cs.err = errors.New("input_schema does not compile as a JSON schema")
			}
		}
		cc.schemas[h] = append(cc.schemas[h], cs)
	}
	if cs.err != nil {
		return cs.err
	}
	// Entries with equal schemas share one compiled schema: the slot holds
	// what json.match_schema compiled from this very value.
	e.hasSchema, e.schema, e.slot = true, cs.value, cs.slot
	return nil
}

// eval evaluates query on the activated policy with input, for values the
// library derives from data alone; an undefined result is nil.
func (cc *compiler) eval(query string, input ast.Value) (ast.Value, error) {
	rs, err := rego.New(
		rego.Query(query),
		rego.Compiler(cc.policy.Compiler),
		rego.Store(cc.policy.Store),
		rego.ParsedInput(input),
	).Eval(cc.ctx)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	return ast.InterfaceToValue(rs[0].Expressions[0].Value)
}
