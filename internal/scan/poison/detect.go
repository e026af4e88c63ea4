package poison

import (
	"encoding/base64"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"
)

// All patterns are RE2 (linear time), case-insensitive, and take any run of
// whitespace between words.

// strongInstructions are phrases that have no business in a description
// except to steer the model.
var strongInstructions = []pattern{
	pat(`\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+)?(?:previous|prior|above|earlier|preceding|former|original|other)\s+(?:instructions?|prompts?|messages?|rules|directions|guidelines|context)`, "ignore", "disregard", "forget", "override"),
	pat(`\b(?:do\s+not|don'?t|never|must\s+not|should\s+not)\s+(?:tell|mention|inform|notify|alert|reveal|disclose|show|let)\s+(?:this\s+|it\s+|anything\s+)?(?:to\s+)?(?:the\s+)?users?\b`, "not+user", "never+user", "don+user"),
	pat(`\b(?:do\s+not|don'?t|never)\s+(?:mention|reveal|disclose)\s+(?:this|these|that)\b`, "mention", "reveal", "disclose"),
	pat(`\bwithout\s+(?:telling|informing|notifying|alerting|asking|warning)\s+(?:the\s+)?users?\b`, "without+user"),
	pat(`\b(?:the\s+)?user\s+(?:must|should|need)\s+(?:not|never)\s+(?:know|see|be\s+(?:told|informed|notified))`, "user+not", "user+never"),
	pat(`\b(?:your|the\s+assistant'?s|the\s+model'?s|reveal|print|include|output|repeat|show|leak|disclose|share|ignore|override)\s+(?:(?:full|entire|whole|original|hidden|current)\s+)?system\s+(?:prompt|message)`, "system+prompt", "system+message"),
	pat(`\bpay\s+no\s+attention\s+to\s+(?:the\s+|any\s+|all\s+)?(?:previous|prior|above|earlier|preceding|other)`, "attention"),
	pat(`\bforget\s+(?:everything|all|anything)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before|so\s+far)`, "forget"),
	pat(`\b(?:note|instructions?|message|reminder)\s+(?:to|for)\s+(?:the\s+|all\s+)?(?:ai|llm|model|assistant|agent)s?\b`, "model", "assistant", "agent", "llm", "ai"),
	pat(`<!--\s*(?:note\s+(?:to|for)\s+)?(?:the\s+)?(?:assistant|ai|model|agent|llm|system)\b`, "<!--"),
	pat(`\b(?:secretly|quietly|silently|covertly|discreetly)\s+(?:attach|copy|send|include|read|call|add|pass|forward|upload|email|collect|invoke)\b`, "secretly", "quietly", "silently", "covertly", "discreetly"),
	pat(`\bkeep\s+(?:this|it|these)\s+(?:between\s+us|secret|hidden|confidential)`, "keep+between", "keep+secret", "keep+hidden", "keep+confidential"),
	pat(`\b(?:the\s+)?user\s+has\s+(?:already\s+)?(?:authori[sz]ed|approved|consented|allowed)\s+(?:you|this|the\s+assistant)`, "user+has"),
	pat(`\byou\s+are\s+now\b`, "are+now"),
	pat(`\bfrom\s+now\s+on,?\s+(?:you|always|never)\b`, "from+now"),
	pat(`\bnew\s+instructions?\s*:`, "instruction"),
	pat(`\b(?:hidden|secret)\s+instructions?\b`, "instruction"),
	pat(`\b(?:this|these)\s+instructions?\s+(?:is|are)\s+(?:confidential|secret|hidden)`, "instruction"),
	pat(`\b(?:your|the\s+model'?s?|the\s+assistant'?s?)\s+(?:previous\s+|original\s+)?instructions\b`, "instruction"),
}

