package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// position is a line and column (both from 1; the column counts bytes) in
// a file.
type position struct{ Line, Col int }

// offsetPosition turns a byte offset of src into a position.
func offsetPosition(src []byte, off int) position {
	off = min(max(off, 0), len(src))
	line := 1 + bytes.Count(src[:off], []byte("\n"))
	col := off + 1
	if i := bytes.LastIndexByte(src[:off], '\n'); i >= 0 {
		col = off - i
	}
	return position{line, col}
}

// jsonSyntaxPosition is where the JSON of src first goes wrong, with the
// error; the error is nil when src is valid JSON.
func jsonSyntaxPosition(src []byte) (position, error) {
	var v any
	err := json.Unmarshal(src, &v)
	if err == nil {
		return position{}, nil
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		// Offset is just past the byte that broke the syntax.
		return offsetPosition(src, int(se.Offset)-1), err
	}
	return offsetPosition(src, len(src)), err
}

// jsonPointerPositions maps the JSON pointer of every value of src (a valid
// JSON document) to where it starts: the member's name for the members of
// objects, the value for array elements and the root.
func jsonPointerPositions(src []byte) map[string]position {
	s := &pointerScanner{dec: json.NewDecoder(bytes.NewReader(src)), src: src, out: map[string]position{}}
	s.dec.UseNumber()
	_ = s.value("") // src is valid JSON: a failure only leaves positions out
	return s.out
}

type pointerScanner struct {
	dec *json.Decoder
	src []byte
	out map[string]position
}

// next is the offset of the next token: past white space and separators.
func (s *pointerScanner) next() int {
	i := int(s.dec.InputOffset())
	for i < len(s.src) && strings.IndexByte(" \t\r\n,:", s.src[i]) >= 0 {
		i++
	}
	return i
}

func (s *pointerScanner) value(ptr string) error {
	if _, ok := s.out[ptr]; !ok {
		s.out[ptr] = offsetPosition(s.src, s.next())
	}
	tok, err := s.dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		for s.dec.More() {
			at := s.next()
			k, err := s.dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			child := ptr + "/" + escapePointer(key)
			s.out[child] = offsetPosition(s.src, at)
			if err := s.value(child); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; s.dec.More(); i++ {
			if err := s.value(ptr + "/" + strconv.Itoa(i)); err != nil {
				return err
			}
		}
	}
	_, err = s.dec.Token() // the closing delimiter
	return err
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escapePointer(s string) string { return pointerEscaper.Replace(s) }
