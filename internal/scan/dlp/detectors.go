package dlp

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"
)

// A detector emits the validated matches of one kind in a string.
type detector struct {
	name string
	mode Mode
	find func(st *state, s string, emit func(start, end int))
}

// reDetector finds candidates with re and emits those valid accepts. need,
// when set, is a cheap test that s can hold a match at all.
func reDetector(name string, re *regexp.Regexp, need func(string) bool, valid func(st *state, s string, a, b int) bool) *detector {
	return &detector{name: name, find: func(st *state, s string, emit func(int, int)) {
		if need != nil && !need(s) {
			return
		}
		for _, m := range re.FindAllStringIndex(s, -1) {
			if valid == nil || valid(st, s, m[0], m[1]) {
				emit(m[0], m[1])
			}
		}
	}}
}

// Words one of which a string must hold, in any case, for the expensive
// case-insensitive expressions to run.
var (
	injectionWords = []string{"ignore", "disregard", "forget", "override", "bypass", "you are now", "system", "assistant",
		"<|", "[inst]", "[/inst]", "<<sys>>", "instructions", "the user", "reveal", "print", "output", "repeat", "show", "from now on"}
	assignWords = []string{"key", "secret", "token", "passw", "pwd", "auth", "credential"}
)

// containsFold reports whether s holds one of the lower-case words, ignoring
// ASCII case.
func containsFold(s string, words []string) bool {
	lower := []byte(s)
	for i, c := range lower {
		if c >= 'A' && c <= 'Z' {
			lower[i] = c + 'a' - 'A'
		}
	}
	for _, w := range words {
		if bytes.Contains(lower, []byte(w)) {
			return true
		}
	}
	return false
}

func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}`)
	ibanRE  = regexp.MustCompile(`[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}`)
	ssnRE   = regexp.MustCompile(`\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}`)
	ipv4RE  = regexp.MustCompile(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`)
	ipv6RE  = regexp.MustCompile(`[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}\.\d{1,3}\.\d{1,3})?`)
	// Secret shapes, shared with internal/redact; one expression per literal
	// prefix, which regexp finds with a fast substring search.
	secretShapeREs = compileAll(
		`AKIA[0-9A-Z]{16}`, `ASIA[0-9A-Z]{16}`, // AWS access key ids
		`gh[pousr]_[A-Za-z0-9]{36,}`,                                                                         // GitHub tokens
		`github_pat_[A-Za-z0-9_]{22,}`,                                                                       // GitHub fine-grained tokens
		`xox[abprs]-[A-Za-z0-9\-]{10,}`,                                                                      // Slack tokens
		`sk_(?:live|test)_[A-Za-z0-9]{16,}`, `rk_(?:live|test)_[A-Za-z0-9]{16,}`, `pk_live_[A-Za-z0-9]{16,}`, // Stripe keys
		`sk-[A-Za-z0-9_\-]{20,}`, // OpenAI-style keys
		`AIza[0-9A-Za-z_\-]{35}`, // Google API keys
		`eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}`, // JWTs
	)
	// A token of the base64/base64url alphabet, for the entropy test.
	tokenRE = regexp.MustCompile(`[A-Za-z0-9+/_\-]{20,}={0,2}`)
	// A value assigned to a secret-sounding name.
	assignRE = regexp.MustCompile(`(?i)(?:api[_\-]?key|secret|token|passw(?:or)?d|pwd|access[_\-]?key|auth|credentials?)[A-Za-z_\-]*["']?\s*[:=]\s*["']?([A-Za-z0-9+/=_\-.!@#$%^&*]{16,})`)
	uuidRE   = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	// PEM private keys (PKCS#1, PKCS#8, SEC1, OpenSSH, encrypted), PGP
	// secret key blocks and PuTTY keys; an unterminated block runs to the end.
	privateKeyRE = regexp.MustCompile(`-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)|PuTTY-User-Key-File-\d: [\s\S]*?(?:Private-MAC: [0-9a-f]+|$)`)
	injectionRE  = regexp.MustCompile(`(?im)` + strings.Join([]string{
		`\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*(?:previous|prior|above|earlier|preceding|system|original)\s+(?:instructions?|prompts?|directions|rules|messages|guidelines)`,
		`\byou\s+are\s+now\s+(?:DAN\b|in\s+\w+\s+mode|an?\s+(?:unrestricted|unfiltered|uncensored|different|new|evil|jailbroken)\b|no\s+longer\b)`,
		`^[ \t>#*]*(?:system|assistant)\s*:\s*(?:you\b|ignore\b|disregard\b|forget\b|from\s+now\s+on\b|new\s+instructions\b|important\b|override\b|do\s+not\b)`,
		`<\|(?:im_start|im_end|system|endoftext|start_header_id)\|>|\[/?INST\]|<<SYS>>|</?system>`,
		`\b(?:new|updated|revised|real)\s+instructions\s*:`,
		`\boverride\s+(?:all\s+)?(?:your|the|my)\s+(?:instructions|safety\s+\w+|rules|guidelines)`,
		`\bdo\s+not\s+(?:tell|inform|mention\s+(?:this\s+)?to|alert)\s+the\s+user\b`,
		`\b(?:reveal|print|output|repeat|show)\s+(?:your|the)\s+(?:system\s+prompt|hidden\s+instructions|initial\s+instructions)`,
		`\bfrom\s+now\s+on,?\s+you\s+(?:will|must|are|shall)\b`,
	}, "|"))
)

