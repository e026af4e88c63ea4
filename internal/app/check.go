package app

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	verdict "github.com/verdictpdp/verdict"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcpnative"
	"github.com/verdictpdp/verdict/internal/source"
	"github.com/verdictpdp/verdict/internal/status"
)

// catalogSchemaURL names the embedded catalog schema in messages.
const catalogSchemaURL = "https://verdictpdp.dev/schemas/mcp/catalog.schema.json"

// checkFinding is one thing `pdp check` reports: a problem (exit 1) or a
// warning.
type checkFinding struct {
	File    string // empty when the finding has no place in a file
	Pos     position
	Pointer string // JSON pointer into data, for data findings
	Message string
	Warning bool
}

func (f checkFinding) String() string {
	var b strings.Builder
	if f.File != "" {
		fmt.Fprintf(&b, "%s:%d:%d: ", f.File, f.Pos.Line, f.Pos.Col)
	}
	if f.Warning {
		b.WriteString("warning: ")
	}
	if f.Pointer != "" {
		fmt.Fprintf(&b, "%s: ", f.Pointer)
	}
	b.WriteString(f.Message)
	return b.String()
}

// cmdCheck loads and compiles the configured bundles as serve would, checks
// that the configured entrypoints are defined, validates the MCP catalog
// against its schema and reports why the native MCP evaluator would hand the
// catalog back to Rego. Exit 0 when nothing is wrong (warnings allowed), 1
// when a problem is found, 2 on a usage error.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pdp check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.BindCheckFlags(fs)
	cfg, code, ok := resolveCommand(fs, args, flags, stderr)
	if !ok {
		return code
	}
	findings, err := checkBundles(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "pdp check: %v\n", err)
		return 1
	}
	problems := 0
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
		if !f.Warning {
			problems++
		}
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d problem(s) found\n", problems)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d bundle(s), entrypoints %s defined\n", len(cfg.Bundles), strings.Join(checkedEntrypoints(cfg), ", "))
	return 0
}

func checkedEntrypoints(cfg config.Config) []string {
	eps := []string{cfg.ExtAuthz.Path, cfg.MCP.Path}
	if p := authzenPath(cfg); p != "" && cfg.AuthZEN.Path != config.Default().AuthZEN.Path {
		eps = append(eps, p)
	}
	if p := approvalsPath(cfg); p != "" && cfg.Approvals.Path != config.DefaultApprovalsPath {
		eps = append(eps, p)
	}
	return eps
}

// checkBundles returns the findings about the bundles of cfg; an error
// means the check itself could not run.
func checkBundles(ctx context.Context, cfg config.Config) ([]checkFinding, error) {
	for _, b := range cfg.Bundles {
		if b.IsURL() {
			return nil, errors.New("pdp check reads local bundles only: download " + source.RedactURL(b.Source) + " first")
		}
	}
	var findings []checkFinding
	broken := false
	for _, b := range cfg.Bundles {
		fs, stop := checkData(b.Source)
		findings = append(findings, fs...)
		broken = broken || stop
	}
	if broken {
		return findings, nil // the bundles cannot be read: nothing more to learn
	}
	logger := NewLogger(io.Discard, cfg.Log)
	eng, err := newEngine(cfg, logger, nil)
	if err != nil {
		return nil, err
	}
	sources, err := buildSources(cfg, NewBundleReader(cfg), logger)
	if err != nil {
		return nil, err
	}
	mgr, err := newManager(eng, status.NewRegistry(), logger, sources)
	if err != nil {
		return nil, err
	}
	if err := activateLocal(ctx, sources, mgr); err != nil {
		return append(findings, compileFindings(err, cfg.Bundles)...), nil
	}
	snap := eng.Snapshot()
	if snap == nil {
		return append(findings, checkFinding{Message: "no bundle was activated"}), nil
	}
	for _, ep := range snap.Undefined {
		findings = append(findings, checkFinding{Message: "entrypoint " + ep + " is undefined: no rule or data of the bundles defines it (undefined_entrypoints in /v1/status)"})
	}
	// The AuthZEN path is optional to serve (its API answers 404 while
	// undefined); it is a problem only when it was configured.
	if p := authzenPath(cfg); p != "" && slices.Contains(checkedEntrypoints(cfg), p) && !snap.Defines(p) {
		findings = append(findings, checkFinding{Message: "entrypoint " + p + " is undefined: no rule or data of the bundles defines it (--authzen-path)"})
	}
	// The native MCP evaluator's refusals: the catalog is still decided, in
	// Rego, but slower.
	if ev, ok := snap.Evaluators()[mcpnative.Entrypoint]; ok && cfg.MCP.NativeEnabled() && ev.Kind == engine.EvaluatorRego && ev.Reason != "" {
		findings = append(findings, checkFinding{Warning: true,
			Message: "entrypoint " + mcpnative.Entrypoint + " is evaluated in Rego, not natively: " + ev.Reason})
	}
	return findings, nil
}

