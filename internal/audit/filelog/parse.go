package filelog

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// lineKind tells the lines of a segment apart.
type lineKind uint8

const (
	kindBad lineKind = iota // does not parse as a line of this format
	kindEvent
	kindStart
	kindCheckpoint
	kindRetention
)

// lineInfo is what the sink's recovery and Verify keep of one line.
type lineInfo struct {
	hash     digest
	prev     digest
	seg, seq int64
	kind     lineKind
	// complete is false for a last line without its newline.
	complete bool
	// size is the line's length without the newline.
	size int
	// bad says why a kindBad line does not parse.
	bad string
	// exp is an event's chain.exp; ts its "timestamp" member (OPA's
	// decision time), when it has one.
	exp, ts time.Time
	start   *startLine
	cp      *checkpointLine
	ret     *retentionLine
}

// parseLine parses one line (without its newline). It never fails: a line
// that is not one of ours is kindBad, with the reason in bad.
func parseLine(b []byte) lineInfo {
	li := lineInfo{hash: sha256.Sum256(b), size: len(b), complete: true}
	if len(b) == 0 || b[0] != '{' {
		li.bad = "not a JSON object"
		return li
	}
	var head struct {
		Type      json.RawMessage `json:"type"`
		Chain     json.RawMessage `json:"chain"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		li.bad = "not a valid JSON object"
		return li
	}
	var chain struct {
		Seg  *int64  `json:"seg"`
		Seq  *int64  `json:"seq"`
		Prev *digest `json:"prev"`
		Exp  *string `json:"exp"`
	}
	if len(head.Chain) == 0 {
		li.bad = "no chain member"
		return li
	}
	if err := json.Unmarshal(head.Chain, &chain); err != nil || chain.Seg == nil || chain.Seq == nil || chain.Prev == nil ||
		*chain.Seg < 1 || *chain.Seq < 0 {
		li.bad = "chain member is not {seg, seq, prev}"
		return li
	}
	li.seg, li.seq, li.prev = *chain.Seg, *chain.Seq, *chain.Prev

	if len(head.Type) == 0 {
		if chain.Exp == nil {
			li.bad = "event without chain.exp"
			return li
		}
		exp, err := time.Parse(time.RFC3339, *chain.Exp)
		if err != nil {
			li.bad = "event with a chain.exp that is not an RFC 3339 time"
			return li
		}
		li.kind, li.exp = kindEvent, exp
		var ts time.Time
		if len(head.Timestamp) > 0 && json.Unmarshal(head.Timestamp, &ts) == nil {
			li.ts = ts
		}
		return li
	}
	var typ string
	if err := json.Unmarshal(head.Type, &typ); err != nil {
		li.bad = "type is not a string"
		return li
	}
	var err error
	switch typ {
	case typeStart:
		li.start = new(startLine)
		err = json.Unmarshal(b, li.start)
		li.kind = kindStart
	case typeCheckpoint:
		li.cp = new(checkpointLine)
		err = json.Unmarshal(b, li.cp)
		li.kind = kindCheckpoint
	case typeRetention:
		li.ret = new(retentionLine)
		err = json.Unmarshal(b, li.ret)
		li.kind = kindRetention
	default:
		li.bad = fmt.Sprintf("unknown line type %q", typ)
		return li
	}
	if err != nil {
		li.kind, li.start, li.cp, li.ret = kindBad, nil, nil, nil
		li.bad = fmt.Sprintf("%s line does not parse", typ)
	}
	return li
}

// scanLines calls fn with every line of the file at path: each complete line
// without its newline, and then a last line without a newline, if any, with
// complete false. line is valid only during the call.
func scanLines(path string, fn func(line []byte, complete bool) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	r := bufio.NewReaderSize(f, 64<<10)
	var long []byte // a line longer than r's buffer, gathered
	gathering := false
	for {
		chunk, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !gathering {
				long, gathering = long[:0], true
			}
			long = append(long, chunk...)
			continue
		}
		line := chunk
		if gathering {
			long = append(long, chunk...)
			line, gathering = long, false
		}
		switch {
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				return fn(line, false)
			}
			return nil
		case err != nil:
			return err
		}
		if err := fn(line[:len(line)-1], true); err != nil {
			return err
		}
	}
}
