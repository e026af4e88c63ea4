package mcp

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/redact"
	"github.com/verdictpdp/verdict/internal/scan/dlp"
	"github.com/verdictpdp/verdict/internal/scan/poison"
)

// Names of the engine components the decider reads (engine.AddComponent).
const (
	// ComponentDLP is the result scanner compiled from data.mcp.dlp.
	ComponentDLP = "mcp.dlp"
	// ComponentPoisoning is the list-entry scanner compiled from the
	// catalog (data.mcp.servers).
	ComponentPoisoning = "mcp.poisoning"
)

// RegisterComponents registers the scanners the decider reads with eng:
// every activation compiles them from its bundle data, and an invalid
// data.mcp.dlp fails the activation. hashKey keys the dlp hash mode.
func RegisterComponents(eng *engine.Engine, hashKey []byte) {
	key := slices.Clone(hashKey)
	eng.AddComponent(ComponentDLP, func(ctx context.Context, data engine.DataReader) (any, error) {
		v, _, err := data.Data(ctx, "mcp", "dlp")
		if err != nil {
			return nil, err
		}
		return CompileDLP(v, key)
	})
	eng.AddComponent(ComponentPoisoning, func(ctx context.Context, data engine.DataReader) (any, error) {
		v, _, err := data.Data(ctx, "mcp", "servers")
		if err != nil {
			return nil, err
		}
		return CompilePoisoning(v), nil
	})
	eng.AddComponent(ComponentFlows, func(ctx context.Context, data engine.DataReader) (any, error) {
		v, _, err := data.Data(ctx, "mcp", "flows")
		if err != nil {
			return nil, err
		}
		return nil, CheckFlows(v)
	})
}

// NewHashKey returns a random 32-byte key for the dlp hash mode: hashes
// are then stable within one process only.
func NewHashKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails
	return k
}

// ErrInvalidDLP is wrapped when data.mcp.dlp is not a valid configuration.
var ErrInvalidDLP = errors.New("invalid data.mcp.dlp")

// DLP is the result scanner of one activation: every detector (built-in
// and custom) with the mode data.mcp.dlp gives it (default mask). It is
// safe for concurrent use.
type DLP struct {
	// modes is the configured mode of every detector.
	modes  map[string]Mode
	custom []dlp.Custom
	opts   dlp.Options
	// base reports every detector: what input.findings counts.
	base *dlp.Scanner

	mu         sync.Mutex
	selections map[string]*dlp.Scanner
}

// Mode is what a selected detector does with its matches.
type Mode = dlp.Mode

// maxScanBytes bounds data.mcp.dlp's max_string_bytes and max_value_bytes.
const maxScanBytes = 64 << 20

// maxSelections bounds the scanners a DLP keeps compiled: one per distinct
// set of detectors decisions select.
const maxSelections = 256

// CompileDLP compiles data.mcp.dlp (nil: the defaults):
//
//	{"modes": {"email": "mask", "card_number": "hash", "us_ssn": "block"},
//	 "custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}", "validator": "none", "mode": "mask"}],
//	 "phone_region": "US", "include_private_ips": false,
//	 "max_string_bytes": 262144, "max_value_bytes": 1048576}
//
// Unknown members, detectors, modes and validators are errors.
func CompileDLP(v any, hashKey []byte) (*DLP, error) {
	d, err := compileDLP(v, hashKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDLP, err)
	}
	return d, nil
}