func compileAll(exprs ...string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(exprs))
	for i, e := range exprs {
		out[i] = regexp.MustCompile(e)
	}
	return out
}

func builtins() map[string]*detector {
	return map[string]*detector{
		Email:      reDetector(Email, emailRE, func(s string) bool { return strings.IndexByte(s, '@') >= 0 }, validEmailAt),
		Phone:      {name: Phone, find: findPhone},
		CardNumber: {name: CardNumber, find: findCard},
		IBAN:       {name: IBAN, find: findIBAN},
		USSSN:      reDetector(USSSN, ssnRE, hasDigit, validSSNAt),
		IPAddress:  {name: IPAddress, find: findIP},
		Secret:     {name: Secret, find: findSecret},
		PrivateKey: reDetector(PrivateKey, privateKeyRE, func(s string) bool {
			return strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "PuTTY-User-Key-File-")
		}, nil),
		PromptInjection: reDetector(PromptInjection, injectionRE, func(s string) bool {
			return containsFold(s, injectionWords)
		}, nil),
	}
}

// bounded reports whether s[a:b] is not glued to a word or a longer number.
func bounded(s string, a, b int) bool {
	if a > 0 {
		c := s[a-1]
		if isWord(c) || ((c == '.' || c == '-' || c == '/' || c == ',') && a > 1 && isDigit(s[a-2])) || c == '+' {
			return false
		}
	}
	if b < len(s) {
		c := s[b]
		if isWord(c) || ((c == '.' || c == '-' || c == '/' || c == ',') && b+1 < len(s) && isDigit(s[b+1])) {
			return false
		}
	}
	return true
}

// Generic and country-code top-level domains other than two-letter ones,
// which all count. A short list keeps "icon@2x.png" and "pkg@1.2.3.tgz" out.
var gTLDs = map[string]bool{
	"com": true, "org": true, "net": true, "edu": true, "gov": true, "mil": true, "int": true,
	"info": true, "biz": true, "name": true, "pro": true, "mobi": true, "aero": true, "coop": true,
	"app": true, "dev": true, "cloud": true, "email": true, "tech": true, "online": true, "site": true,
	"xyz": true, "io": true, "ai": true, "company": true, "services": true, "solutions": true,
	"agency": true, "digital": true, "global": true, "group": true, "team": true, "work": true,
	"shop": true, "store": true, "blog": true, "news": true, "media": true, "live": true, "life": true,
	"world": true, "one": true, "systems": true, "network": true, "software": true, "consulting": true,
	"bank": true, "insurance": true, "health": true, "law": true, "finance": true, "capital": true,
	"london": true, "berlin": true, "paris": true, "nyc": true, "eu": true, "asia": true, "museum": true,
	"travel": true, "jobs": true, "tel": true, "cat": true, "post": true, "me": true, "page": true,
}

// Two-letter endings that are file extensions far more often than countries.
var notTLD = map[string]bool{"js": true, "ts": true, "py": true, "rs": true, "md": true, "sh": true, "gz": true}

func validEmailAt(_ *state, s string, a, b int) bool {
	if a > 0 && (isWord(s[a-1]) || s[a-1] == '.' || s[a-1] == '-' || s[a-1] == '%' || s[a-1] == '+') {
		return false
	}
	if b < len(s) && (isWord(s[b]) || s[b] == '-' || s[b] == '@') {
		return false
	}
	m := s[a:b]
	at := strings.IndexByte(m, '@')
	local, domain := m[:at], m[at+1:]
	if len(local) > 64 || len(domain) > 253 || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
	}
	tld := strings.ToLower(domain[strings.LastIndexByte(domain, '.')+1:])
	if len(tld) == 2 {
		return !notTLD[tld]
	}
	return gTLDs[tld]
}

