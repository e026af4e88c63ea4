// Package jsonerr explains encoding/json syntax errors to the person who
// wrote the JSON: the line and column of the byte at fault, and a hint for
// the usual mistakes (a trailing comma, single quotes, a comment).
//
// It knows JSON text only; it must not import the packages that use it.
package jsonerr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Error is a JSON syntax error at a position in a named file.
type Error struct {
	File string
	// Line and Col are 1-based; Col counts bytes.
	Line, Col int
	Msg       string
	// Hint guesses the mistake, or is empty.
	Hint string
	Err  *json.SyntaxError
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

// Unwrap returns the *json.SyntaxError.
func (e *Error) Unwrap() error { return e.Err }

// Explain returns err as an *Error naming file when err is (or wraps) a
// *json.SyntaxError about raw, else err unchanged.
func Explain(file string, raw []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	at := int(min(max(se.Offset-1, 0), int64(len(raw))))
	if se.Error() == "unexpected end of JSON input" {
		at = len(bytes.TrimRight(raw, " \t\r\n"))
	}
	line, col := LineCol(raw, at)
	return &Error{File: file, Line: line, Col: col, Msg: se.Error(), Hint: hint(raw, at, se), Err: se}
}

// Check validates raw as one JSON value and explains the first error.
func Check(file string, raw []byte) error {
	var v json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil {
		return Explain(file, raw, err)
	}
	return nil
}

// LineCol returns the 1-based line and byte column of raw[at].
func LineCol(raw []byte, at int) (line, col int) {
	at = min(max(at, 0), len(raw))
	line = 1 + bytes.Count(raw[:at], []byte{'\n'})
	return line, at - (bytes.LastIndexByte(raw[:at], '\n') + 1) + 1
}

func hint(raw []byte, at int, se *json.SyntaxError) string {
	if at >= len(bytes.TrimRight(raw, " \t\r\n")) {
		return "the text ends early: an unclosed {, [ or string?"
	}
	prev := bytes.TrimRight(raw[:at], " \t\r\n")
	c := raw[at]
	switch {
	case (c == '}' || c == ']') && bytes.HasSuffix(prev, []byte(",")):
		return "a trailing comma before it?"
	case c == '\'':
		return "JSON strings take double quotes"
	case c == '/' || c == '#':
		return "JSON has no comments"
	case bytes.Contains([]byte(se.Error()), []byte("looking for beginning of object key string")):
		return "object keys take double quotes"
	case bytes.Contains([]byte(se.Error()), []byte("after object key:value pair")),
		bytes.Contains([]byte(se.Error()), []byte("after array element")):
		return "a missing comma before it?"
	}
	return ""
}