func compileDLP(v any, hashKey []byte) (*DLP, error) {
	d := &DLP{modes: map[string]Mode{}, selections: map[string]*dlp.Scanner{}}
	for _, n := range dlp.Detectors() {
		d.modes[n] = dlp.Mask
	}
	d.opts.HashKey = slices.Clone(hashKey)
	var cfg map[string]any
	if v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("must be an object, got %s", TypeName(v))
		}
		cfg = m
	}
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		switch k {
		case "modes", "custom", "phone_region", "include_private_ips", "max_string_bytes", "max_value_bytes":
		default:
			return nil, fmt.Errorf("unknown member %q (modes, custom, phone_region, include_private_ips, max_string_bytes, max_value_bytes)", k)
		}
	}
	for _, b := range []struct {
		key string
		to  *int
	}{{"max_string_bytes", &d.opts.MaxStringBytes}, {"max_value_bytes", &d.opts.MaxValueBytes}} {
		v, ok := cfg[b.key]
		if !ok {
			continue
		}
		n, err := intValue(v, b.key, maxScanBytes)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%s must be an integer from 1 to %d", b.key, maxScanBytes)
		}
		*b.to = int(n)
	}
	if r, ok := cfg["phone_region"]; ok {
		s, ok := r.(string)
		if !ok {
			return nil, fmt.Errorf("phone_region must be a string, got %s", TypeName(r))
		}
		d.opts.PhoneRegion = s
	}
	if p, ok := cfg["include_private_ips"]; ok {
		b, ok := p.(bool)
		if !ok {
			return nil, fmt.Errorf("include_private_ips must be a boolean, got %s", TypeName(p))
		}
		d.opts.IncludePrivateIPs = b
	}
	if c, ok := cfg["custom"]; ok {
		arr, ok := c.([]any)
		if !ok {
			return nil, fmt.Errorf("custom must be an array, got %s", TypeName(c))
		}
		for i, el := range arr {
			cd, err := customDetector(el)
			if err != nil {
				return nil, fmt.Errorf("custom[%d]: %w", i, err)
			}
			if _, dup := d.modes[cd.Name]; dup {
				return nil, fmt.Errorf("custom[%d]: detector %q is defined twice or is built in", i, cd.Name)
			}
			d.modes[cd.Name] = cd.Mode
			d.custom = append(d.custom, cd)
		}
	}
	if mv, ok := cfg["modes"]; ok {
		m, ok := mv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("modes must be an object of detector to mode, got %s", TypeName(mv))
		}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if _, known := d.modes[name]; !known {
				return nil, fmt.Errorf("modes: unknown detector %q: use one of %s or a custom detector", name, strings.Join(redact.Detectors(), ", "))
			}
			s, ok := m[name].(string)
			if !ok {
				return nil, fmt.Errorf("modes.%s must be a string, got %s", name, TypeName(m[name]))
			}
			d.modes[name] = Mode(s)
			for i := range d.custom {
				if d.custom[i].Name == name {
					d.custom[i].Mode = Mode(s)
				}
			}
		}
	}
	// Compile every detector in its mode once, so that any error shows at
	// activation, not on the request path.
	if _, err := d.compile(slices.Collect(maps.Keys(d.modes))); err != nil {
		return nil, err
	}
	base, err := d.compile(nil)
	if err != nil {
		return nil, err
	}
	d.base = base
	return d, nil
}

func customDetector(v any) (dlp.Custom, error) {
	var c dlp.Custom
	m, ok := v.(map[string]any)
	if !ok {
		return c, fmt.Errorf("must be an object, got %s", TypeName(v))
	}
	str := func(k string) (string, error) {
		x, ok := m[k]
		if !ok {
			return "", nil
		}
		s, ok := x.(string)
		if !ok {
			return "", fmt.Errorf("%s must be a string, got %s", k, TypeName(x))
		}
		return s, nil
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch k {
		case "name", "pattern", "validator", "mode":
		default:
			return c, fmt.Errorf("unknown member %q (name, pattern, validator, mode)", k)
		}
	}
	var err error
	if c.Name, err = str("name"); err != nil {
		return c, err
	}
	if c.Pattern, err = str("pattern"); err != nil {
		return c, err
	}
	if c.Validator, err = str("validator"); err != nil {
		return c, err
	}
	mode, err := str("mode")
	if err != nil {
		return c, err
	}
	c.Mode = cmp.Or(Mode(mode), dlp.Mask)
	if c.Name == "" || c.Pattern == "" {
		return c, errors.New("needs a name and a pattern")
	}
	return c, nil
}

// compile returns a scanner running every detector: the selected ones in
// their configured mode, the others in report mode.
func (d *DLP) compile(selected []string) (*dlp.Scanner, error) {
	sel := make(map[string]bool, len(selected))
	for _, n := range selected {
		sel[n] = true
	}
	o := d.opts
	o.Detectors = map[string]Mode{}
	for _, n := range dlp.Detectors() {
		o.Detectors[n] = dlp.Report
		if sel[n] {
			o.Detectors[n] = d.modes[n]
		}
	}
	o.Custom = make([]dlp.Custom, len(d.custom))
	for i, c := range d.custom {
		if !sel[c.Name] {
			c.Mode = dlp.Report
		}
		o.Custom[i] = c
	}
	return dlp.New(o)
}

// Known reports whether name is a detector: built in or custom.
func (d *DLP) Known(name string) bool {
	_, ok := d.modes[name]
	return ok
}

// ModeOf returns the configured mode of a detector.
func (d *DLP) ModeOf(name string) Mode { return d.modes[name] }

// selected expands the detector names a decision selects ("secret" also
// selects "private_key") and returns the names that are no detector.
func (d *DLP) selected(names []string) (sel, unknown []string) {
	var custom []string
	for _, n := range names {
		if _, builtin := dlp.DefaultModes()[n]; !builtin && d.Known(n) {
			custom = append(custom, n)
		}
	}
	sel, unknown = redact.Selected(names)
	unknown = slices.DeleteFunc(unknown, d.Known)
	sel = append(sel, custom...)
	slices.Sort(sel)
	return slices.Compact(sel), unknown
}

