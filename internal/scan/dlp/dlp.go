// Package dlp finds and rewrites sensitive data in JSON-like values (the
// map[string]any / []any / string trees of decoded JSON, such as MCP tool
// results): e-mail addresses, phone numbers, payment card numbers, IBANs, US
// social security numbers, IP addresses, secrets, private keys, indirect
// prompt-injection markers, and detectors an operator defines in bundle data.
//
// Every built-in detector is a linear-time RE2 candidate search followed by a
// validator (Luhn and card brand prefixes, ISO 13616 mod 97, SSA number rules,
// libphonenumber, net/netip, Shannon entropy). Work is bounded per string and
// per value; what was not scanned is counted in Result.Skipped so that a caller
// can refuse a result it could not check.
//
// It knows nothing about MCP, policy or transport and must not import them:
// callers build a Scanner once per bundle activation and call Apply or Scan on
// the request path. Values are never modified in place.
package dlp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Mode says what Apply does with a detector's matches.
type Mode string

// Modes.
const (
	// Mask replaces a match with [REDACTED:<detector>].
	Mask Mode = "mask"
	// Hash replaces a match with [HASH:<detector>:<16 hex>], the first 8 bytes
	// of HMAC-SHA256(Options.HashKey, canonical match). Card numbers, SSNs,
	// IBANs and phone numbers are canonicalised to their digits and letters,
	// e-mail addresses to lower case, so one value hashes the same however it
	// is written.
	Hash Mode = "hash"
	// Drop removes the whole string holding a match: a member of an object
	// (key and value), an element of an array (later elements move up one
	// index), or, when the value itself is a string, Result.Value is nil. A
	// match in an object key drops that member.
	Drop Mode = "drop"
	// Block leaves the value unchanged and sets Result.Block: the caller must
	// not pass the result on.
	Block Mode = "block"
	// Report only counts matches.
	Report Mode = "report"
)

func (m Mode) valid() bool {
	switch m {
	case Mask, Hash, Drop, Block, Report:
		return true
	}
	return false
}

func (m Mode) rewrites() bool { return m == Mask || m == Hash || m == Drop }

// Built-in detector names.
const (
	Email           = "email"
	Phone           = "phone"
	CardNumber      = "card_number"
	IBAN            = "iban"
	USSSN           = "us_ssn"
	IPAddress       = "ip_address"
	Secret          = "secret"
	PrivateKey      = "private_key"
	PromptInjection = "prompt_injection"
)

// DefaultModes returns the detectors run when Options.Detectors is nil: every
// built-in one, masking personal data and secrets and reporting IP addresses
// and prompt-injection markers.
func DefaultModes() map[string]Mode {
	return map[string]Mode{
		Email: Mask, Phone: Mask, CardNumber: Mask, IBAN: Mask, USSSN: Mask,
		IPAddress: Report, Secret: Mask, PrivateKey: Mask, PromptInjection: Report,
	}
}

// Detectors returns the names of the built-in detectors in the order their
// matches win over overlapping ones.
func Detectors() []string {
	return []string{PrivateKey, Secret, CardNumber, IBAN, USSSN, Email, Phone, IPAddress, PromptInjection}
}

// Custom is a detector defined in bundle data.
type Custom struct {
	// Name appears in findings and placeholders: lower-case letters, digits
	// and underscores, and not the name of a built-in detector.
	Name string
	// Pattern is an RE2 regular expression.
	Pattern string
	// Validator confirms a match: "luhn", "iban", "mod97" (ISO 7064 mod 97-10
	// over the match's letters and digits), "us_ssn", "phone" or "none".
	Validator string
	// Mode defaults to Mask.
	Mode Mode
}

// Options configure a Scanner.
type Options struct {
	// Detectors names the built-in detectors to run and their modes; nil runs
	// DefaultModes. An empty, non-nil map runs only the custom detectors.
	Detectors map[string]Mode
	Custom    []Custom
	// HashKey keys the Hash mode; required when any detector hashes.
	HashKey []byte
	// PhoneRegion is the region numbers without a country code are read in
	// (ISO 3166 alpha-2); default "US".
	PhoneRegion string
	// IncludePrivateIPs makes loopback, private, link-local, multicast and
	// unspecified addresses count as ip_address findings.
	IncludePrivateIPs bool
	// MaxStringBytes bounds the bytes scanned in one string (default 256 KiB);
	// the rest is counted in Skipped.Bytes and left as it is.
	MaxStringBytes int
	// MaxValueBytes bounds the bytes scanned in one value (default 1 MiB).
	MaxValueBytes int
	// MaxPhoneChecks bounds the libphonenumber parses per value (default 4096);
	// candidates beyond it are counted in Skipped.Candidates.
	MaxPhoneChecks int
}

// Errors New returns, wrapped with the detail.
var (
	ErrUnknownDetector  = errors.New("dlp: unknown detector")
	ErrInvalidMode      = errors.New("dlp: invalid mode")
	ErrInvalidCustom    = errors.New("dlp: invalid custom detector")
	ErrUnknownValidator = errors.New("dlp: unknown validator")
	ErrNoHashKey        = errors.New("dlp: hash mode needs a hash key")
	ErrUnknownRegion    = errors.New("dlp: unknown phone region")
)

