package filelog

import (
	"fmt"
	"path/filepath"
)

// classify reports the broken link at line i: cur does not follow pred
// (before is the anchor before pred). It looks at the lines around to tell
// the kind of change.
func (c *segmentCheck) classify(i int, pred, before anchor) {
	sl := c.sl
	cur, ln := &sl.lines[i], i+1
	var next *lineInfo
	if i+1 < len(sl.lines) && sl.lines[i+1].complete {
		next = &sl.lines[i+1]
	}
	report := func(line int, kind, format string, args ...any) {
		c.problem(sl.path, line, kind, fmt.Sprintf(format, args...))
	}
	switch {
	case cur.kind == kindBad:
		switch {
		case next != nil && next.kind != kindBad && next.seg == sl.num && next.seq == pred.seq+2 && next.prev != cur.hash:
			report(ln, KindEdited, "the line does not parse (%s), and the next line links to a different line: it was changed", cur.bad)
		case next != nil && linked(pred, next, sl.num):
			report(ln, KindInserted, "the line does not parse (%s), and the lines around it link without it", cur.bad)
		default:
			report(ln, KindMalformed, "%s", cur.bad)
		}
	case cur.seg != sl.num:
		if next != nil && linked(pred, next, sl.num) {
			report(ln, KindInserted, "a line of segment %d; the lines around it link without it", cur.seg)
		} else {
			report(ln, KindReordered, "a line of segment %d in segment %d", cur.seg, sl.num)
		}
	case (pred.kind == anchorLine || pred.kind == anchorZero || pred.kind == anchorGap) && cur.prev == pred.hash:
		report(ln, KindEdited, "the line links to the line before it, but its seq is %d, not %d: it was changed", cur.seq, pred.seq+1)
	case c.duplicateOf(i) > 0:
		report(ln, KindInserted, "the line is a copy of line %d", c.duplicateOf(i))
	case cur.seq > pred.seq+1:
		if c.seqLater(i, pred.seq+1, cur.seq-1) {
			report(ln, KindReordered, "the line has seq %d where seq %d belongs, and that line comes later: lines were moved", cur.seq, pred.seq+1)
		} else {
			report(ln, KindDeleted, "%s missing before this line", seqRange(pred.seq+1, cur.seq-1))
		}
	case next != nil && linked(pred, next, sl.num):
		report(ln, KindInserted, "the lines around this one link without it")
	case before.kind == anchorLine && before.file == sl.path && linked(before, cur, sl.num):
		report(pred.line, KindInserted, "line %d links past this line: it is not part of the chain", ln)
	case cur.seq == pred.seq+1 && (next == nil || linked(lineAnchor(cur, sl.path, ln), next, sl.num)):
		// Only the hash link to pred is broken: pred was changed.
		switch pred.kind {
		case anchorLine:
			c.problem(pred.file, pred.line, KindEdited, fmt.Sprintf(
				"the line's hash does not match the prev recorded by the line after it (%s line %d): it was changed",
				filepath.Base(sl.path), ln))
		case anchorGap:
			report(ln, KindMissingSegment, "the first line does not link to the last line of segment %d as the retention record gives it", pred.last)
		default:
			report(ln, KindEdited, "the first line of segment 1 must have prev 0000…0000")
		}
	case cur.seq == pred.seq+1:
		report(ln, KindEdited, "the line's prev does not match the line before it, and the line after it does not link to it: it was changed")
	default:
		report(ln, KindInserted, "the line has seq %d after seq %d", cur.seq, pred.seq)
	}
}

// duplicateOf returns the number of another line with the same bytes as
// line i+1, or 0.
func (c *segmentCheck) duplicateOf(i int) int {
	for j := range c.sl.lines {
		if j != i && c.sl.lines[j].complete && c.sl.lines[j].hash == c.sl.lines[i].hash {
			return j + 1
		}
	}
	return 0
}

// seqLater reports whether a line after line i+1 has a seq in lo..hi.
func (c *segmentCheck) seqLater(i int, lo, hi int64) bool {
	for _, li := range c.sl.lines[i+1:] {
		if li.kind != kindBad && li.seg == c.sl.num && li.seq >= lo && li.seq <= hi {
			return true
		}
	}
	return false
}

func seqRange(lo, hi int64) string {
	if lo == hi {
		return fmt.Sprintf("the line with seq %d is", lo)
	}
	return fmt.Sprintf("the lines with seq %d to %d are", lo, hi)
}