// weakInstructions occur in honest descriptions too ("you must provide a
// path"); alone they are not reported, see scanner.finish.
var weakInstructions = []pattern{
	pat(`\byou\s+must\b`, "you+must"),
	pat(`\b(?:before|after)\s+(?:using|calling|invoking|running)\s+(?:this|any|the)\s+tool\b`, "before+tool", "after+tool"),
	pat(`\balways\s+(?:call|invoke|run|pass|include|read|send)\b`, "always"),
	pat(`\bbefore\s+(?:any|every|each)\s+(?:other\s+)?(?:tool|function)\s+call`, "before+call"),
	pat(`\bprior\s+to\s+(?:invoking|calling|using|running)\s+(?:any|this|the|every)\b`, "prior"),
	pat(`\bsystem\s+prompt\b`, "system+prompt"),
	pat(`\bwithout\s+(?:asking\s+for\s+)?(?:confirmation|approval|permission)\b`, "without+confirmation", "without+approval", "without+permission"),
	pat(`\binstead\s+of\s+(?:using|calling|invoking)\b`, "instead"),
	pat(`\b(?:very|extremely|critically)\s+important\b`, "important"),
	pat(`\botherwise\s+(?:the|this)\s+tool\s+(?:will|would|may)\s+(?:not\s+work|fail|crash|break)`, "otherwise"),
	pat(`\bwhen\s+this\s+tool\s+is\s+(?:available|present|loaded|installed)`, "when+tool"),
	pat(`\b(?:do\s+not|don'?t|never)\s+(?:use|call|invoke)\s+(?:the\s+)?[\x60"']?[\w.-]+[\x60"']?\s+tool\b`, "not+tool", "never+tool", "don+tool"),
	pat(`\b(?:this|the)\s+(?:tool|function)\s+has\s+(?:a\s+)?(?:very\s+)?important\s+side\s+effect`, "important"),
	pat(`\b(?:pass|put|include|provide)\s+(?:its|the|their)\s+(?:content|contents)\s+as\b`, "content+as"),
}

var tagRe = pat(`<\s*/?\s*(?:important|system|instructions?|sys|secret|hidden|assistant|admin|critical)\s*>|\[/?INST\]|<\|\s*(?:im_start|im_end|system|endoftext|user|assistant)\s*\|>|<</?SYS>>|\bIMPORTANT\s*:\s*\*\*|^#{1,3}\s*(?:system|instructions?)\s*:?\s*$`, "<", "inst]", "#", "important")

// pattern is a case-insensitive regexp with the words any match contains:
// the regexp runs only on text holding one of them ("a+b": both a and b),
// which keeps a scan of many patterns cheap.
type pattern struct {
	re    *regexp.Regexp
	words [][]string
}

func pat(re string, words ...string) pattern {
	p := pattern{re: regexp.MustCompile(`(?i)` + re)}
	for _, w := range words {
		p.words = append(p.words, strings.Split(w, "+"))
	}
	return p
}

// has reports whether lower, a text in lower case, holds the words.
func (p pattern) has(lower string) bool {
	for _, w := range p.words {
		all := true
		for _, part := range w {
			all = all && strings.Contains(lower, part)
		}
		if all {
			return true
		}
	}
	return false
}

// find returns the first match in text; lower is text in lower case.
func (p pattern) find(text, lower string) []int {
	if !p.has(lower) {
		return nil
	}
	return p.re.FindStringIndex(text)
}

// findAll returns up to n matches in text; lower is text in lower case.
func (p pattern) findAll(text, lower string, n int) [][]int {
	if !p.has(lower) {
		return nil
	}
	return p.re.FindAllStringIndex(text, n)
}

func (s *scanner) instructions(f field, text, lower string) {
	for _, p := range strongInstructions {
		if loc := p.find(text, lower); loc != nil {
			s.add(f, RuleHiddenInstructions, High, excerpt(text, loc[0], loc[1]))
			return
		}
	}
	n, first := 0, []int(nil)
	for _, p := range weakInstructions {
		if loc := p.find(text, lower); loc != nil {
			n++
			if first == nil {
				first = loc
			}
		}
	}
	if n > 0 {
		s.add(f, RuleHiddenInstructions, Medium, excerpt(text, first[0], first[1]))
		s.hits[len(s.hits)-1].weakKeys = n
	}
}

func (s *scanner) tags(f field, text, lower string) {
	if loc := tagRe.find(text, lower); loc != nil {
		s.add(f, RulePromptTags, High, excerpt(text, loc[0], loc[1]))
	}
}

// Exfiltration is found from the sinks back: each address (URL, e-mail,
// phone number, IP) outside reserved example and loopback names is judged
// by the sentence that leads to it, at most sinkWindow bytes. No pattern has
// a large bounded repeat, so every match is linear in its input.
const (
	sinkWindow = 240
	maxSinks   = 512
)

