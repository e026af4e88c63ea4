package filelog

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Kinds of Problem.
const (
	// KindEdited: a line's bytes changed (its hash no longer matches the
	// prev of the line after it, or its own chain member is wrong).
	KindEdited = "edited"
	// KindDeleted: lines are missing (seq numbers are skipped and do not
	// come later), or a checkpoint counts more records than precede it.
	KindDeleted = "deleted"
	// KindInserted: a line that is not part of the chain (a copy of another
	// line, or lines around it link without it), or a line after the final
	// checkpoint.
	KindInserted = "inserted"
	// KindReordered: lines of the segment appear out of order, or a line of
	// another segment is here.
	KindReordered = "reordered"
	// KindTruncated: a segment that is not the newest ends without its final
	// checkpoint, or in an incomplete line.
	KindTruncated = "truncated"
	// KindBadSignature: with a public key, a checkpoint without a valid
	// signature by that key.
	KindBadSignature = "bad_signature"
	// KindMissingSegment: segments are missing and no retention record
	// accounts for them, or the record does not link to the segments around
	// the gap.
	KindMissingSegment = "missing_segment"
	// KindMalformed: a line that is not of this format, or bookkeeping that
	// contradicts the lines it describes.
	KindMalformed = "malformed"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// PublicKey, when set, is the key every checkpoint must be signed with.
	PublicKey ed25519.PublicKey
}

// Report is what Verify found.
type Report struct {
	// OK is true when there are no Problems.
	OK bool `json:"ok"`
	// Segments and Records count the segment files checked and the event
	// lines verified in them.
	Segments int       `json:"segments"`
	Records  int       `json:"records"`
	Problems []Problem `json:"problems,omitempty"`
	// Warnings are facts an auditor should know that do not break the log:
	// an open newest segment, a crash, signatures not checked.
	Warnings []string `json:"warnings,omitempty"`
}

