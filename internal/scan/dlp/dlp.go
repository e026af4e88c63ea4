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
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

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
