package poison

import (
	"strings"
)

// Severity ranks a finding.
type Severity int

// Severities, lowest first.
const (
	Low Severity = iota + 1
	Medium
	High
	Critical
)

func (s Severity) String() string {
	switch s {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	case Critical:
		return "critical"
	default:
		return "unknown"
	}
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Rule ids. They are stable: policies and dashboards name them.
const (
	RuleHiddenInstructions = "poison.hidden_instructions"
	RulePromptTags         = "poison.prompt_tags"
	RuleInvisibleUnicode   = "poison.invisible_unicode"
	RuleConfusableName     = "poison.confusable_name"
	RuleShadowing          = "poison.shadowing"
	RuleCrossServerRef     = "poison.cross_server_reference"
	RuleExfiltration       = "poison.exfiltration"
	RuleEncodedBlob        = "poison.encoded_blob"
	RuleSensitivePath      = "poison.sensitive_path"
	RuleExcessiveLength    = "poison.excessive_length"
	RuleScanIncomplete     = "poison.scan_incomplete"
)

// RuleInfo describes a rule for documentation.
type RuleInfo struct {
	ID string
	// Severity is the highest severity the rule reports.
	Severity    Severity
	Description string
}

var rules = []RuleInfo{
	{RuleHiddenInstructions, High, "Imperatives aimed at the model: \"ignore previous instructions\", \"do not tell the user\", \"system prompt\", \"you are now\" (high); weaker phrases such as \"you must\", \"before using this tool\", \"always call\" only when two occur together or another rule also fires (medium)."},
	{RulePromptTags, High, "Prompt-format and emphasis tags: <IMPORTANT>, <system>, <instructions>, [INST], <|im_start|>, <<SYS>>."},
	{RuleInvisibleUnicode, Critical, "Zero-width and other invisible characters, bidi controls (high); Unicode tag characters, shown decoded (critical). Also in schema keys and names."},
	{RuleConfusableName, High, "A name mixing scripts (Latin with Cyrillic or Greek) or using compatibility forms that fold to ASCII, e.g. Cyrillic 'а' in \"reаd_file\"."},
	{RuleShadowing, High, "A tool named like a known tool of another server: the same name (medium) or a confusable one (high)."},
	{RuleCrossServerRef, Medium, "A description that names a known tool of another server, or tells the model to use a tool of another server."},
	{RuleExfiltration, Critical, "Imperatives to send, upload or forward data, files, keys or the conversation to a URL, e-mail address or phone number; changing a recipient; curl/wget to an external host; markdown images with query parameters; URLs with placeholders for conversation data. Reserved example hosts (example.com, .test, localhost) do not count."},
	{RuleEncodedBlob, Medium, "Base64 or hex runs of 64 characters or more with high entropy (high when base64 decodes to readable text; base64 of JSON, such as a JWT's parts, is not reported)."},
	{RuleSensitivePath, High, "Sensitive files named in text: ~/.ssh, id_rsa, /etc/passwd, cloud credentials, MCP client config (mcp.json); .env and shell history when asked to read or pass them."},
	{RuleExcessiveLength, Low, "A description longer than Options.MaxDescriptionBytes (default 4096 bytes)."},
	{RuleScanIncomplete, High, "The definition exceeded a scan bound (strings, bytes or nesting); the rest was not scanned, so it is treated as poisoned (high) until a person reviews it."},
}

// Rules lists the rules in a stable order.
func Rules() []RuleInfo {
	out := make([]RuleInfo, len(rules))
	copy(out, rules)
	return out
}

// field runs the rules that apply to one string.
func (s *scanner) field(f field) {
	raw := f.text
	if len(raw) > MaxStringBytes {
		raw = raw[:MaxStringBytes]
		if s.incomplete == "" {
			s.incomplete = f.where + " scanned up to " + "64 KiB"
		}
	}
	if s.scanned+len(raw) > MaxTotalBytes {
		if s.incomplete == "" {
			s.incomplete = "more than 1 MiB of text"
		}
		return
	}
	s.scanned += len(raw)

	if f.kind == kindLong && len(f.text) > s.opts.MaxDescriptionBytes {
		s.add(f, RuleExcessiveLength, Low, itoa(len(f.text))+" bytes, more than "+itoa(s.opts.MaxDescriptionBytes))
	}
	s.invisible(f, raw)
	switch f.kind {
	case kindName, kindKey:
		return
	case kindText, kindLong:
	}
	norm := normalize(raw)
	lower := strings.ToLower(norm)
	s.instructions(f, norm, lower)
	s.tags(f, norm, lower)
	s.exfiltration(f, norm)
	s.sensitivePaths(f, norm, lower)
	s.blobs(f, raw)
	s.crossServer(f, norm, lower)
}

// invisible reports invisible characters, bidi controls and tag characters.
func (s *scanner) invisible(f field, raw string) {
	var tags strings.Builder
	firstOther := -1
	var otherRune rune
	for i, r := range raw {
		switch {
		case isTagChar(r):
			if tags.Len() < MaxEvidenceBytes {
				if c := r - 0xE0000; c >= 0x20 && c < 0x7F {
					tags.WriteRune(c)
				}
			}
		case isInvisible(r) || isBidi(r):
			if firstOther < 0 {
				firstOther, otherRune = i, r
			}
		}
	}
	if tags.Len() > 0 || strings.ContainsFunc(raw, isTagChar) {
		s.add(f, RuleInvisibleUnicode, Critical, "tag characters: "+strconvQuote(tags.String()))
	}
	if firstOther >= 0 {
		what := "invisible character"
		if isBidi(otherRune) {
			what = "bidi control"
		}
		s.add(f, RuleInvisibleUnicode, High, what+": "+excerpt(raw, firstOther, firstOther+1))
	}
}
