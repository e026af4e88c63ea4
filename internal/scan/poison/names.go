package poison

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// confusables maps Cyrillic and Greek letters that look like Latin ones to
// those Latin letters (a small subset of Unicode's confusables.txt: the
// letters seen in look-alike names).
var confusables = map[rune]rune{
	// Cyrillic.
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'з': '3', 'і': 'i', 'ї': 'i', 'ј': 'j', 'к': 'k',
	'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's',
	'ԁ': 'd', 'һ': 'h', 'ӏ': 'l', 'ԛ': 'q', 'ԝ': 'w', 'ց': 'g', 'ь': 'b', 'п': 'n', 'г': 'r',
	'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H', 'О': 'O', 'Р': 'P', 'С': 'C',
	'Т': 'T', 'У': 'Y', 'Х': 'X', 'Ѕ': 'S', 'І': 'I', 'Ј': 'J', 'Ԁ': 'D', 'Ԛ': 'Q', 'Ԝ': 'W',
	// Greek.
	'α': 'a', 'β': 'b', 'γ': 'y', 'ε': 'e', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p',
	'τ': 't', 'υ': 'u', 'χ': 'x', 'ω': 'w', 'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H',
	'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N', 'Ο': 'O', 'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
}

func foldConfusables(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { _, ok := confusables[r]; return ok }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if l, ok := confusables[r]; ok {
			return l
		}
		return r
	}, s)
}

// skeleton folds a name to what it looks like: NFKC, invisible characters
// dropped, look-alikes folded to Latin, lower case, digits 0 and 1 read as o
// and l, and separators (_ - . space) dropped, so "send_email", "sendEmail"
// and "ѕend-emaіl" share one skeleton.
func skeleton(name string) string {
	s := strings.ToLower(normalize(name))
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ', '/', ':':
			return -1
		case '0':
			return 'o'
		case '1':
			return 'l'
		}
		return r
	}, s)
}

// scriptOf names the script of a letter, "" for other runes.
func scriptOf(r rune) string {
	switch {
	case !unicode.IsLetter(r):
		return ""
	case unicode.Is(unicode.Latin, r):
		return "Latin"
	case unicode.Is(unicode.Cyrillic, r):
		return "Cyrillic"
	case unicode.Is(unicode.Greek, r):
		return "Greek"
	case unicode.Is(unicode.Armenian, r):
		return "Armenian"
	case unicode.Is(unicode.Cherokee, r):
		return "Cherokee"
	default:
		return "other"
	}
}

// names runs the name rules: confusable characters and shadowing.
func (s *scanner) names() {
	f := field{where: "/name", text: s.def.Name, order: 0}
	name := s.def.Name
	if len(name) > MaxStringBytes {
		name = name[:MaxStringBytes]
	}
	scripts := map[string]bool{}
	for _, r := range name {
		if sc := scriptOf(r); sc != "" {
			scripts[sc] = true
		}
	}
	folded := norm.NFKC.String(name)
	switch {
	case len(scripts) > 1:
		list := make([]string, 0, len(scripts))
		for sc := range scripts {
			list = append(list, sc)
		}
		slices.Sort(list)
		s.add(f, RuleConfusableName, High, strings.Join(list, "+")+": "+strconvQuote(name))
	case folded != name && isASCII(folded):
		s.add(f, RuleConfusableName, High, "compatibility forms: "+strconvQuote(name))
	case len(scripts) == 1 && !scripts["Latin"] && isASCII(skeleton(name)) && skeleton(name) != "":
		// Wholly Cyrillic or Greek, but every letter is a Latin look-alike.
		s.add(f, RuleConfusableName, High, "looks Latin: "+strconvQuote(name))
	}

	if s.def.Kind != "" && s.def.Kind != "tool" {
		return
	}
	sk := skeleton(name)
	if sk == "" {
		return
	}
	for _, server := range sortedServers(s.opts.KnownTools) {
		if server == s.def.Server {
			continue
		}
		for _, known := range s.opts.KnownTools[server] {
			if known == name {
				// Plain words ("search", "query") recur across honest servers.
				if distinctive(name) {
					s.add(f, RuleShadowing, Medium, "same name as "+server+"/"+known)
				}
			} else if skeleton(known) == sk {
				s.add(f, RuleShadowing, High, strconvQuote(name)+" looks like "+server+"/"+known)
			}
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func sortedServers(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// crossServerRe finds "the X tool of/from/on server Y" and "another/other
// server's tool" shapes.
var crossServerRe = pat(`\b(?:use|call|invoke|run|prefer|through|via)\s+(?:the\s+)?[\x60"']?[\w.-]+[\x60"']?\s+tool\s+(?:of|from|on|in|provided\s+by)\s+(?:the\s+)?[\x60"']?[\w.-]+[\x60"']?\s*(?:mcp\s+)?server|\b(?:tools?\s+(?:of|from|on)\s+(?:an)?other\s+(?:mcp\s+)?servers?|(?:an)?other\s+(?:mcp\s+)?servers?'?s?\s+tools?)\b`, "tool+server")

// crossServer reports references to other servers' tools.
func (s *scanner) crossServer(f field, text, lower string) {
	if loc := crossServerRe.find(text, lower); loc != nil {
		s.add(f, RuleCrossServerRef, Medium, excerpt(text, loc[0], loc[1]))
		return
	}
	if len(s.opts.KnownTools) == 0 {
		return
	}
	own := map[string]bool{s.def.Name: true}
	for _, n := range s.opts.KnownTools[s.def.Server] {
		own[n] = true
	}
	known := map[string]string{} // name -> server
	for _, server := range sortedServers(s.opts.KnownTools) {
		if server == s.def.Server {
			continue
		}
		for _, n := range s.opts.KnownTools[server] {
			if !own[n] && distinctive(n) {
				if _, ok := known[n]; !ok {
					known[n] = server
				}
			}
		}
	}
	if len(known) == 0 {
		return
	}
	// Tokens are identifier runs; a token names a tool when it is the name or
	// ends with it after a separator (mcp_whatsapp_send_message).
	start := -1
	for i := 0; i <= len(text); i++ {
		if i < len(text) && isIdentByte(text[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start < 0 {
			continue
		}
		tok := strings.Trim(text[start:i], ".-")
		if server, ok := matchKnown(tok, known); ok {
			s.add(f, RuleCrossServerRef, Medium, "names "+server+"/"+tok+": "+excerpt(text, start, i))
			return
		}
		start = -1
	}
}

func matchKnown(tok string, known map[string]string) (string, bool) {
	if len(tok) > 256 {
		return "", false // no tool name is this long; bounds the suffix search
	}
	if server, ok := known[tok]; ok {
		return server, true
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] == '_' || tok[i] == '.' || tok[i] == '-' {
			if server, ok := known[tok[i+1:]]; ok {
				return server, true
			}
		}
	}
	return "", false
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// distinctive reports tool names unlikely to occur as ordinary words: they
// have a separator or an inner capital ("send_email", "getUser"), so plain
// "search" or "fetch" in prose does not count as naming another server's tool.
func distinctive(name string) bool {
	if len(name) < 4 {
		return false
	}
	if strings.ContainsAny(name, "_-.") {
		return true
	}
	for i := 1; i < len(name); i++ {
		if name[i] >= 'A' && name[i] <= 'Z' {
			return true
		}
	}
	return false
}