// Problem is a place where the log is not what the sink wrote.
type Problem struct {
	File string `json:"file"`
	// Line is 1-based; 0 means the file as a whole.
	Line    int    `json:"line"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Verify checks the segment files of a log, given in any order, and reports
// every problem it finds: the first broken link of each segment, missing
// segments, and bad signatures. Its error is for files it cannot read.
func Verify(files []string, opts VerifyOptions) (Report, error) {
	v := verifier{pub: opts.PublicKey}
	if v.pub != nil {
		if len(v.pub) != ed25519.PublicKeySize {
			return Report{}, errors.New("filelog: verify: the public key is not an Ed25519 key")
		}
		v.keyID = keyID(v.pub)
	}
	var segs []*segmentLines
	for _, p := range files {
		n, err := segmentNumberOf(p)
		if err != nil {
			return Report{}, fmt.Errorf("filelog: verify: %w", err)
		}
		if n == 0 {
			v.problem(p, 0, KindMalformed, "the segment number is neither in the file name nor on its first line")
			continue
		}
		segs = append(segs, &segmentLines{path: p, num: n})
	}
	slices.SortStableFunc(segs, func(a, b *segmentLines) int { return cmp.Compare(a.num, b.num) })
	segs = slices.CompactFunc(segs, func(a, b *segmentLines) bool {
		if a.num == b.num {
			v.problem(b.path, 0, KindInserted, fmt.Sprintf("a second file for segment %d (the first is %s)", a.num, a.path))
			return true
		}
		return false
	})
	// The newest segment says what retention deleted; read it first.
	var gaps []gap
	if len(segs) > 0 {
		if err := segs[len(segs)-1].load(); err != nil {
			return Report{}, fmt.Errorf("filelog: verify: %w", err)
		}
		gaps = v.finalGaps(segs[len(segs)-1])
	}
	var present []*segmentLines
	for _, sl := range segs {
		if inGaps(gaps, sl.num) {
			v.warn("%s: segment %d is listed as deleted by retention but is still there; it was not checked", sl.path, sl.num)
			continue
		}
		present = append(present, sl)
	}
	if err := v.walk(present, gaps); err != nil {
		return Report{}, fmt.Errorf("filelog: verify: %w", err)
	}
	if v.pub == nil && v.checkpoints > 0 {
		v.warn("signatures were not checked: no public key was given")
	}
	v.rep.OK = len(v.rep.Problems) == 0
	return v.rep, nil
}

// segmentLines is one segment file; its lines are read when it is checked
// and dropped after, so that Verify holds one segment at a time.
type segmentLines struct {
	path  string
	num   int64
	lines []lineInfo
}

func (sl *segmentLines) load() error {
	if sl.lines != nil {
		return nil
	}
	sl.lines = []lineInfo{}
	return scanLines(sl.path, func(b []byte, complete bool) error {
		li := parseLine(b)
		li.complete = complete
		sl.lines = append(sl.lines, li)
		return nil
	})
}

// segmentNumberOf tells a file's segment number from its name or, failing
// that, its first line; 0 when neither says.
func segmentNumberOf(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	if n, ok := guessNumber(path); ok {
		return n, nil
	}
	first, err := bufio.NewReader(io.LimitReader(f, 1<<20)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if li := parseLine(bytes.TrimSuffix(first, []byte("\n"))); li.kind != kindBad {
		return li.seg, nil
	}
	return 0, nil
}

type verifier struct {
	pub         ed25519.PublicKey
	keyID       string
	checkpoints int
	rep         Report
}

func (v *verifier) problem(file string, line int, kind, msg string) {
	v.rep.Problems = append(v.rep.Problems, Problem{File: file, Line: line, Kind: kind, Message: msg})
}

func (v *verifier) warn(format string, args ...any) {
	v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf(format, args...))
}

// finalGaps is the retention state at the end of the newest segment: what
// retention has deleted, ever.
func (v *verifier) finalGaps(newest *segmentLines) []gap {
	var gaps []gap
	for i, li := range newest.lines {
		var g []gap
		switch {
		case !li.complete:
			continue
		case li.kind == kindStart:
			g = li.start.Gaps
		case li.kind == kindRetention:
			g = li.ret.Gaps
		default:
			continue
		}
		if !validGaps(g, newest.num) {
			v.problem(newest.path, i+1, KindMalformed, "gaps are not increasing runs of earlier segments; retention records were ignored")
			return nil
		}
		gaps = g
	}
	return gaps
}

func validGaps(gaps []gap, seg int64) bool {
	var after int64
	for _, g := range gaps {
		if g.First <= after || g.Last < g.First || g.Last >= seg {
			return false
		}
		after = g.Last
	}
	return true
}

// anchorKind says what the next line must link to.
type anchorKind uint8

const (
	anchorNone    anchorKind = iota // nothing: no line links to it
	anchorLine                      // a line that was read
	anchorZero                      // the start of the log: 64 zeros
	anchorGap                       // the last line of a deleted segment, from the gaps
	anchorUnknown                   // not known: only seq is checked
)

type anchor struct {
	kind anchorKind
	hash digest
	seq  int64
	file string
	line int
	// last is the last segment of the gap, for anchorGap.
	last int64
}

func lineAnchor(li *lineInfo, file string, line int) anchor {
	return anchor{kind: anchorLine, hash: li.hash, seq: li.seq, file: file, line: line}
}

// linked reports whether li, a line of segment seg, follows a.
func linked(a anchor, li *lineInfo, seg int64) bool {
	switch {
	case a.kind == anchorNone || li.kind == kindBad || !li.complete || li.seg != seg || li.seq != a.seq+1:
		return false
	case a.kind == anchorUnknown:
		return true
	}
	return li.prev == a.hash
}

// walk checks the present segments in order and the links between them.
func (v *verifier) walk(present []*segmentLines, gaps []gap) error {
	end := anchor{kind: anchorZero, seq: -1} // what the next segment links to
	var next int64 = 1                       // the number it should have
	for i, sl := range present {
		if err := sl.load(); err != nil {
			return err
		}
		start := end
		if sl.num > next {
			start = v.bridge(gaps, next, sl.num-1, end, sl)
		}
		end = v.checkSegment(sl, start, i == len(present)-1)
		end.seq = -1 // a segment's first line has seq 0
		next = sl.num + 1
		v.rep.Segments++
		sl.lines = nil
	}
	return nil
}

// bridge follows the gaps over the missing segments lo..hi, from the end of
// the segment before them, and returns what the first line of sl must link
// to.
func (v *verifier) bridge(gaps []gap, lo, hi int64, from anchor, sl *segmentLines) anchor {
	at := from
	for n := lo; n <= hi; {
		i := slices.IndexFunc(gaps, func(g gap) bool { return g.First == n })
		if i < 0 {
			upto := hi
			for _, g := range gaps {
				if g.First > n && g.First <= hi {
					upto = g.First - 1
					break
				}
			}
			v.problem(sl.path, 1, KindMissingSegment, fmt.Sprintf("%s missing and no retention record accounts for %s",
				segmentRange(n, upto), pronoun(n, upto)))
			return anchor{kind: anchorUnknown, seq: -1}
		}
		g := gaps[i]
		if (at.kind == anchorLine || at.kind == anchorZero || at.kind == anchorGap) && g.FirstPrev != at.hash {
			v.problem(sl.path, 1, KindMissingSegment, fmt.Sprintf(
				"the retention record of %s does not link to the end of the segment before it", segmentRange(g.First, g.Last)))
			return anchor{kind: anchorUnknown, seq: -1}
		}
		at = anchor{kind: anchorGap, hash: g.LastHash, seq: -1, last: g.Last}
		n = g.Last + 1
	}
	return at
}

func segmentRange(lo, hi int64) string {
	if lo == hi {
		return fmt.Sprintf("segment %d is", lo)
	}
	return fmt.Sprintf("segments %d to %d are", lo, hi)
}

func pronoun(lo, hi int64) string {
	if lo == hi {
		return "it"
	}
	return "them"
}

// segmentCheck is the state of checking one segment.
type segmentCheck struct {
	*verifier
	sl     *segmentLines
	events int64
	maxExp time.Time
	final  int // line of the final checkpoint
	signed int // line of the last checkpoint with a valid signature
}

// checkSegment checks one segment that must link to start, and returns what
// the next segment links to: its last line, or anchorUnknown after a
// problem.
func (v *verifier) checkSegment(sl *segmentLines, start anchor, newest bool) anchor {
	c := segmentCheck{verifier: v, sl: sl}
	pred, before := start, anchor{kind: anchorNone}
	base := filepath.Base(sl.path)
	for i := range sl.lines {
		li, ln := &sl.lines[i], i+1
		switch {
		case !li.complete && newest && c.final == 0:
			v.warn("%s ends with an incomplete line of %d bytes, a write cut short (a crash); the segment verifies up to line %d",
				base, li.size, i)
			c.warnOpen(newest)
			return pred
		case !li.complete:
			kind := KindTruncated
			if c.final > 0 {
				kind = KindInserted
			}
			v.problem(sl.path, ln, kind, "an incomplete line: the segment was cut short or bytes were added")
			return anchor{kind: anchorUnknown, seq: -1}
		case c.final > 0:
			v.problem(sl.path, ln, KindInserted, fmt.Sprintf("a line after the final checkpoint (line %d)", c.final))
			return anchor{kind: anchorUnknown, seq: -1}
		case !linked(pred, li, sl.num):
			c.classify(i, pred, before)
			return anchor{kind: anchorUnknown, seq: -1}
		}
		if !c.content(li, ln) {
			return anchor{kind: anchorUnknown, seq: -1}
		}
		before, pred = pred, lineAnchor(li, sl.path, ln)
	}
	if c.final == 0 {
		if !newest {
			v.problem(sl.path, len(sl.lines), KindTruncated,
				"the segment ends without its final checkpoint, yet later segments exist: its end was cut off")
			return anchor{kind: anchorUnknown, seq: -1}
		}
		c.warnOpen(newest)
	}
	return pred
}

// warnOpen notes an open newest segment and what its signatures cover.
func (c *segmentCheck) warnOpen(newest bool) {
	if !newest {
		return
	}
	base := filepath.Base(c.sl.path)
	c.warn("%s has no final checkpoint: the writer is still running, or stopped without closing it", base)
	if c.pub != nil && c.signed < len(c.sl.lines) {
		c.warn("%s: the lines after line %d are not covered by a signed checkpoint, only by the hash chain", base, c.signed)
	}
}

// content checks a line that links: what it says against what precedes it.
// It reports whether the segment may be checked further.
func (c *segmentCheck) content(li *lineInfo, ln int) bool {
	file, num := c.sl.path, c.sl.num
	if ln == 1 && li.kind != kindStart {
		c.problem(file, ln, KindMalformed, "the first line of a segment is not its segment_start")
		return false
	}
	switch li.kind {
	case kindStart:
		s := li.start
		switch {
		case ln != 1:
			c.problem(file, ln, KindInserted, "a segment_start that is not the first line")
			return false
		case s.Version != formatVersion:
			c.problem(file, ln, KindMalformed, fmt.Sprintf("format version %d; this verifier knows version %d", s.Version, formatVersion))
			return false
		case s.Segment != num || num > 1 && s.PrevSegment != num-1 || num == 1 && s.PrevSegment != 0:
			c.problem(file, ln, KindMalformed, "segment_start names the wrong segment numbers")
			return false
		case !validGaps(s.Gaps, num):
			c.problem(file, ln, KindMalformed, "gaps are not increasing runs of earlier segments")
			return false
		}
	case kindEvent:
		c.events++
		c.rep.Records++
		if li.exp.After(c.maxExp) {
			c.maxExp = li.exp
		}
	case kindCheckpoint:
		return c.checkpoint(li, ln)
	case kindRetention:
		r := li.ret
		if !validGaps(r.Gaps, num) {
			c.problem(file, ln, KindMalformed, "gaps are not increasing runs of earlier segments")
			return false
		}
		for _, d := range r.Deleted {
			if !inGaps(r.Gaps, d.Segment) {
				c.problem(file, ln, KindMalformed, fmt.Sprintf("deleted segment %d is not in the gaps", d.Segment))
				return false
			}
			if d.Expires.After(r.Time) {
				c.warn("%s line %d: retention deleted segment %d at %s, before its records expired at %s",
					filepath.Base(file), ln, d.Segment, r.Time.Format(time.RFC3339), d.Expires.Format(time.RFC3339))
			}
		}
	default:
	}
	return true
}

func (c *segmentCheck) checkpoint(li *lineInfo, ln int) bool {
	file, cp := c.sl.path, li.cp
	c.checkpoints++
	switch {
	case cp.Records > c.events:
		c.problem(file, ln, KindDeleted, fmt.Sprintf("the checkpoint counts %d records, but %d precede it", cp.Records, c.events))
		return false
	case cp.Records < c.events:
		c.problem(file, ln, KindInserted, fmt.Sprintf("the checkpoint counts %d records, but %d precede it", cp.Records, c.events))
		return false
	case !cp.Expires.Equal(c.maxExp):
		c.problem(file, ln, KindMalformed, fmt.Sprintf("the checkpoint's expires is %s, but its records expire up to %s",
			fmtTime(cp.Expires), fmtTime(c.maxExp)))
		return false
	}
	if c.pub != nil {
		if msg := c.badSignature(cp); msg != "" {
			c.problem(file, ln, KindBadSignature, msg)
			return false
		}
		c.signed = ln
	}
	if cp.Final {
		c.final = ln
		if cp.Recovered {
			var cut int64
			if cp.TruncatedBytes != nil {
				cut = *cp.TruncatedBytes
			}
			c.warn("%s was sealed by crash recovery at %s (%d bytes of an incomplete line were cut)",
				filepath.Base(file), fmtTime(cp.Time), cut)
		}
	}
	return true
}

func (v *verifier) badSignature(cp *checkpointLine) string {
	if cp.Sig == "" {
		return "the checkpoint is not signed"
	}
	if cp.KeyID != v.keyID {
		return fmt.Sprintf("the checkpoint is signed with key %q, not with the given key %q", cp.KeyID, v.keyID)
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Sig)
	if err != nil || !ed25519.Verify(v.pub, signedMessage(cp), sig) {
		return "the checkpoint's signature does not verify"
	}
	return ""
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339)
}
