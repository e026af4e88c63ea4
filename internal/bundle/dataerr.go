package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/verdictpdp/verdict/internal/jsonerr"
)

// dataKeeper passes a loader's files through, keeping the bytes of the data
// files (data.json, data.yaml) so that a parse error OPA reports can be
// given a line and column.
type dataKeeper struct {
	opabundle.DirectoryLoader
	limit int64
	dir   bool // a directory bundle: name files by their path on disk
	files []dataFile
}

type dataFile struct {
	name, url, path string
	raw             []byte
}

func (k *dataKeeper) NextFile() (*opabundle.Descriptor, error) {
	d, err := k.DirectoryLoader.NextFile()
	if err != nil || !opabundle.IsStructuredDoc(d.Path()) || path.Base(d.Path()) == ".manifest" {
		return d, err //nolint:wrapcheck // the loader's own errors, unchanged
	}
	var buf bytes.Buffer
	_, rerr := d.Read(&buf, k.limit+1)
	_ = d.Close()
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return nil, rerr
	}
	name := strings.TrimPrefix(d.Path(), "/")
	if k.dir {
		name = d.URL()
	}
	k.files = append(k.files, dataFile{name: name, url: d.URL(), path: d.Path(), raw: buf.Bytes()})
	return opabundle.NewDescriptor(d.URL(), d.Path(), bytes.NewReader(buf.Bytes())), nil
}

var (
	loadFailed = regexp.MustCompile(`^bundle load failed on (.+?): (.*)$`)
	yamlLine   = regexp.MustCompile(`^(?:error converting YAML to JSON: )?yaml: line (\d+): (.*)$`)
)

// explain rewrites a data file parse error as "FILE:LINE:COL: message:
// hint", or returns err unchanged.
func (k *dataKeeper) explain(err error) error {
	m := loadFailed.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	var f *dataFile
	for i := range k.files {
		if x := &k.files[i]; m[1] == x.url || m[1] == x.path || strings.HasSuffix(m[1], x.path) {
			f = x
		}
	}
	if f == nil {
		return err
	}
	if path.Base(f.path) == "data.json" {
		if e := jsonerr.Explain(f.name, f.raw, err); e != err { //nolint:errorlint // identity: was it explained
			return e
		}
		// The decoder reports some errors (an early end) without an
		// offset: scanning the text again finds one.
		if e := jsonerr.Check(f.name, f.raw); e != nil {
			return e
		}
		return err
	}
	if y := yamlLine.FindStringSubmatch(m[2]); y != nil {
		line, _ := strconv.Atoi(y[1])
		msg := y[2]
		if lines := bytes.Split(f.raw, []byte("\n")); line >= 1 && line <= len(lines) && bytes.ContainsRune(lines[line-1], '\t') ||
			line+1 <= len(lines) && bytes.ContainsRune(lines[line], '\t') {
			msg += ": a tab in the indentation? YAML indents with spaces"
		}
		return fmt.Errorf("%s:%d: %s", f.name, line, msg)
	}
	return err
}
