package app

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/verdictpdp/verdict/internal/audit/filelog"
)

const auditUsage = `Usage:
  pdp audit verify [--key PUBLIC.pem] [--json] LOG_OR_SEGMENT...
      check the audit log's hash chain and checkpoints; exits 1 at the first broken link
  pdp audit keygen --private PRIVATE.pem --public PUBLIC.pem
      write an Ed25519 key pair for --audit-signing-key
`

func cmdAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	switch args[0] {
	case "verify":
		return cmdAuditVerify(args[1:], stdout, stderr)
	case "keygen":
		return cmdAuditKeygen(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "pdp audit: unknown command %q\n\n%s", args[0], auditUsage)
		return 2
	}
}

func cmdAuditVerify(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("pdp audit verify", flag.ContinueOnError)
	fset.SetOutput(stderr)
	keyFile := fset.String("key", "", "Ed25519 public key PEM `file`: checkpoints must be signed with its private key")
	asJSON := fset.Bool("json", false, "print the report as JSON")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if fset.NArg() == 0 {
		fmt.Fprintf(stderr, "pdp audit verify: name the log (the --audit-file path) or its segment files\n\n%s", auditUsage)
		return 2
	}
	var opts filelog.VerifyOptions
	if *keyFile != "" {
		k, err := filelog.LoadPublicKey(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "pdp audit verify: --key: %v\n", err)
			return 2
		}
		opts.PublicKey = k
	}
	files, err := auditFiles(fset.Args())
	if err != nil {
		fmt.Fprintf(stderr, "pdp audit verify: %v\n", err)
		return 1
	}
	rep, err := filelog.Verify(files, opts)
	if err != nil {
		fmt.Fprintf(stderr, "pdp audit verify: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printReport(stdout, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// auditFiles expands each argument: a segment file as is, the log's path
// (as given to --audit-file) to its segments.
func auditFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		if st, err := os.Stat(a); err == nil && st.Mode().IsRegular() {
			files = append(files, a)
			continue
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		segs, err := filelog.Segments(a)
		if err != nil {
			return nil, err
		}
		if len(segs) == 0 {
			return nil, fmt.Errorf("%s: no such file, and no log segments next to it", a)
		}
		files = append(files, segs...)
	}
	return files, nil
}

func printReport(w io.Writer, rep filelog.Report) {
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "BROKEN %s:%d: %s: %s\n", p.File, p.Line, p.Kind, p.Message)
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	verdict := "OK"
	if !rep.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "%s: %d segments, %d records verified\n", verdict, rep.Segments, rep.Records)
}

func cmdAuditKeygen(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("pdp audit keygen", flag.ContinueOnError)
	fset.SetOutput(stderr)
	priv := fset.String("private", "", "`file` to write the private key to (PKCS#8 PEM, mode 0600)")
	pub := fset.String("public", "", "`file` to write the public key to (PKIX PEM), for pdp audit verify --key")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if *priv == "" || *pub == "" || fset.NArg() > 0 {
		fmt.Fprintf(stderr, "pdp audit keygen: --private and --public are required\n\n%s", auditUsage)
		return 2
	}
	if err := filelog.GenerateKeyFiles(*priv, *pub); err != nil {
		fmt.Fprintf(stderr, "pdp audit keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (keep it secret: --audit-signing-key) and %s (for pdp audit verify --key)\n", *priv, *pub)
	return 0
}
