package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml3 "go.yaml.in/yaml/v3"

	"github.com/verdictpdp/verdict/internal/jsonerr"
)

// pos is where a key's value starts in the config file.
type pos struct{ line, col int }

// positions maps a key path ("grpc.addr", "bundles[0].source") to where
// its key is written in the config file.
type positions map[string]pos

// fileError is a config file error at a position: it reads
// "verdict.yaml:12:3: grpc.adress: unknown key; did you mean addr?".
type fileError struct {
	file      string
	line, col int // col 0: unknown
	key       string
	msg       string
	// yamlSyntax: the YAML parser refused the text, which the decoder
	// (another YAML parser) may still accept.
	yamlSyntax bool
}

func (e *fileError) Error() string {
	var b strings.Builder
	b.WriteString(e.file)
	if e.line > 0 {
		b.WriteString(":" + strconv.Itoa(e.line))
		if e.col > 0 {
			b.WriteString(":" + strconv.Itoa(e.col))
		}
	}
	b.WriteString(": ")
	if e.key != "" {
		b.WriteString(e.key + ": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// checkFile parses raw (YAML or JSON) and checks every key and value
// against the shape of Config. It returns where each key is written, and
// errors that name the file, line, column and key path. Values it cannot
// judge are left to the decoder.
func checkFile(path string, raw []byte) (positions, error) {
	name := path
	if strings.EqualFold(filepath.Ext(path), ".json") {
		if err := jsonerr.Check(name, raw); err != nil {
			return nil, err
		}
	}
	var doc yaml3.Node
	if err := yaml3.Unmarshal(raw, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = strings.TrimPrefix(err.Error(), m[0])
		}
		return nil, &fileError{file: name, line: line, msg: msg, yamlSyntax: true}
	}
	c := checker{file: name, pos: positions{}}
	if len(doc.Content) > 0 {
		c.check(doc.Content[0], reflect.TypeFor[Config](), "")
	}
	return c.pos, errors.Join(c.errs...)
}

type checker struct {
	file string
	pos  positions
	errs []error
}

func (c *checker) fail(n *yaml3.Node, key, msg string) {
	c.errs = append(c.errs, &fileError{file: c.file, line: n.Line, col: n.Column, key: key, msg: msg})
}

var durationType = reflect.TypeFor[Duration]()

// check walks node n, which is to decode into a value of type t at key.
func (c *checker) check(n *yaml3.Node, t reflect.Type, key string) {
	if n.Kind == yaml3.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml3.ScalarNode && n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		d, err := time.ParseDuration(n.Value)
		if n.Kind != yaml3.ScalarNode || n.Tag != "!!str" || err != nil || d < 0 {
			c.fail(n, key, `want a duration like "1m", got `+shown(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml3.MappingNode {
			c.fail(n, key, "want a mapping of settings, got "+shown(n))
			return
		}
		fields := jsonFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue
			}
			sub := join(key, k.Value)
			f, ok := fields[k.Value]
			if !ok { // the decoder matches names as encoding/json does
				for name, t := range fields {
					if strings.EqualFold(name, k.Value) {
						f, ok = t, true
					}
				}
			}
			if !ok {
				names := make([]string, 0, len(fields))
				for name := range fields {
					names = append(names, name)
				}
				sort.Strings(names)
				msg := "unknown key"
				if s := closest(k.Value, names); s != "" {
					msg += "; did you mean " + s + "?"
				}
				c.fail(k, sub, msg)
				continue
			}
			c.pos[sub] = pos{k.Line, k.Column}
			c.check(v, f, sub)
		}
	case reflect.Map:
		if n.Kind != yaml3.MappingNode {
			c.fail(n, key, "want a mapping, got "+shown(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := join(key, k.Value)
			c.pos[sub] = pos{k.Line, k.Column}
			c.check(v, t.Elem(), sub)
		}
	case reflect.Slice:
		if n.Kind != yaml3.SequenceNode {
			c.fail(n, key, "want a list, got "+shown(n))
			return
		}
		for i, v := range n.Content {
			sub := key + "[" + strconv.Itoa(i) + "]"
			c.pos[sub] = pos{v.Line, v.Column}
			c.check(v, t.Elem(), sub)
		}
	case reflect.Bool:
		if n.Kind != yaml3.ScalarNode || !isYAMLBool(n) {
			c.fail(n, key, "want true or false, got "+shown(n))
		}
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml3.ScalarNode || n.Tag != "!!int" {
			c.fail(n, key, "want a whole number, got "+shown(n))
		}
	case reflect.Float64:
		if n.Kind != yaml3.ScalarNode || n.Tag != "!!int" && n.Tag != "!!float" {
			c.fail(n, key, "want a number, got "+shown(n))
		}
	case reflect.String:
		if n.Kind != yaml3.ScalarNode {
			c.fail(n, key, "want a string, got "+shown(n))
		}
	default:
		// No other kinds in Config: the decoder judges them.
	}
}

// isYAMLBool accepts what the decoder (YAML 1.1) reads as a boolean.
func isYAMLBool(n *yaml3.Node) bool {
	if n.Tag == "!!bool" {
		return true
	}
	switch strings.ToLower(n.Value) {
	case "yes", "no", "on", "off", "y", "n":
		return n.Style == 0
	}
	return false
}

func shown(n *yaml3.Node) string {
	switch n.Kind {
	case yaml3.MappingNode:
		return "a mapping"
	case yaml3.SequenceNode:
		return "a list"
	default:
	}
	if n.Tag == "!!str" {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

func join(key, sub string) string {
	if key == "" {
		return sub
	}
	return key + "." + sub
}

// jsonFields maps the JSON names of t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// keyPrefix reads the key path a Validate error starts with.
var keyPrefix = regexp.MustCompile(`^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*)[: ]`)

// locate prefixes each validation error that names a key written in the
// config file with the file, line and column of that key, when the value
// still is the file's (no flag or environment variable replaced it).
func locate(err error, file string, pos positions, fromFile, final map[string]any) error {
	if err == nil || len(pos) == 0 {
		return err
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = e
		m := keyPrefix.FindStringSubmatch(e.Error())
		if m == nil {
			continue
		}
		p, ok := pos[m[1]]
		if !ok || !reflect.DeepEqual(lookupPath(fromFile, m[1]), lookupPath(final, m[1])) {
			continue
		}
		out[i] = fmt.Errorf("%s:%d:%d: %w", file, p.line, p.col, e)
	}
	return errors.Join(out...)
}

// asTree is c as JSON values, to compare settings by key path.
func asTree(c Config) map[string]any {
	raw, err := json.Marshal(c)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

var pathPart = regexp.MustCompile(`([a-z_]+)(?:\[(\d+)\])?`)

func lookupPath(tree map[string]any, path string) any {
	var cur any = tree
	for _, seg := range strings.Split(path, ".") {
		m := pathPart.FindStringSubmatch(seg)
		obj, ok := cur.(map[string]any)
		if m == nil || !ok {
			return nil
		}
		cur = obj[m[1]]
		if m[2] != "" {
			i, _ := strconv.Atoi(m[2])
			arr, ok := cur.([]any)
			if !ok || i >= len(arr) {
				return nil
			}
			cur = arr[i]
		}
	}
	return cur
}