// findCard finds card numbers in one linear pass. A run is digits joined by
// single spaces or dashes; its groups are tried left to right, the longest
// span of whole groups holding 13 to 19 digits that passes first, so that
// "4111 1111 1111 1111 2024" and two numbers side by side are both read.
func findCard(_ *state, s string, emit func(int, int)) {
	if !hasDigit(s) {
		return
	}
	var groups [][2]int
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		groups = groups[:0]
		for {
			g := i
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			groups = append(groups, [2]int{g, i})
			if i+1 < len(s) && (s[i] == ' ' || s[i] == '-') && isDigit(s[i+1]) {
				i++
				continue
			}
			break
		}
		cardGroups(s, groups, emit)
	}
}

func cardGroups(s string, groups [][2]int, emit func(int, int)) {
	for i := 0; i < len(groups); {
		found, n := -1, 0
		for j := i; j < len(groups); j++ {
			if n += groups[j][1] - groups[j][0]; n > 19 {
				break
			}
			if n >= 13 && validCardAt(s, groups[i][0], groups[j][1]) {
				found = j
			}
		}
		if found < 0 {
			i++
			continue
		}
		emit(groups[i][0], groups[found][1])
		i = found + 1
	}
}

func validCardAt(s string, a, b int) bool {
	if !bounded(s, a, b) {
		return false
	}
	m := s[a:b]
	if strings.Contains(m, " ") && strings.Contains(m, "-") {
		return false
	}
	d := alnum(m)
	return luhn(d) && cardBrand(d)
}

func validSSNAt(_ *state, s string, a, b int) bool {
	return bounded(s, a, b) && validSSN(alnum(s[a:b]))
}

// findIBAN finds IBANs. A candidate may run on into following capitals or
// a second IBAN: it is cut after its country's length, at a group boundary,
// and the search goes on from there.
func findIBAN(_ *state, s string, emit func(int, int)) {
	if !hasDigit(s) {
		return
	}
	for pos := 0; pos < len(s); {
		m := ibanRE.FindStringIndex(s[pos:])
		if m == nil {
			return
		}
		a, stop := pos+m[0], pos+m[1]
		pos = a + 1
		if a > 0 && isWord(s[a-1]) {
			continue
		}
		want := ibanLength[s[a:a+2]]
		if want == 0 {
			continue
		}
		n, end := 0, a
		for end < stop && n < want {
			if s[end] != ' ' {
				n++
			}
			end++
		}
		if n < want || (end < len(s) && isWord(s[end])) {
			continue
		}
		if validIBAN(alnum(s[a:end])) {
			emit(a, end)
			pos = end
		}
	}
}

func findIP(st *state, s string, emit func(int, int)) {
	if hasDigit(s) && strings.IndexByte(s, '.') >= 0 {
		for _, m := range ipv4RE.FindAllStringIndex(s, -1) {
			if validIPv4At(st, s, m[0], m[1]) {
				emit(m[0], m[1])
			}
		}
	}
	if strings.Count(s, ":") >= 2 {
		for _, m := range ipv6RE.FindAllStringIndex(s, -1) {
			if validIPv6At(st, s, m[0], m[1]) {
				emit(m[0], m[1])
			}
		}
	}
}

func validIPv4At(st *state, s string, a, b int) bool {
	if a > 0 {
		c := s[a-1]
		if isWord(c) || c == '.' || c == '@' || c == '-' || c == ':' {
			return false
		}
		if versionBefore(s[:a]) {
			return false
		}
	}
	if b < len(s) && (isWord(s[b]) || s[b] == '-' || (s[b] == '.' && b+1 < len(s) && isDigit(s[b+1]))) {
		return false
	}
	ip, err := netip.ParseAddr(s[a:b])
	return err == nil && ip.Is4() && st.countsIP(ip)
}

func validIPv6At(st *state, s string, a, b int) bool {
	if a > 0 && (isWord(s[a-1]) || s[a-1] == ':' || s[a-1] == '.') {
		return false
	}
	if b < len(s) && (isWord(s[b]) || s[b] == ':' || s[b] == '.') {
		return false
	}
	m := s[a:b]
	if strings.Count(m, ":") < 2 || !strings.ContainsAny(m, "0123456789abcdefABCDEF") {
		return false
	}
	ip, err := netip.ParseAddr(m)
	return err == nil && ip.Is6() && st.countsIP(ip)
}

func (st *state) countsIP(ip netip.Addr) bool {
	if st.s.privateIPs {
		return true
	}
	local := ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast()
	return !local
}

// versionBefore reports whether the text just before a dotted quad names it
// a version ("v1.2.3.4", "version 1.2.3.4", "bump version to 1.2.3.4").
func versionBefore(before string) bool {
	before = strings.TrimRight(before, " :=\t")
	i := len(before)
	for i > 0 && isLetter(before[i-1]) {
		i--
	}
	switch strings.ToLower(before[i:]) {
	case "v", "version", "ver", "release", "build", "firmware", "rev":
		return true
	}
	window := strings.ToLower(before[max(0, len(before)-24):])
	return strings.Contains(window, "version") || strings.Contains(window, "release") || strings.Contains(window, "upgrade")
}

