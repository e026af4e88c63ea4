package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/verdictpdp/verdict/internal/catalog"
	"github.com/verdictpdp/verdict/internal/scan/poison"
)

const catalogUsage = `Usage:
  pdp catalog import --server NAME (--url URL | --stdio -- CMD ARGS...) [--data FILE [--write] [--repin]] [--header K:V]...
  pdp catalog scan   --server NAME (--url URL | --stdio -- CMD ARGS...) [--data FILE] [--format text|json] [--fail-on SEVERITY]
  pdp catalog scan   --data FILE [--server NAME] [--format text|json] [--fail-on SEVERITY]

import lists a server's tools, prompts and resources and prints catalog entries
for data.mcp.servers.NAME, or, with --data, the differences from that file
(exit 0 no change, 1 changes, 2 error). scan looks for tool poisoning (exit 0
clean, 1 findings at or above --fail-on, 2 error).
`

// catalogParams are the flags shared by the catalog subcommands.
type catalogParams struct {
	server, url, data string
	stdio             bool
	headers           headerList
	timeout           time.Duration
	// import
	write, repin bool
	// scan
	format, failOn string
}

type headerList map[string]string

func (h headerList) String() string { return strconv.Itoa(len(h)) + " header(s)" }

func (h headerList) Set(v string) error {
	k, val, ok := strings.Cut(v, ":")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return errors.New("want NAME:VALUE")
	}
	h[k] = strings.TrimSpace(val)
	return nil
}

func cmdCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, catalogUsage)
		return 2
	}
	switch args[0] {
	case "import":
		return cmdCatalogImport(ctx, args[1:], stdout, stderr)
	case "scan":
		return cmdCatalogScan(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, catalogUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "pdp catalog: unknown subcommand %q\n\n%s", args[0], catalogUsage)
		return 2
	}
}

// parseCatalogFlags parses args for `pdp catalog SUB` and returns the
// params and, for --stdio, the command after "--". ok is false after a
// usage error (code is the exit code).
func parseCatalogFlags(sub string, args []string, stderr io.Writer) (p *catalogParams, src catalog.Source, code int, ok bool) {
	fs := flag.NewFlagSet("pdp catalog "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, catalogUsage)
		fs.PrintDefaults()
	}
	p = &catalogParams{headers: headerList{}}
	fs.StringVar(&p.server, "server", "", "catalog `NAME` of the server (data.mcp.servers.NAME)")
	fs.StringVar(&p.url, "url", "", "streamable HTTP endpoint of the server, https://…/mcp")
	fs.BoolVar(&p.stdio, "stdio", false, "run the server as the command after --, exactly as given (no shell), over stdio")
	fs.Var(p.headers, "header", "HTTP header `K:V` to send with --url (repeatable; values are never printed)")
	fs.StringVar(&p.data, "data", "", "bundle data.json `FILE` holding {\"mcp\": …}")
	fs.DurationVar(&p.timeout, "timeout", 60*time.Second, "bound on connecting and listing")
	if sub == "import" {
		fs.BoolVar(&p.write, "write", false, "write --data FILE (atomically) instead of only printing the differences")
		fs.BoolVar(&p.repin, "repin", false, "adopt changed definitions and their new pins")
	} else {
		fs.StringVar(&p.format, "format", "text", "output `format`: text or json")
		fs.StringVar(&p.failOn, "fail-on", "high", "lowest `severity` that fails the scan: low, medium, high or critical")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, src, 0, false
		}
		return nil, src, 2, false
	}
	usage := func(format string, a ...any) (*catalogParams, catalog.Source, int, bool) {
		fmt.Fprintf(stderr, "pdp catalog %s: %s\n", sub, fmt.Sprintf(format, a...))
		return nil, catalog.Source{}, 2, false
	}
	rest := fs.Args()
	switch {
	case p.stdio && p.url != "":
		return usage("give --url or --stdio, not both")
	case p.stdio && len(rest) == 0:
		return usage("--stdio needs the server command after --")
	case !p.stdio && len(rest) > 0:
		return usage("unexpected arguments %s (a stdio server needs --stdio -- CMD ARGS...)", safeText(strings.Join(rest, " ")))
	case len(p.headers) > 0 && p.url == "":
		return usage("--header applies to --url only")
	}
	live := p.stdio || p.url != ""
	if sub == "import" || live {
		if p.server == "" {
			return usage("--server is required")
		}
	}
	if !live && (sub == "import" || p.data == "") {
		return usage("give --url or --stdio -- CMD ARGS...")
	}
	if p.write && p.data == "" {
		return usage("--write needs --data FILE")
	}
	if sub == "scan" {
		if p.format != "text" && p.format != "json" {
			return usage("--format is text or json")
		}
		if _, ok := severityByName(p.failOn); !ok {
			return usage("--fail-on is low, medium, high or critical")
		}
	}
	if p.url != "" {
		if !strings.HasPrefix(p.url, "https://") && !strings.HasPrefix(p.url, "http://") {
			return usage("--url must be an http(s) URL")
		}
		src.URL = p.url
		src.Headers = p.headers
	}
	if p.stdio {
		src.Command = rest
	}
	return p, src, 0, true
}

func severityByName(name string) (poison.Severity, bool) {
	for s := poison.Low; s <= poison.Critical; s++ {
		if s.String() == name {
			return s, true
		}
	}
	return 0, false
}