// compileFindings lists the OPA errors in err (parse and compile errors,
// with their file:line:col), or err itself.
func compileFindings(err error, bundles []config.Bundle) []checkFinding {
	var errs ast.Errors
	if errors.As(err, &errs) && len(errs) > 0 {
		out := make([]checkFinding, 0, len(errs))
		for _, e := range errs {
			f := checkFinding{Message: e.Code + ": " + e.Message}
			if e.Location != nil {
				f.File, f.Pos = bundleFile(e.Location.File, bundles), position{e.Location.Row, e.Location.Col}
			}
			out = append(out, f)
		}
		return out
	}
	var one *ast.Error
	if errors.As(err, &one) {
		return compileFindings(ast.Errors{one}, bundles)
	}
	return []checkFinding{{Message: err.Error()}}
}

// bundleFile is the path of a file of a directory bundle as OPA's
// directory loader names it, which repeats the directory (dir/dir/x.rego),
// made a path again.
func bundleFile(file string, bundles []config.Bundle) string {
	for _, b := range bundles {
		dir := filepath.Clean(b.Source)
		if twice := filepath.Join(dir, dir) + string(filepath.Separator); strings.HasPrefix(file, twice) {
			return file[len(dir)+1:]
		}
	}
	return file
}

// checkData checks the data.json files of the bundle directory dir: their
// syntax, and the MCP catalog they hold against the catalog schema. stop is
// set when a file is not JSON (the bundle cannot be loaded). Archives are
// not looked into.
func checkData(dir string) (findings []checkFinding, stop bool) {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return nil, false // loading reports a missing bundle
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, false // loading reports an unreadable bundle
	}
	defer func() { _ = root.Close() }()
	fsys := root.FS()
	_ = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "data.json" {
			return nil //nolint:nilerr // unreadable entries are the loader's to report
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			findings = append(findings, checkFinding{File: path, Pos: position{1, 1}, Message: err.Error()})
			stop = true
			return nil
		}
		if pos, err := jsonSyntaxPosition(src); err != nil {
			findings = append(findings, checkFinding{File: path, Pos: pos, Message: "invalid JSON: " + err.Error()})
			stop = true
			return nil
		}
		findings = append(findings, checkCatalog(path, filepath.Dir(filepath.FromSlash(name)), src)...)
		return nil
	})
	return findings, stop
}

// checkCatalog validates the part of data.mcp in the data file path (at
// the data path rel of its bundle) against the catalog schema.
func checkCatalog(path, rel string, src []byte) []checkFinding {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
	if err != nil {
		return []checkFinding{{File: path, Pos: position{1, 1}, Message: err.Error()}}
	}
	var base string
	switch filepath.ToSlash(rel) {
	case ".":
		m, ok := doc.(map[string]any)
		if !ok || m["mcp"] == nil {
			return nil
		}
		doc, base = m["mcp"], "/mcp"
	case "mcp":
		// The file is data.mcp itself.
	default:
		return nil // deeper files hold part of a catalog: not checked
	}
	sch, err := catalogSchema()
	if err != nil {
		return []checkFinding{{Message: "catalog schema: " + err.Error()}}
	}
	err = sch.Validate(doc)
	if err == nil {
		return nil
	}
	ve, ok := errors.AsType[*jsonschema.ValidationError](err)
	if !ok {
		return []checkFinding{{File: path, Pos: position{1, 1}, Message: err.Error()}}
	}
	positions := jsonPointerPositions(src)
	var out []checkFinding
	for _, leaf := range leaves(ve) {
		ptr := base
		for _, tok := range leaf.InstanceLocation {
			ptr += "/" + escapePointer(tok)
		}
		at := ptr
		// Point at the offending member, not at its object.
		switch k := leaf.ErrorKind.(type) {
		case *kind.AdditionalProperties:
			if len(k.Properties) > 0 {
				at = ptr + "/" + escapePointer(k.Properties[0])
			}
		}
		pos, ok := positions[at]
		if !ok {
			pos = positions[ptr]
		}
		if ptr == "" {
			ptr = "/"
		}
		out = append(out, checkFinding{File: path, Pos: pos, Pointer: ptr, Message: leaf.ErrorKind.LocalizedString(printer)})
	}
	slices.SortStableFunc(out, func(a, b checkFinding) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
	return out
}

var printer = message.NewPrinter(language.English)

// leaves are the errors of e that have no causes: the violations.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func catalogSchema() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(verdict.CatalogSchema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(catalogSchemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(catalogSchemaURL)
}
