// Package filelog is the audit sink that keeps decision events on local disk
// as a tamper-evident, rotated, retention-managed JSON-lines log, and Verify,
// which checks such a log.
//
// It owns the on-disk format described here. It imports the audit package and
// the standard library only; it must not import the engine, the servers or
// any adapter.
//
// # Files
//
// Options.Path names the log but is never written itself. The log is a series
// of segment files next to it: for /var/log/verdict/audit.jsonl they are
// audit-00000001.jsonl, audit-00000002.jsonl, and so on. The number has at
// least eight digits and only ever increases; Segments lists the files of a
// log in order. Files are created 0600, and the directory 0700 when the sink
// creates it.
//
// Every Open starts a new segment. A segment is sealed (ended with a final
// checkpoint and never written again) by Close, when it has reached MaxBytes
// (it may exceed MaxBytes by at most one batch and a checkpoint), and when it
// holds records and its first line is older than MaxAge.
//
// # Lines
//
// Every line is one JSON object followed by a newline ("\n"). The hash of a
// line is the SHA-256 of its bytes without the newline, written as 64
// lowercase hex digits. Every line ends with the member
//
//	"chain":{"seg":N,"seq":M,"prev":"<hash>"}
//
// where N is the segment number, M numbers the lines of the segment from 0,
// and prev is the hash of the line before it: for the first line of segment N,
// the last line of segment N-1; for the first line of segment 1, 64 zeros.
// Changing any byte of a line, or removing, inserting or moving a line,
// therefore breaks a link.
//
// Event lines are the record's JSON, byte for byte, with the chain member
// spliced in before the closing brace (white space before the opening and
// after the closing brace is dropped; a record that has a newline in its
// white space is compacted first). The chain member of an event has a fourth
// field, "exp": the record's Expires rounded up to the second, in RFC 3339 UTC,
// or 9999-12-31T23:59:59Z for a record without one (it is kept forever).
// Keeping it on each line lets the verifier recompute a checkpoint's expires
// and lets crash recovery seal a segment without losing track of what it must
// keep. A record is refused, and counted as dropped, when its JSON is not a
// single object, or when it has a top-level member named "type" or "chain"
// (compared as encoding/json compares names: ignoring case), since those
// would make the line ambiguous.
//
// Bookkeeping lines have a "type" member first and the chain member last.
// Their times are RFC 3339 in UTC.
//
//   - segment_start, the first line of every segment and only there:
//     {"type":"segment_start","version":1,"segment":N,"created":T,
//     "prev_segment":N-1,"gaps":[...],"chain":{...}}. prev_segment is absent
//     in segment 1. gaps (absent when empty) is the retention state as the
//     segment starts; see Retention.
//   - checkpoint: {"type":"checkpoint","time":T,"records":R,"first":T,
//     "last":T,"expires":T,"final":B,"recovered":true,"truncated_bytes":K,
//     "key_id":"…","sig":"…","chain":{...}}. time is when it was written;
//     records counts the event lines of the segment before it; first and last
//     are the earliest and latest record time among them, and expires the
//     latest exp (the three are absent when records is 0). final is true on
//     the last line of a sealed segment and only there. recovered and
//     truncated_bytes appear only on a final checkpoint written by crash
//     recovery. key_id and sig appear when the sink has a signing key.
//     A periodic checkpoint (final false) is written after CheckpointEvery
//     records, or once CheckpointInterval has passed since the last one when
//     records were written since.
//   - retention: {"type":"retention","time":T,"deleted":[{"segment":N,
//     "first_prev":H,"last_hash":H,"records":R,"expires":T}],"gaps":[...],
//     "chain":{...}}, written to the active segment just before retention
//     deletes the listed segments: first_prev is the prev of the deleted
//     segment's first line, last_hash the hash of its last line, records and
//     expires those of its final checkpoint.
//
// # Signatures
//
// With Options.SigningKey, every checkpoint carries key_id, the hex of the
// first 8 bytes of the SHA-256 of the raw 32-byte Ed25519 public key, and sig,
// the standard (padded) base64 Ed25519 signature of this message:
//
//	the 29 bytes "verdict/filelog/checkpoint/v1", then a zero byte
//	seg, seq         int64, big-endian (the checkpoint's own chain member)
//	prev             32 bytes (the checkpoint's chain.prev)
//	records          int64
//	time, first, last, expires
//	                 each: int64 Unix seconds, then int64 nanoseconds
//	                 (an absent time is Go's zero time.Time)
//	final, recovered one byte each, 0 or 1
//	truncated_bytes  int64 (0 when absent)
//
// Because prev is the hash of the line before the checkpoint, a valid
// signature vouches for every earlier line of the log, as far back as the
// chain is intact.
//
// # Crash recovery
//
// Open reads the newest segment. If it ends without a final checkpoint (the
// process died), Open keeps its complete lines (each ending in a newline,
// parsing, and linking to the one before), truncates the incomplete line that
// may follow the last of them, appends a final checkpoint with recovered true
// and truncated_bytes the number of bytes cut, and starts the next segment.
// A newest segment that holds nothing but the beginning of its segment_start
// line (a crash while creating it) is removed and its number reused.
//
// If a complete line of the newest segment does not parse or does not link
// (a change that a crash cannot make), Open refuses to start and returns an
// error, wrapping ErrBrokenChain, that names the file and the line: the sink
// will not vouch for, nor repair, a segment that may have been tampered with.
// An operator must look at it (Verify tells what kind of change it is),
// move the log aside, and start a new one.
//
// # Retention
//
// Each record's Expires is the instant its retention ends. A sealed segment
// whose final checkpoint's expires is before the current time (every record in
// it has expired) is deleted, oldest first; the active segment never is.
// Retention runs at Open, after every rotation and every RetentionCheck. Before
// deleting, it appends a retention line to the active segment (and syncs it),
// so a segment later in the log may be deleted before an earlier one.
//
// gaps carries what retention has deleted, so that the newest segment alone
// accounts for every missing one: it is a list of runs
// {"first":A,"last":B,"first_prev":H,"last_hash":H}, in increasing order, of
// consecutive segment numbers A..B that retention deleted, with the prev of
// segment A's first line and the hash of segment B's last line. A
// segment_start repeats the gaps of the line before it, and each retention line
// gives them with its deletions added; adjacent runs are merged when they link.
//
// # Verifying
//
// Verify orders the files by segment number and walks the chain. It reports,
// with file and line, the first broken link in each segment and the kind of
// change it points to (see Problem); a segment with a broken link is not
// checked further, since the position of every later line is suspect. A
// missing segment is accepted only when the gaps of the newest segment list it
// and link to the segments around it. A sealed segment must end with its final
// checkpoint, and records must match the event lines before each checkpoint.
// The newest segment may be open (no final checkpoint) and may end in an
// incomplete line; both are warnings. Given a public key, every checkpoint
// must carry a valid signature from it.
//
// The hash chain shows that lines were changed, unless whoever changed them
// also rewrote every line after them: it is evidence against edits made
// after the fact, not a seal. Signed checkpoints (with a key kept away from
// whoever can edit the files), or the newest checkpoint's hash copied
// elsewhere, close that gap up to that checkpoint. Removing whole segments
// from the end of the log, or lines from the end of the newest segment,
// cannot be told from a log that simply ends there.
package filelog