const (
	// Bits per character a token without context must exceed.
	base64Entropy = 4.0
	// Bits per character a value assigned to a secret-sounding name must
	// exceed.
	contextEntropy = 3.0
	maxToken       = 512
)

func findSecret(_ *state, s string, emit func(int, int)) {
	for _, re := range secretShapeREs {
		for _, m := range re.FindAllStringIndex(s, -1) {
			emit(m[0], m[1])
		}
	}
	for _, m := range tokenRE.FindAllStringIndex(s, -1) {
		a, b := m[0], m[1]
		if (a > 0 && (isWord(s[a-1]) || s[a-1] == '.')) || b-a > maxToken {
			continue
		}
		if highEntropyToken(s[a:b]) && !sriDigest(s[a:b]) {
			emit(a, b)
		}
	}
	if !containsFold(s, assignWords) {
		return
	}
	for _, m := range assignRE.FindAllStringSubmatchIndex(s, -1) {
		v := s[m[2]:m[3]]
		if len(v) <= maxToken && !uuidRE.MatchString(v) && !allDigits(v) && entropy(v) >= contextEntropy {
			emit(m[2], m[3])
		}
	}
}

// highEntropyToken reports whether a base64-alphabet token looks random:
// upper- and lower-case letters and at least two digits, and more than
// base64Entropy bits per character. Hex strings (hashes, UUIDs, git object
// names) have no mixed case and never pass; paths and words have few digits.
func highEntropyToken(t string) bool {
	var up, low, dig int
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c >= 'A' && c <= 'Z':
			up++
		case c >= 'a' && c <= 'z':
			low++
		case isDigit(c):
			dig++
		}
	}
	return up >= 2 && low >= 2 && dig >= 2 && entropy(t) >= base64Entropy
}

// sriDigest reports whether a token is a subresource-integrity digest
// (sha512-<base64>), as package lock files hold by the thousand.
func sriDigest(t string) bool {
	for _, p := range []string{"sha1-", "sha256-", "sha384-", "sha512-"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// entropy is the Shannon entropy of s in bits per byte.
func entropy(s string) float64 {
	var freq [256]int
	for i := 0; i < len(s); i++ {
		freq[s[i]]++
	}
	h, n := 0.0, float64(len(s))
	for _, f := range freq {
		if f > 0 {
			p := float64(f) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

var customName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func compileCustom(c Custom) (*detector, error) {
	if !customName.MatchString(c.Name) {
		return nil, fmt.Errorf("%w %q: a name is lower-case letters, digits and underscores", ErrInvalidCustom, c.Name)
	}
	if _, ok := builtins()[c.Name]; ok {
		return nil, fmt.Errorf("%w %q: the name of a built-in detector", ErrInvalidCustom, c.Name)
	}
	if c.Mode == "" {
		c.Mode = Mask
	}
	if !c.Mode.valid() {
		return nil, fmt.Errorf("%w %q for detector %q", ErrInvalidMode, c.Mode, c.Name)
	}
	re, err := regexp.Compile(c.Pattern)
	if err != nil {
		return nil, fmt.Errorf("%w %q: pattern: %w", ErrInvalidCustom, c.Name, err)
	}
	if re.MatchString("") {
		return nil, fmt.Errorf("%w %q: pattern matches the empty string", ErrInvalidCustom, c.Name)
	}
	var valid func(*state, string, int, int) bool
	switch c.Validator {
	case "", "none":
	case "luhn":
		valid = func(_ *state, s string, a, b int) bool { return luhnAny(digits(s[a:b])) }
	case "iban":
		valid = func(_ *state, s string, a, b int) bool { return validIBAN(strings.ToUpper(alnum(s[a:b]))) }
	case "mod97":
		valid = func(_ *state, s string, a, b int) bool { return mod97(strings.ToUpper(alnum(s[a:b]))) == 1 }
	case "us_ssn":
		valid = func(_ *state, s string, a, b int) bool { return validSSN(digits(s[a:b])) }
	case "phone":
		valid = func(st *state, s string, a, b int) bool { return st.validPhone(s[a:b]) }
	default:
		return nil, fmt.Errorf("%w %q for detector %q: use luhn, iban, mod97, us_ssn, phone or none", ErrUnknownValidator, c.Validator, c.Name)
	}
	// A custom pattern's groups are the author's own: the whole match counts.
	return &detector{name: c.Name, mode: c.Mode, find: func(st *state, s string, emit func(int, int)) {
		for _, m := range re.FindAllStringIndex(s, -1) {
			if m[0] < m[1] && (valid == nil || valid(st, s, m[0], m[1])) { // \b can match empty
				emit(m[0], m[1])
			}
		}
	}}, nil
}

func digits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