// cmdCatalogImport: exit 0 no change, 1 changes (or, without --data,
// nothing to compare: 0), 2 error.
func cmdCatalogImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	p, src, code, ok := parseCatalogFlags("import", args, stderr)
	if !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pdp catalog import: %s\n", safeText(err.Error()))
		return 2
	}
	var doc *catalog.Document
	if p.data != "" {
		var err error
		if doc, err = catalog.ReadData(p.data); err != nil {
			return fail(err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	listing, err := catalog.Fetch(ctx, src)
	if err != nil {
		return fail(err)
	}
	imported, err := catalog.Build(listing)
	if err != nil {
		return fail(err)
	}
	if doc == nil {
		out := map[string]any{"mcp": map[string]any{"servers": map[string]any{p.server: catalog.ServerObject(imported)}}}
		b, err := catalog.Encode(out)
		if err != nil {
			return fail(err)
		}
		_, _ = stdout.Write(escapeNonGraphic(b))
		return 0
	}
	merged, changes := catalog.Merge(catalog.ServerOf(doc.Data, p.server), imported, p.repin)
	printChanges(stdout, p.server, changes)
	if len(changes) == 0 {
		fmt.Fprintf(stdout, "server %s: no changes (%d tool(s), %d prompt(s), %d resource(s) listed)\n", safeText(p.server), len(imported.Tools), len(imported.Prompts), len(imported.Resources))
		return 0
	}
	if p.write {
		if err := catalog.SetServer(doc.Data, p.server, merged); err != nil {
			return fail(err)
		}
		if err := doc.Write(p.data); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%d change(s) in server %s; wrote %s\n", len(changes), safeText(p.server), safeText(p.data))
	} else {
		fmt.Fprintf(stdout, "%d change(s) in server %s; dry run, %s not written (--write writes it)\n", len(changes), safeText(p.server), safeText(p.data))
	}
	return 1
}

func printChanges(w io.Writer, server string, changes []catalog.Change) {
	for _, c := range changes {
		fmt.Fprintf(w, "%s %s/%s: %s", c.Kind, safeText(server), safeText(c.Name), c.Op)
		switch c.Op {
		case catalog.Removed:
			fmt.Fprint(w, " (no longer listed; entry kept)")
		case catalog.Added:
		case catalog.Changed:
			fmt.Fprintf(w, " (%s)", strings.Join(c.Fields, ", "))
			switch {
			case c.PinKept:
				fmt.Fprint(w, "; pin kept; review and re-run with --repin")
			case c.Repinned:
				fmt.Fprint(w, "; re-pinned")
			}
		}
		fmt.Fprintln(w)
		if c.Op == catalog.Changed && slices.Contains(c.Fields, "description") && c.Was != "" {
			fmt.Fprintf(w, "  description was: %s\n  description now: %s\n", quoteShort(c.Was), quoteShort(c.Now))
		}
	}
}

// quoteShort quotes s for a terminal, cut to 200 bytes.
func quoteShort(s string) string {
	const limit = 200
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.QuoteToGraphic(s)
}

func cmdCatalogScan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	p, src, code, ok := parseCatalogFlags("scan", args, stderr)
	if !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pdp catalog scan: %s\n", safeText(err.Error()))
		return 2
	}
	var data map[string]any
	if p.data != "" {
		doc, err := catalog.ReadData(p.data)
		if err != nil {
			return fail(err)
		}
		data = doc.Data
	}
	var findings []catalog.Finding
	if src.URL != "" || len(src.Command) > 0 {
		ctx, cancel := context.WithTimeout(ctx, p.timeout)
		defer cancel()
		listing, err := catalog.Fetch(ctx, src)
		if err != nil {
			return fail(err)
		}
		findings = catalog.ScanListing(p.server, listing, catalog.KnownTools(data))
	} else {
		findings = catalog.ScanData(data, p.server)
	}
	failOn, _ := severityByName(p.failOn)
	failing := 0
	for _, f := range findings {
		if f.Severity >= failOn {
			failing++
		}
	}
	if p.format == "json" {
		if findings == nil {
			findings = []catalog.Finding{}
		}
		b, err := catalog.Encode(map[string]any{"findings": findings, "fail_on": p.failOn, "failing": failing})
		if err != nil {
			return fail(err)
		}
		_, _ = stdout.Write(escapeNonGraphic(b))
	} else {
		for _, f := range findings {
			fmt.Fprintf(stdout, "%-8s %-30s %s %s/%s %s %s\n", f.Severity, f.Rule, f.Kind, safeText(f.Server), safeText(f.Name), safeText(f.Where), `"`+string(escapeNonGraphic([]byte(f.Evidence)))+`"`)
		}
		fmt.Fprintf(stdout, "%d finding(s), %d at or above %s\n", len(findings), failing, p.failOn)
	}
	if failing > 0 {
		return 1
	}
	return 0
}

// safeText returns s for a terminal: unchanged when every rune is
// printable, else quoted with control, bidi and other invisible characters
// escaped.
func safeText(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsGraphic(r) || r == '"' || r == '\\' {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}

// escapeNonGraphic rewrites, in JSON text, every rune that is not graphic
// (other than the newlines and spaces of the indentation) as a \u escape.
// Such runes can only occur inside strings, so the JSON keeps its value;
// encoding/json already escapes C0 controls but not C1 controls, bidi or
// zero-width characters.
func escapeNonGraphic(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == '\n' || r == ' ' || (r != utf8.RuneError && unicode.IsGraphic(r)) || (r == utf8.RuneError && n != 1) {
			out = append(out, b[:n]...)
		} else if r > 0xFFFF {
			r1, r2 := utf16Surrogates(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		b = b[n:]
	}
	return out
}

func utf16Surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xD800 + (r>>10)&0x3FF, 0xDC00 + r&0x3FF
}
