package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/verdictpdp/verdict/internal/adapter/extauthz"
	"github.com/verdictpdp/verdict/internal/config"
	"github.com/verdictpdp/verdict/internal/engine"
	"github.com/verdictpdp/verdict/internal/mcp"
	"github.com/verdictpdp/verdict/internal/pipeline"
	"github.com/verdictpdp/verdict/internal/source"
	"github.com/verdictpdp/verdict/internal/status"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

const usage = `pdp — Verdict policy decision point

Usage:
  pdp serve [flags]     serve Envoy ext_authz v3 and MCP decisions (built-in bundles, plus any --bundle)
  pdp gateway [flags]   enforce policy in front of an MCP server (Streamable HTTP proxy, or --stdio -- COMMAND)
  pdp eval  [flags]     decide one request (Envoy CheckRequest or MCP CheckRequest JSON) and print the decision
  pdp test  PATH...     run the Rego unit tests under PATH, as opa test does
  pdp check [flags]     load and compile the configured bundles, check the entrypoints and the MCP catalog
  pdp catalog import    list an MCP server's tools, prompts and resources as pinned catalog entries; diff a data.json
  pdp catalog scan      scan an MCP server's definitions (or a catalog) for tool poisoning
  pdp audit verify ...  verify a tamper-evident audit log (pdp audit help)
  pdp audit keygen ...  write a key pair for signing audit checkpoints
  pdp version           print the version

Run 'pdp COMMAND -h' for the flags of a command.
`

// Main runs the pdp command line and returns the process exit code:
// 0 success, 1 failure, 2 usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "gateway":
		return cmdGateway(ctx, args[1:], stdout, stderr)
	case "eval":
		return cmdEval(ctx, args[1:], stdout, stderr)
	case "test":
		return cmdTest(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr)
	case "catalog":
		return cmdCatalog(ctx, args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "pdp %s (%s)\n", Version, goVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pdp: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pdp serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.BindServeFlags(fs)
	printConfig := fs.Bool("print-config", false, "print the effective configuration (file, environment, flags, defaults) as YAML with secrets masked, and exit")
	cfg, code, ok := resolveCommand(fs, args, flags, stderr)
	if !ok {
		return code
	}
	if *printConfig {
		return writeConfig(cfg, stdout, stderr)
	}
	logger := NewLogger(stderr, cfg.Log)
	if err := Serve(ctx, cfg, logger, nil); err != nil {
		logger.Error("pdp serve failed", "err", err)
		fmt.Fprintf(stderr, "pdp serve: %v\n", err)
		return 1
	}
	return 0
}

// resolveCommand parses a command's flags (and VERDICT_ variables) and
// resolves its configuration; when ok is false, code is the exit status
// (2 for a usage error, 1 for an invalid configuration) and the reason was
// written to stderr.
func resolveCommand(fs *flag.FlagSet, args []string, flags *config.Flags, stderr io.Writer) (cfg config.Config, code int, ok bool) {
	if err := config.ParseArgsAndEnv(fs, args); err != nil {
		return cfg, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return cfg, 2, false
	}
	cfg, err := flags.Resolve()
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n%v\n", fs.Name(), err)
		return cfg, 1, false
	}
	return cfg, 0, true
}

// EvalOutput is what `pdp eval` prints.
type EvalOutput struct {
	DecisionID string `json:"decision_id"`
	Path       string `json:"path"`
	Revision   string `json:"revision"`
	Allowed    bool   `json:"allowed"`
	// Decision is the MCP decision: allow, deny or require_approval.
	Decision string `json:"decision,omitempty"`
	Result   any    `json:"result"`
	Error    string `json:"error,omitempty"`
	// Response is the CheckResponse of the API that was asked.
	Response json.RawMessage `json:"check_response"`
	Input    any             `json:"input,omitempty"`
}