// Finding is how many matches one detector had.
type Finding struct {
	Detector string
	Count    int
}

// Skipped is the work a scan left undone because of the Options bounds.
type Skipped struct {
	// Bytes of strings that were not scanned.
	Bytes int
	// Candidates are phone-number candidates that were not validated.
	Candidates int
}

// Result is what Apply found and did.
type Result struct {
	// Value is a rewritten copy of the input, or the input itself when
	// nothing was rewritten. Unchanged subtrees are shared with the input.
	Value any
	// Findings are sorted by detector name; detectors without a match are
	// left out.
	Findings []Finding
	// Block is set when a detector in Block mode matched.
	Block   bool
	Skipped Skipped
}

// Scanner is a compiled detector set; it is safe for concurrent use.
type Scanner struct {
	dets        []*detector // in priority order
	hashKey     []byte
	region      string
	privateIPs  bool
	maxString   int
	maxValue    int
	maxPhone    int
	anyRewrites bool
}

const (
	defaultMaxString = 256 << 10
	defaultMaxValue  = 1 << 20
	defaultMaxPhone  = 4096
	// maxPasses bounds the re-scans of a rewritten string: a placeholder can
	// expose a match that a neighbouring character hid (a word boundary).
	maxPasses = 4
)

// New compiles a Scanner. An unknown detector or validator, an invalid mode or
// pattern, or Hash mode without a key is an error: a bundle that asks for a
// protection Verdict cannot give must not be activated.
func New(o Options) (*Scanner, error) {
	s := &Scanner{
		hashKey: slices.Clone(o.HashKey), region: o.PhoneRegion, privateIPs: o.IncludePrivateIPs,
		maxString: o.MaxStringBytes, maxValue: o.MaxValueBytes, maxPhone: o.MaxPhoneChecks,
	}
	if s.region == "" {
		s.region = "US"
	}
	if !phonenumbers.GetSupportedRegions()[s.region] {
		return nil, fmt.Errorf("%w %q: use an ISO 3166 alpha-2 code such as US or GB", ErrUnknownRegion, s.region)
	}
	if s.maxString <= 0 {
		s.maxString = defaultMaxString
	}
	if s.maxValue <= 0 {
		s.maxValue = defaultMaxValue
	}
	if s.maxPhone <= 0 {
		s.maxPhone = defaultMaxPhone
	}
	modes := o.Detectors
	if modes == nil {
		modes = DefaultModes()
	}
	builtin := builtins()
	for _, name := range slices.Sorted(maps.Keys(modes)) {
		if _, ok := builtin[name]; !ok {
			return nil, fmt.Errorf("%w %q: use one of %s", ErrUnknownDetector, name, strings.Join(Detectors(), ", "))
		}
		if !modes[name].valid() {
			return nil, fmt.Errorf("%w %q for detector %q", ErrInvalidMode, modes[name], name)
		}
	}
	var custom []*detector
	seen := map[string]bool{}
	for _, c := range o.Custom {
		d, err := compileCustom(c)
		if err != nil {
			return nil, err
		}
		if seen[d.name] {
			return nil, fmt.Errorf("%w %q: defined twice", ErrInvalidCustom, d.name)
		}
		seen[d.name] = true
		custom = append(custom, d)
	}
	for _, name := range Detectors() {
		if m, ok := modes[name]; ok {
			d := builtin[name]
			d.mode = m
			s.dets = append(s.dets, d)
		}
		if name == Secret { // custom detectors win over everything but keys and secrets
			s.dets = append(s.dets, custom...)
		}
	}
	for _, d := range s.dets {
		if d.mode == Hash && len(s.hashKey) == 0 {
			return nil, fmt.Errorf("%w (detector %q)", ErrNoHashKey, d.name)
		}
		s.anyRewrites = s.anyRewrites || d.mode.rewrites()
	}
	return s, nil
}

// Apply returns a copy of v with every match rewritten according to its
// detector's mode, and what was found. v is never modified.
func (s *Scanner) Apply(v any) Result {
	st := s.newState(true)
	out, _, drop := st.value(v)
	if drop {
		out = nil
	}
	return Result{Value: out, Findings: st.findings(), Block: st.block, Skipped: st.skipped}
}

// Scan counts the matches in v without rewriting anything. The counts are
// those Apply reports for the same value.
func (s *Scanner) Scan(v any) []Finding {
	st := s.newState(false)
	st.value(v)
	return st.findings()
}

type state struct {
	s         *Scanner
	rewrite   bool
	counts    []int
	block     bool
	skipped   Skipped
	bytesLeft int
	phoneLeft int
	firstPass bool
	spans     []span
}

func (s *Scanner) newState(rewrite bool) *state {
	return &state{s: s, rewrite: rewrite, counts: make([]int, len(s.dets)), bytesLeft: s.maxValue, phoneLeft: s.maxPhone}
}