var (
	// toRe: the sentence ends by pointing at the sink.
	toRe = regexp.MustCompile(`(?i)\b(?:to|at|into|via|with)\s+(?:the\s+)?(?:(?:address|url|endpoint|number|server|webhook|host)\s+)?[\x60"'<(]?\s*$`)
	// sendRe takes the imperative (and tool names such as send_email), not
	// "Sends" or "Uploads": a description telling what its own tool does is
	// not an instruction to the model.
	sendRe   = regexp.MustCompile(`(?i)\b(?:send|upload|post|forward|transmit|exfiltrate|leak|copy|bcc|cc|e-?mail|mail|relay|sync|report|submit|share)(?:_\w+)?\b`)
	dataRe   = regexp.MustCompile(`(?i)\b(?:contents?|data|keys?|credentials?|conversations?|chats?|history|messages?|tokens?|secrets?|passwords?|env(?:ironment)?|files?|e-?mails?|documents?|results?|output|responses?|sidenote|notes?|logs?|cookies?|session|summary|everything|transcript|prompts?)\b`)
	redirRe  = regexp.MustCompile(`(?i)\b(?:change|set|replace|redirect|override)\s+(?:the\s+)?(?:recipient|destination|to\s+address|phone\s+number|receiver)`)
	mustRe   = regexp.MustCompile(`(?i)\b(?:e-?mails?|messages?)\s+(?:must|should|shall)\s+(?:always\s+)?(?:be\s+)?(?:sent|forwarded|bcc'?d|copied|redirected)\b`)
	fetchRe  = pat(`\b(?:curl|wget|invoke-webrequest|iwr|nc|ncat)\b`, "curl", "wget", "invoke-webrequest", "iwr", "nc")
	imageRe  = regexp.MustCompile(`!\[[^\]\n]*\]\(\s*<?$`)
	holderRe = regexp.MustCompile(`(?i)(?:\{\{?|<|\$\{?)\s*\w*(?:chat|conversation|history|context|secret|token|key|credential|env|password|content|summary|memory|note|message)\w*`)
	hostRe   = regexp.MustCompile(`(?i)(?:https?://|www\.|@)([\w.-]+)`)
)

// findSinks returns where addresses are in text: URLs (http, https, ftp and
// others with "://", and www.), e-mail addresses, phone numbers and IPv4
// addresses, in one pass.
func findSinks(text string, limit int) [][2]int {
	var out [][2]int
	for i := 0; i < len(text) && len(out) < limit; i++ {
		c := text[i]
		switch {
		case c == ':' && strings.HasPrefix(text[i:], "://"):
			start := i
			for start > 0 && i-start < 12 && isAlpha(text[start-1]) {
				start--
			}
			end := urlEnd(text, i+3)
			if start < i && end > i+3 {
				out = append(out, [2]int{start, end})
			}
			i = end - 1
		case (c == 'w' || c == 'W') && (i == 0 || !isIdentByte(text[i-1])) && len(text) >= i+4 && strings.EqualFold(text[i:i+4], "www."):
			end := urlEnd(text, i+4)
			out = append(out, [2]int{i, end})
			i = end - 1
		case c == '@':
			start := i
			for start > 0 && i-start < 64 && isMailByte(text[start-1]) {
				start--
			}
			end, dots := i+1, 0
			for end < len(text) && (isIdentByte(text[end])) {
				if text[end] == '.' {
					dots++
				}
				end++
			}
			for end > i+1 && text[end-1] == '.' {
				end--
				dots--
			}
			if start < i && dots > 0 {
				out = append(out, [2]int{start, end})
			}
			i = max(end-1, i)
		case c >= '0' && c <= '9' || c == '+' && i+1 < len(text) && text[i+1] >= '0' && text[i+1] <= '9':
			if i > 0 && isIdentByte(text[i-1]) && text[i-1] != '.' && text[i-1] != '-' {
				// Inside a word: skip the rest of the digits.
				for i+1 < len(text) && text[i+1] >= '0' && text[i+1] <= '9' {
					i++
				}
				continue
			}
			end, digits, dots := i, 0, 0
			for end < len(text) && strings.IndexByte("0123456789 ().-+", text[end]) >= 0 {
				switch {
				case text[end] >= '0' && text[end] <= '9':
					digits++
				case text[end] == '.':
					dots++
				}
				end++
			}
			for end > i && strings.IndexByte("0123456789", text[end-1]) < 0 {
				end--
			}
			if digits >= 7 || (dots == 3 && digits >= 4) {
				out = append(out, [2]int{i, end})
			}
			i = max(end-1, i)
		}
	}
	return out
}