// scanner returns the scanner for a selection of detectors.
func (d *DLP) scanner(sel []string) (*dlp.Scanner, error) {
	key := strings.Join(sel, ",")
	d.mu.Lock()
	s, ok := d.selections[key]
	d.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := d.compile(sel)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if len(d.selections) < maxSelections {
		d.selections[key] = s
	}
	d.mu.Unlock()
	return s, nil
}

// Scan returns what every detector finds in v (counts per detector) and
// whether part of v was not scanned.
func (d *DLP) Scan(v any) (map[string]int, bool) {
	r := d.base.Apply(v)
	return counts(r.Findings), r.Skipped != (dlp.Skipped{})
}

func counts(fs []dlp.Finding) map[string]int {
	out := make(map[string]int, len(fs))
	for _, f := range fs {
		if f.Count > 0 {
			out[f.Detector] += f.Count
		}
	}
	return out
}

var (
	defaultDLPOnce sync.Once
	defaultDLP     *DLP
)

// dlpScanner returns the active policy's result scanner, or the defaults
// (every detector masking, a per-process hash key) when the engine has
// none registered.
func (d *Decider) dlpScanner() *DLP {
	if s, ok := d.p.Component(ComponentDLP).(*DLP); ok && s != nil {
		return s
	}
	defaultDLPOnce.Do(func() {
		s, err := CompileDLP(nil, NewHashKey())
		if err != nil {
			panic("mcp: the default dlp configuration does not compile: " + err.Error())
		}
		defaultDLP = s
	})
	return defaultDLP
}

// Poisoning scans list entries for tool poisoning with the catalog's tool
// names (shadowing and cross-server references).
type Poisoning struct {
	known map[string][]string
}

// CompilePoisoning reads the tool names of every server in the catalog
// (data.mcp.servers.<server>.tools). Entries of another shape are left
// out: the policy reports a broken catalog.
func CompilePoisoning(servers any) *Poisoning {
	p := &Poisoning{known: map[string][]string{}}
	m, _ := servers.(map[string]any)
	for name, sv := range m {
		s, _ := sv.(map[string]any)
		tools, _ := s["tools"].(map[string]any)
		if len(tools) > 0 {
			p.known[name] = slices.Sorted(maps.Keys(tools))
		}
	}
	return p
}

// poisoningScanner returns the active policy's list scanner, or one that
// knows no catalog.
func (d *Decider) poisoningScanner() *Poisoning {
	if s, ok := d.p.Component(ComponentPoisoning).(*Poisoning); ok && s != nil {
		return s
	}
	return &Poisoning{}
}

// definitionKinds maps input.list.kind to poison's definition kind.
var definitionKinds = map[string]string{
	"tools": "tool", "prompts": "prompt", "resources": "resource", "resource_templates": "resource",
}

// Findings scans each entry of a list and returns, per entry key, the
// distinct rules that fired with their highest severity, as
// input.list.findings holds them: [{"rule", "severity"}], sorted by rule.
// Entries without findings are left out. Evidence is never included: it
// may be attacker text.
func (p *Poisoning) Findings(server, method string, items []any) map[string]any {
	shape := listShapes[method]
	kind := definitionKinds[shape.kind]
	out := map[string]any{}
	opts := poison.Options{KnownTools: p.known}
	for _, it := range items {
		entry, _ := it.(map[string]any)
		key, _ := entry[shape.key].(string)
		if key == "" {
			continue
		}
		def := poison.Definition{Kind: kind, Server: server, Annotations: entry["annotations"]}
		def.Name, _ = entry["name"].(string)
		def.Title, _ = entry["title"].(string)
		def.Description, _ = entry["description"].(string)
		switch kind {
		case "tool":
			def.Schema = entry["inputSchema"]
		case "prompt":
			def.Schema = entry["arguments"]
		}
		if kind == "resource" && def.Name == "" {
			def.Name = key
		}
		worst := map[string]poison.Severity{}
		for _, f := range poison.Scan(def, opts) {
			worst[f.Rule] = max(worst[f.Rule], f.Severity)
		}
		if prev, ok := out[key].([]any); ok { // a repeated key: merge
			for _, x := range prev {
				f := x.(map[string]any)
				r := f["rule"].(string)
				worst[r] = max(worst[r], severityOf(f["severity"].(string)))
			}
		}
		if len(worst) == 0 {
			continue
		}
		fs := make([]any, 0, len(worst))
		for _, r := range slices.Sorted(maps.Keys(worst)) {
			fs = append(fs, map[string]any{"rule": r, "severity": worst[r].String()})
		}
		out[key] = fs
	}
	return out
}

func severityOf(s string) poison.Severity {
	for sev := poison.Low; sev <= poison.Critical; sev++ {
		if sev.String() == s {
			return sev
		}
	}
	return 0
}
