package app

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"runtime"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
)

// testParams are the flags of `pdp test`: the subset of `opa test` a policy
// author needs, with the same meaning.
type testParams struct {
	verbose    bool
	runRegex   string
	coverage   bool
	threshold  float64
	format     string
	bundleMode bool
	timeout    time.Duration
	failEmpty  bool
}

// bindTestFlags registers the flags of `pdp test` on fs.
func bindTestFlags(fs *flag.FlagSet) *testParams {
	p := &testParams{}
	fs.BoolVar(&p.verbose, "v", false, "verbose reporting: every test, with its notes and failures' traces")
	fs.BoolVar(&p.verbose, "verbose", false, "same as -v")
	fs.StringVar(&p.runRegex, "run", "", "run only the tests whose name matches this `REGEX`")
	fs.BoolVar(&p.coverage, "coverage", false, "report coverage as JSON instead of the results")
	fs.Float64Var(&p.threshold, "threshold", 0, "coverage `percent` below which the run fails (implies --coverage)")
	fs.StringVar(&p.format, "format", "pretty", "output `format`: pretty or json")
	fs.BoolVar(&p.bundleMode, "bundle", false, "load each path as a bundle (directory or .tar.gz), not as loose files")
	fs.DurationVar(&p.timeout, "timeout", 0, "bound on each test (default 5s)")
	fs.BoolVar(&p.failEmpty, "fail-on-empty", false, "fail when no test runs")
	return p
}

// cmdTest runs the Rego unit tests under the given paths with OPA's tester,
// as `opa test` v1.22 does: same output, and exit 0 when all pass, 2 when a
// test fails or errs or coverage is under --threshold, 1 when the policies
// cannot be loaded or compiled.
func cmdTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pdp test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pdp test [flags] PATH...\n\nRun the Rego unit tests (rules named test_*) under PATH, Rego v1 syntax, as opa test does.")
		fs.PrintDefaults()
	}
	p := bindTestFlags(fs)
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "pdp test: specify at least one file")
		return 2
	}
	if p.format != "pretty" && p.format != "json" {
		fmt.Fprintf(stderr, "pdp test: --format must be pretty or json, not %q\n", p.format)
		return 2
	}
	if p.threshold < 0 || p.threshold > 100 {
		fmt.Fprintln(stderr, "Code coverage threshold must be between 0 and 100")
		return 1
	}
	return runRegoTests(ctx, paths, *p, stdout, stderr)
}

// parseInterspersed parses flags placed before, between and after the
// arguments, as opa test takes them, and returns the arguments; "--" ends
// the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		// Parse stops at the first argument, or just after "--".
		if used := len(args) - len(left); used > 0 && args[used-1] == "--" {
			return append(rest, left...), nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

func runRegoTests(ctx context.Context, paths []string, p testParams, stdout, stderr io.Writer) int {
	popts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
	var (
		modules map[string]*ast.Module
		bundles map[string]*bundle.Bundle
		store   storage.Store
		err     error
	)
	if p.bundleMode {
		bundles, store, err = tester.LoadBundlesWithParserOptions(paths, nil, popts)
		if err == nil {
			modules = map[string]*ast.Module{}
			for name, b := range bundles {
				maps.Copy(modules, b.ParsedModules(name))
			}
		}
	} else {
		modules, store, err = tester.LoadWithParserOptions(paths, nil, popts)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer store.Abort(ctx, txn)

	compiler := ast.NewCompiler().
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithEnablePrintStatements(true).
		WithCapabilities(ast.CapabilitiesForThisVersion()).
		WithUseTypeCheckAnnotations(true)
	if p.threshold > 0 {
		p.coverage = true
	}
	var cov *cover.Cover
	var tracer topdown.QueryTracer
	if p.coverage {
		cov = cover.New()
		tracer = cov
	}
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		CapturePrintOutput(true).
		EnableTracing(p.verbose).
		StackTraces(true).
		SetCoverageRuns([]cover.Kind{cover.KindIndexExcluded, cover.KindEarlyExit}).
		SetCoverageQueryTracer(tracer).
		SetModules(modules).
		SetBundles(bundles).
		SetTimeout(cmp.Or(p.timeout, 5*time.Second)).
		Filter(p.runRegex).
		SetParallel(runtime.NumCPU())

	var reporter tester.Reporter
	switch {
	case p.coverage:
		reporter = tester.JSONCoverageReporter{Cover: cov, Modules: modules, Output: stdout, Threshold: p.threshold, Verbose: p.verbose}
	case p.format == "json":
		reporter = tester.JSONReporter{Output: stdout}
	default:
		reporter = tester.PrettyReporter{Verbose: p.verbose, Output: stdout}
	}

	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ran, code := false, 0
	dup := make(chan *tester.Result)
	go func() {
		defer close(dup)
		for tr := range ch {
			ran = true
			if !tr.Pass() {
				code = 2
			}
			if p.verbose {
				tr.Trace = lineage.Filter(tr.Trace, func(e *topdown.Event) bool {
					return e.Op == topdown.NoteOp || e.Op == topdown.FailOp
				})
			} else {
				tr.Trace = nil
			}
			dup <- tr
		}
	}()
	if err := reporter.Report(dup); err != nil {
		fmt.Fprintln(stderr, err)
		if _, ok := errors.AsType[*cover.CoverageThresholdError](err); ok {
			return 2
		}
		return 1
	}
	if !ran && p.failEmpty {
		fmt.Fprintln(stderr, "no tests were run")
		return 1
	}
	return code
}