func urlEnd(text string, i int) int {
	for i < len(text) && !strings.ContainsRune(" \t\n\r)\"'`>]", rune(text[i])) && text[i] >= 0x20 {
		i++
	}
	return i
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isMailByte(c byte) bool { return isIdentByte(c) || c == '+' }

// sentenceStart returns where the sentence holding the end of s starts: after
// the last newline, or the last dot, ! or ? followed by white space.
func sentenceStart(s string) int {
	for i := len(s) - 1; i > 0; i-- {
		switch s[i] {
		case '\n':
			return i + 1
		case ' ', '\t':
			if c := s[i-1]; c == '.' || c == '!' || c == '?' {
				return i + 1
			}
		}
	}
	return 0
}

func (s *scanner) exfiltration(f field, text string) {
	sinks := findSinks(text, maxSinks+1)
	if len(sinks) > maxSinks {
		sinks = sinks[:maxSinks]
		if s.incomplete == "" {
			s.incomplete = f.where + ": addresses past the first " + itoa(maxSinks) + " not judged"
		}
	}
	for _, loc := range sinks {
		sink := text[loc[0]:loc[1]]
		if !external(sink) {
			continue
		}
		before := text[max(loc[0]-sinkWindow, 0):loc[0]]
		sentence := before[sentenceStart(before):]
		line := before[strings.LastIndexByte(before, '\n')+1:]
		isURL := strings.Contains(sink, "://")
		pointsAt := toRe.MatchString(sentence)
		exfil := false
		switch {
		case pointsAt && sentDataBefore(sentence):
			exfil = true
		case pointsAt && (redirRe.MatchString(sentence) || mustRe.MatchString(sentence)):
			exfil = true
		case (isURL || strings.Count(sink, ".") == 3) && fetchRe.find(line, strings.ToLower(line)) != nil:
			exfil = true
		case isURL && strings.Contains(sink, "?") && strings.Contains(sink, "=") && imageRe.MatchString(line):
			exfil = true
		case isURL && holderRe.MatchString(sink):
			exfil = true
		}
		if exfil {
			// Show from the verb when there is one: the sink comes soon after.
			from := loc[0] - len(sentence)
			if v := sendRe.FindStringIndex(sentence); v != nil && loc[0]-(from+v[0]) < MaxEvidenceBytes {
				from += v[0]
			} else if loc[0]-from > MaxEvidenceBytes/2 {
				from = loc[0] - MaxEvidenceBytes/2
				for from < loc[0] && !utf8.RuneStart(text[from]) {
					from++
				}
			}
			s.add(f, RuleExfiltration, Critical, text[from:loc[1]])
			return
		}
	}
}

// sentDataBefore reports a sending verb followed by a data word.
func sentDataBefore(sentence string) bool {
	v := sendRe.FindStringIndex(sentence)
	return v != nil && dataRe.MatchString(sentence[v[0]:])
}

// external reports whether an address in a match points outside reserved
// example and loopback names.
func external(m string) bool {
	hosts := hostRe.FindAllStringSubmatch(m, -1)
	if len(hosts) == 0 {
		return true // a phone number or an IP address
	}
	for _, h := range hosts {
		host := strings.ToLower(strings.TrimRight(h[1], "."))
		if !reservedHost(host) {
			return true
		}
	}
	return false
}

func reservedHost(host string) bool {
	for _, d := range []string{"example.com", "example.org", "example.net", "example", "test", "invalid", "localhost"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return host == "127.0.0.1"
}

var (
	// alwaysPathRe names files no honest description asks for: private keys,
	// the shadow file and MCP clients' own configuration.
	alwaysPathRe = pat(`/etc/shadow\b|\bmcp\.json\b|claude_desktop_config\.json|\.cursor/mcp|\bwallet\.dat\b`, "shadow", "mcp", "claude_desktop", "wallet")
	// pathRe names sensitive files an honest description may mention ("uses
	// ~/.kube/config"); they count when an imperative to read or pass them
	// comes shortly before.
	pathRe = pat(`\bid_(?:rsa|dsa|ecdsa|ed25519)\b|~/\.ssh\b|\.ssh/|/etc/(?:passwd|sudoers)\b|\.aws/credentials|\.kube/config|\.git-credentials|\.netrc\b|\.npmrc\b|\.pypirc\b|\.docker/config\.json|\.gnupg\b|\.config/gcloud|\bauthorized_keys\b|\bknown_hosts\b|(?:^|[\s"'\x60(/~])\.env\b|\.bash_history|\.zsh_history|\bcredentials\.json\b|\bsecrets?\.(?:json|ya?ml|toml)\b|\.cursor/`, "ssh", "id_", "/etc/", ".aws", ".kube", "credentials", ".netrc", ".npmrc", ".pypirc", ".docker",
		".gnupg", "gcloud", "authorized_keys", "known_hosts", ".env", "history", "secret", ".cursor")
	readVerbRe = regexp.MustCompile(`(?i)\b(?:read|cat|open|load|include|attach|pass|send|upload|paste|copy|append|provide|print|dump|post|curl|wget|contents?\s+of|text\s+of)\b`)
)

func (s *scanner) sensitivePaths(f field, text, lower string) {
	if loc := alwaysPathRe.find(text, lower); loc != nil {
		s.add(f, RuleSensitivePath, High, excerpt(text, loc[0], loc[1]))
		return
	}
	for _, loc := range pathRe.findAll(text, lower, 16) {
		from := max(loc[0]-80, 0)
		if readVerbRe.MatchString(text[from:loc[0]]) {
			s.add(f, RuleSensitivePath, High, excerpt(text, loc[0], loc[1]))
			return
		}
	}
}

// blobs reports long high-entropy base64 or hex runs.
func (s *scanner) blobs(f field, text string) {
	const minRun = 64
	start := -1
	for i := 0; i <= len(text); i++ {
		if i < len(text) && isB64Byte(text[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start < 0 {
			continue
		}
		run := text[start:i]
		for i < len(text) && text[i] == '=' && len(run) < len(text[start:]) {
			i++
			run = text[start:i]
		}
		if len(run) >= minRun && !hashPrefixed(text[:start]) {
			if ev, sev, ok := blob(run); ok {
				s.add(f, RuleEncodedBlob, sev, ev)
				return
			}
		}
		start = -1
	}
}

func isB64Byte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
}

func hashPrefixed(before string) bool {
	before = strings.ToLower(before[max(len(before)-10, 0):])
	return strings.HasSuffix(before, "sha256:") || strings.HasSuffix(before, "sha512:") ||
		strings.HasSuffix(before, "sha1:") || strings.HasSuffix(before, "sha256=")
}

// blob judges one run: hex with entropy ≥ 3 bits per character, or base64
// using upper, lower and digits with entropy ≥ 4.5. Base64 that decodes to
// readable text is reported high, with the text as evidence.
func blob(run string) (string, Severity, bool) {
	isHex := true
	var upper, lower, digit bool
	for i := 0; i < len(run); i++ {
		c := run[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			upper = upper || c <= 'F'
			lower = lower || c >= 'a'
		default:
			isHex = false
			upper = upper || c >= 'A' && c <= 'Z'
			lower = lower || c >= 'a' && c <= 'z'
		}
	}
	e := entropy(run)
	if isHex && digit {
		if e >= 3.0 {
			return "hex run of " + itoa(len(run)) + " chars: " + run, Medium, true
		}
		return "", 0, false
	}
	if !upper || !lower || !digit || e < 4.5 {
		return "", 0, false
	}
	if txt, ok := decodesToText(run); ok {
		// JSON (a JWT's claims, an example payload) is data, not a message.
		if t := strings.TrimSpace(txt); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
			return "", 0, false
		}
		return "base64 decodes to: " + strconvQuote(txt), High, true
	}
	return "base64 run of " + itoa(len(run)) + " chars: " + run, Medium, true
}

func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	var h float64
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

func decodesToText(run string) (string, bool) {
	run = strings.TrimRight(run, "=")
	if len(run) > 4096 {
		run = run[:4096]
	}
	var b []byte
	var err error
	if strings.ContainsAny(run, "-_") {
		b, err = base64.RawURLEncoding.DecodeString(run[:len(run)/4*4])
	} else {
		b, err = base64.RawStdEncoding.DecodeString(run[:len(run)/4*4])
	}
	if err != nil || !utf8.Valid(b) {
		return "", false
	}
	printable := 0
	for _, r := range string(b) {
		if r >= 0x20 && r < 0x7F || r == '\n' || r == '\t' {
			printable++
		}
	}
	if printable*10 < utf8.RuneCount(b)*9 {
		return "", false
	}
	return string(b[:min(len(b), MaxEvidenceBytes)]), true
}
