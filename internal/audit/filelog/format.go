package filelog

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Line types and the format version written in segment_start.
const (
	typeStart      = "segment_start"
	typeCheckpoint = "checkpoint"
	typeRetention  = "retention"

	formatVersion = 1
)

// sigDomain opens every signed checkpoint message; a new message layout gets
// a new version here.
const sigDomain = "verdict/filelog/checkpoint/v1\x00"

// never is the exp of a record without an Expires: it is kept forever.
var never = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// digest is a SHA-256 hash, written in JSON as 64 lowercase hex digits.
type digest [sha256.Size]byte

func (d digest) String() string { return hex.EncodeToString(d[:]) }

func (d digest) MarshalText() ([]byte, error) {
	return hex.AppendEncode(nil, d[:]), nil
}

func (d *digest) UnmarshalText(b []byte) error {
	if len(b) != 2*sha256.Size {
		return errors.New("hash is not 64 hex digits")
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return errors.New("hash is not 64 lowercase hex digits")
		}
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// chainRef is the chain member of a bookkeeping line.
type chainRef struct {
	Seg  int64  `json:"seg"`
	Seq  int64  `json:"seq"`
	Prev digest `json:"prev"`
}

// gap is a run of consecutive segments that retention deleted.
type gap struct {
	First     int64  `json:"first"`
	Last      int64  `json:"last"`
	FirstPrev digest `json:"first_prev"`
	LastHash  digest `json:"last_hash"`
}

// deletedSegment is one entry of a retention line.
type deletedSegment struct {
	Segment   int64     `json:"segment"`
	FirstPrev digest    `json:"first_prev"`
	LastHash  digest    `json:"last_hash"`
	Records   int64     `json:"records"`
	Expires   time.Time `json:"expires,omitzero"`
}

type startLine struct {
	Type        string    `json:"type"`
	Version     int       `json:"version"`
	Segment     int64     `json:"segment"`
	Created     time.Time `json:"created"`
	PrevSegment int64     `json:"prev_segment,omitempty"`
	Gaps        []gap     `json:"gaps,omitempty"`
	Chain       chainRef  `json:"chain"`
}

type checkpointLine struct {
	Type           string    `json:"type"`
	Time           time.Time `json:"time"`
	Records        int64     `json:"records"`
	First          time.Time `json:"first,omitzero"`
	Last           time.Time `json:"last,omitzero"`
	Expires        time.Time `json:"expires,omitzero"`
	Final          bool      `json:"final"`
	Recovered      bool      `json:"recovered,omitempty"`
	TruncatedBytes *int64    `json:"truncated_bytes,omitempty"`
	KeyID          string    `json:"key_id,omitempty"`
	Sig            string    `json:"sig,omitempty"`
	Chain          chainRef  `json:"chain"`
}

type retentionLine struct {
	Type    string           `json:"type"`
	Time    time.Time        `json:"time"`
	Deleted []deletedSegment `json:"deleted"`
	Gaps    []gap            `json:"gaps"`
	Chain   chainRef         `json:"chain"`
}

// marshalLine encodes a bookkeeping line (without the newline) and its hash.
func marshalLine(v any) ([]byte, digest) {
	b, err := json.Marshal(v)
	if err != nil {
		// Our line types hold only strings, numbers, times and hashes.
		panic(fmt.Sprintf("filelog: encode %T: %v", v, err))
	}
	return b, sha256.Sum256(b)
}

// signedMessage is what a checkpoint's sig signs; see the package comment.
func signedMessage(c *checkpointLine) []byte {
	b := make([]byte, 0, len(sigDomain)+8*14+2)
	b = append(b, sigDomain...)
	b = appendInt64(b, c.Chain.Seg)
	b = appendInt64(b, c.Chain.Seq)
	b = append(b, c.Chain.Prev[:]...)
	b = appendInt64(b, c.Records)
	for _, t := range [...]time.Time{c.Time, c.First, c.Last, c.Expires} {
		b = appendInt64(b, t.Unix())
		b = appendInt64(b, int64(t.Nanosecond()))
	}
	b = append(b, boolByte(c.Final), boolByte(c.Recovered))
	var truncated int64
	if c.TruncatedBytes != nil {
		truncated = *c.TruncatedBytes
	}
	return appendInt64(b, truncated)
}

func appendInt64(b []byte, v int64) []byte {
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], uint64(v)) //nolint:gosec // two's complement bytes of v, on purpose
	return append(b, w[:]...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// keyID names a public key in checkpoints: the hex of the first 8 bytes of
// its SHA-256.
func keyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// expiry is the exp written for a record: Expires rounded up to the second,
// or never.
func expiry(t time.Time) time.Time {
	if t.IsZero() {
		return never
	}
	u := t.UTC()
	r := u.Truncate(time.Second)
	if r.Before(u) {
		r = r.Add(time.Second)
	}
	if r.After(never) {
		return never
	}
	return r
}

// Errors for records the sink refuses.
var (
	errNotObject = errors.New("record is not a single JSON object")
	errReserved  = errors.New(`record has a top-level "type" or "chain" member`)
)

// eventBody checks a record's JSON and returns the bytes to splice the chain
// member into: the object without surrounding white space, compacted into
// scratch if its white space holds a newline.
func eventBody(js []byte, scratch *bytes.Buffer) ([]byte, error) {
	js = trimSpace(js)
	if len(js) < 2 || js[0] != '{' || !json.Valid(js) {
		return nil, errNotObject
	}
	if reservedMember(js) {
		return nil, errReserved
	}
	if bytes.IndexByte(js, '\n') >= 0 {
		scratch.Reset()
		if err := json.Compact(scratch, js); err != nil {
			return nil, errNotObject
		}
		js = scratch.Bytes()
	}
	return js, nil
}

// trustedBody is eventBody for records that audit.Recorder wrote: compact
// JSON objects without a type or chain member. It checks only what splicing
// the chain member needs.
func trustedBody(js []byte) ([]byte, error) {
	if len(js) < 2 || js[0] != '{' || js[len(js)-1] != '}' || bytes.IndexByte(js, '\n') >= 0 {
		return nil, errNotObject
	}
	return js, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// reservedMember reports whether the JSON object js, already known to be
// valid, has a top-level member whose name encoding/json would match to
// "type" or "chain".
func reservedMember(js []byte) bool {
	depth := 0
	for i := 0; i < len(js); i++ {
		switch js[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			end, escaped := i+1, false
			for ; end < len(js) && js[end] != '"'; end++ {
				if js[end] == '\\' {
					escaped = true
					end++
				}
			}
			if depth == 1 && isKey(js, end+1) && reservedName(js[i:end+1], escaped) {
				return true
			}
			i = end
		}
	}
	return false
}

// isKey reports whether the string that ended before js[i] is a member name:
// the next token is a colon.
func isKey(js []byte, i int) bool {
	for ; i < len(js) && isSpace(js[i]); i++ {
	}
	return i < len(js) && js[i] == ':'
}

func reservedName(quoted []byte, escaped bool) bool {
	name := quoted[1 : len(quoted)-1]
	if escaped {
		var s string
		if json.Unmarshal(quoted, &s) != nil {
			return false
		}
		name = []byte(s)
	}
	return bytes.EqualFold(name, []byte("type")) || bytes.EqualFold(name, []byte("chain"))
}

// appendEvent appends the event line for body (from eventBody) and its
// newline to buf.
func appendEvent(buf, body []byte, seg, seq int64, prev digest, exp time.Time) []byte {
	inner := trimSpace(body[1 : len(body)-1])
	buf = append(buf, body[:len(body)-1]...)
	if len(inner) > 0 {
		buf = append(buf, ',')
	}
	buf = append(buf, `"chain":{"seg":`...)
	buf = strconv.AppendInt(buf, seg, 10)
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, `,"prev":"`...)
	buf = hex.AppendEncode(buf, prev[:])
	buf = append(buf, `","exp":"`...)
	buf = exp.AppendFormat(buf, time.RFC3339)
	return append(buf, "\"}}\n"...)
}

// segmentPath names segment n of the log at path.
func segmentPath(path string, n int64) string {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	return filepath.Join(dir, fmt.Sprintf("%s-%08d%s", strings.TrimSuffix(base, ext), n, ext))
}

// segmentNumber parses the number out of a segment's file name, given the
// log's file name stem and extension.
func segmentNumber(name, stem, ext string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, stem+"-")
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, ext)
	if !ok || len(digits) < 8 || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// guessNumber takes a segment number from any file name of the form
// <stem>-<digits><ext>, for files given to Verify.
func guessNumber(path string) (int64, bool) {
	base := filepath.Base(path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	i := strings.LastIndexByte(stem, '-')
	if i < 0 {
		return 0, false
	}
	return segmentNumber(base, stem[:i], ext)
}

// Segments lists the segment files of the log at path, in order.
func Segments(path string) ([]string, error) {
	segs, err := listSegments(path)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.path
	}
	return out, nil
}

// segmentFileName is a segment file and its number.
type segmentFileName struct {
	n    int64
	path string
}

func listSegments(path string) ([]segmentFileName, error) {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("filelog: list segments of %s: %w", path, err)
	}
	var segs []segmentFileName
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if n, ok := segmentNumber(e.Name(), stem, ext); ok {
			segs = append(segs, segmentFileName{n, filepath.Join(dir, e.Name())})
		}
	}
	slices.SortFunc(segs, func(a, b segmentFileName) int { return cmp.Compare(a.n, b.n) })
	return segs, nil
}