func (st *state) findings() []Finding {
	var out []Finding
	for i, n := range st.counts {
		if n > 0 {
			out = append(out, Finding{Detector: st.s.dets[i].name, Count: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Detector < out[j].Detector })
	return out
}

// value returns v rewritten (v itself when unchanged), whether it changed,
// and whether v must be dropped from its parent.
func (st *state) value(v any) (any, bool, bool) {
	switch x := v.(type) {
	case string:
		out, drop := st.str(x)
		return out, out != x, drop
	case json.Number:
		out, drop := st.str(string(x))
		if out == string(x) {
			return v, false, drop
		}
		return out, true, drop
	case []any:
		var out []any
		for i, e := range x {
			ne, changed, drop := st.value(e)
			if out == nil && (changed || drop) && st.rewrite {
				out = make([]any, i, len(x))
				copy(out, x[:i])
			}
			if out != nil && !drop {
				out = append(out, ne)
			}
		}
		if out == nil {
			return v, false, false
		}
		return out, true, false
	case map[string]any:
		return st.object(x)
	default:
		return v, false, false
	}
}

func (st *state) object(x map[string]any) (any, bool, bool) {
	type member struct {
		key, newKey string
		val         any
		drop        bool
	}
	var changed []member
	for k, e := range x {
		nk, kdrop := st.str(k)
		ne, vchanged, vdrop := st.value(e)
		if kdrop || vdrop || vchanged || nk != k {
			changed = append(changed, member{key: k, newKey: nk, val: ne, drop: kdrop || vdrop})
		}
	}
	if len(changed) == 0 || !st.rewrite {
		return x, false, false
	}
	out := maps.Clone(x)
	for _, m := range changed {
		delete(out, m.key)
	}
	// Rewritten keys go in last, in order, so a key that now collides with
	// another is dropped the same way every time.
	sort.Slice(changed, func(i, j int) bool { return changed[i].key < changed[j].key })
	for _, m := range changed {
		if _, taken := out[m.newKey]; m.drop || taken {
			continue
		}
		out[m.newKey] = m.val
	}
	return out, true, false
}

// str scans one string and returns it rewritten and whether it must be
// dropped.
func (st *state) str(s string) (string, bool) {
	limit := min(len(s), st.s.maxString, max(st.bytesLeft, 0))
	for limit > 0 && limit < len(s) && !utf8.RuneStart(s[limit]) {
		limit--
	}
	st.bytesLeft -= limit
	st.skipped.Bytes += len(s) - limit
	if limit == 0 {
		return s, false
	}
	head, tail := s[:limit], s[limit:]
	out, drop := st.pass(head, true)
	if !st.rewrite {
		return s, false
	}
	for i := 1; i < maxPasses && !drop && out != head && st.s.anyRewrites; i++ {
		head = out
		out, drop = st.pass(head, false)
	}
	if out == s[:limit] {
		return s, drop
	}
	return out + tail, drop
}

type span struct {
	start, end int
	det        int
}

// pass runs every detector over s once. Detectors that do not rewrite are
// counted on every match; rewriting ones compete for the text, the leftmost
// match winning and priority breaking ties. Later passes only look for new
// rewriting matches.
func (st *state) pass(s string, first bool) (string, bool) {
	st.firstPass = first
	spans := st.spans[:0]
	for i, d := range st.s.dets {
		if !d.mode.rewrites() {
			if !first {
				continue
			}
			n := 0
			d.find(st, s, func(int, int) { n++ })
			st.counts[i] += n
			if n > 0 && d.mode == Block {
				st.block = true
			}
			continue
		}
		d.find(st, s, func(a, b int) { spans = append(spans, span{a, b, i}) })
	}
	st.spans = spans
	if len(spans) == 0 {
		return s, false
	}
	sort.SliceStable(spans, func(i, j int) bool {
		if spans[i].start != spans[j].start {
			return spans[i].start < spans[j].start
		}
		return spans[i].det < spans[j].det
	})
	var b strings.Builder
	drop, last := false, 0
	for _, sp := range spans {
		if sp.start < last {
			continue
		}
		d := st.s.dets[sp.det]
		st.counts[sp.det]++
		if d.mode == Drop {
			drop = true
		}
		if !st.rewrite {
			last = sp.end
			continue
		}
		b.WriteString(s[last:sp.start])
		if d.mode == Hash {
			b.WriteString("[HASH:" + d.name + ":" + st.s.hash(d.name, s[sp.start:sp.end]) + "]")
		} else {
			b.WriteString("[REDACTED:" + d.name + "]")
		}
		last = sp.end
	}
	if !st.rewrite {
		return s, drop
	}
	b.WriteString(s[last:])
	return b.String(), drop
}

func (s *Scanner) hash(name, m string) string {
	h := hmac.New(sha256.New, s.hashKey)
	h.Write([]byte(canonical(name, m)))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func canonical(name, m string) string {
	switch name {
	case CardNumber, USSSN, IBAN, Phone:
		return strings.ToUpper(alnum(m))
	case Email:
		return strings.ToLower(m)
	}
	return m
}

func alnum(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; isDigit(c) || isLetter(c) {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isWord(c byte) bool   { return isDigit(c) || isLetter(c) || c == '_' }