func cmdEval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pdp eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.BindEvalFlags(fs)
	reqFile := fs.String("request", "", "request JSON `file`: an Envoy CheckRequest (protojson) or a verdict.mcp.v1 CheckRequest; - for stdin")
	showInput := fs.Bool("show-input", false, "include the policy input in the output")
	failOnDeny := fs.Bool("fail-on-deny", false, "exit 1 when the decision denies (ext_authz: not allowed; MCP: anything but allow), 0 when it allows; 2 when no decision can be made")
	if err := config.ParseArgsAndEnv(fs, args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pdp eval: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *reqFile == "" {
		fmt.Fprintln(stderr, "pdp eval: --request FILE is required")
		return 2
	}
	cfg, err := flags.Resolve()
	if err != nil {
		fmt.Fprintf(stderr, "pdp eval: invalid configuration:\n%v\n", err)
		return 1
	}
	// Without --fail-on-deny a failure is 1; with it, 1 means "denied", so a
	// failure to decide is 2.
	failed := 1
	if *failOnDeny {
		failed = 2
	}
	out, err := evalOnce(ctx, cfg, *reqFile, *showInput)
	if err != nil {
		fmt.Fprintf(stderr, "pdp eval: %v\n", err)
		return failed
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "pdp eval: %v\n", err)
		return failed
	}
	if !*failOnDeny {
		return 0
	}
	if out.Error != "" {
		fmt.Fprintf(stderr, "pdp eval: no decision: %s\n", out.Error)
		return 2
	}
	if !out.Allowed {
		what := "denied"
		if out.Decision != "" {
			what = out.Decision
		}
		fmt.Fprintf(stderr, "pdp eval: %s\n", what)
		return 1
	}
	return 0
}

func evalOnce(ctx context.Context, cfg config.Config, reqFile string, showInput bool) (*EvalOutput, error) {
	var raw []byte
	var err error
	if reqFile == "-" {
		raw, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
	} else {
		raw, err = os.ReadFile(reqFile)
	}
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("request %s is not a JSON object: %w", reqFile, err)
	}
	_, isEnvoy := probe["attributes"]
	_, isMCP := probe["method"]
	if !isEnvoy && !isMCP {
		return nil, fmt.Errorf("request %s is neither an Envoy CheckRequest (no \"attributes\") nor an MCP CheckRequest (no \"method\")", reqFile)
	}

	logger := NewLogger(io.Discard, cfg.Log)
	eng, err := newEngine(cfg, logger, nil) // one decision: no cache
	if err != nil {
		return nil, err
	}
	for _, b := range cfg.Bundles {
		if b.IsURL() {
			return nil, errors.New("pdp eval reads local bundles only: download " + source.RedactURL(b.Source) + " first")
		}
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
		return nil, err
	}

	if !isEnvoy {
		return evalMCP(ctx, cfg, eng, raw, reqFile, showInput)
	}
	var req authv3.CheckRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		return nil, fmt.Errorf("request %s is not a CheckRequest in JSON form: %w", reqFile, err)
	}
	pipe := pipeline.New(eng, pipeline.Options{Logger: logger})
	o := extauthz.NewServer(pipe, extauthzOptions(cfg, pipe)).Decide(ctx, &req)
	resp, err := protojson.Marshal(o.Response)
	if err != nil {
		return nil, err
	}
	out := &EvalOutput{
		DecisionID: o.DecisionID,
		Path:       o.Path, // the MCP entrypoint for a POST to a route marked as MCP
		Revision:   o.Revision,
		Allowed:    o.Response.GetStatus().GetCode() == 0,
		Result:     o.Result,
		Response:   resp,
	}
	if o.Err != nil {
		out.Error = o.Err.Error()
	}
	if showInput {
		out.Input = o.InputJSON()
	}
	return out, nil
}

// evalMCP decides one native MCP CheckRequest.
func evalMCP(ctx context.Context, cfg config.Config, eng *engine.Engine, raw []byte, reqFile string, showInput bool) (*EvalOutput, error) {
	var req mcpv1.CheckRequest
	if err := protojson.Unmarshal(raw, &req); err != nil {
		return nil, fmt.Errorf("request %s is not a verdict.mcp.v1 CheckRequest in JSON form: %w", reqFile, err)
	}
	o, resp, err := newMCPServer(cfg, pipeline.New(eng, pipeline.Options{})).Decide(ctx, &req)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", reqFile, err)
	}
	js, err := protojson.Marshal(resp)
	if err != nil {
		return nil, err
	}
	out := &EvalOutput{
		DecisionID: o.DecisionID,
		Path:       mcpPath(cfg),
		Revision:   o.Revision,
		Allowed:    o.Verdict == mcp.Allow,
		Decision:   o.Verdict.String(),
		Result:     o.Result,
		Response:   js,
	}
	if o.Err != nil {
		out.Error = o.Err.Error()
	}
	if showInput {
		out.Input = o.Input
	}
	return out, nil
}
