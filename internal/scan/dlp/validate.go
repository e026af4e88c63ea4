package dlp

import (
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// luhn reports whether a 13 to 19 digit string passes the Luhn checksum.
func luhn(d string) bool { return len(d) >= 13 && len(d) <= 19 && luhnAny(d) }

func luhnAny(d string) bool {
	if len(d) < 2 {
		return false
	}
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		if !isDigit(d[i]) {
			return false
		}
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

func prefix(d string, n int) int {
	v := 0
	for i := 0; i < n && i < len(d); i++ {
		v = v*10 + int(d[i]-'0')
	}
	return v
}

// cardBrand reports whether the digits start with a known issuer
// identification number and have a length that brand issues.
func cardBrand(d string) bool {
	n := len(d)
	p2, p3, p4 := prefix(d, 2), prefix(d, 3), prefix(d, 4)
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649: // Discover
		return n >= 16 && n <= 19
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16 && n <= 19
	case p2 == 36, p3 >= 300 && p3 <= 305: // Diners Club
		return n >= 14 && n <= 19
	}
	return false
}

// ibanLength is the IBAN length per country: the SEPA countries and a few
// others that are often seen.
var ibanLength = map[string]int{
	"AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
	"EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21, "HU": 28,
	"IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
	"NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
	"VA": 22, "AL": 28, "AE": 23, "BA": 20, "BR": 29, "FO": 18, "GL": 18, "IL": 23, "ME": 22,
	"MK": 19, "RS": 22, "SA": 24, "TR": 26, "UA": 29, "XK": 20, "LB": 28, "JO": 30, "KW": 30,
	"QA": 29, "MU": 30, "TN": 24, "PK": 24, "EG": 29,
}

// validIBAN checks an IBAN without spaces: length for its country, check
// digits 02 to 98, and ISO 13616 mod 97.
func validIBAN(s string) bool {
	if len(s) < 5 || ibanLength[s[:2]] != len(s) || !isDigit(s[2]) || !isDigit(s[3]) {
		return false
	}
	if cd := prefix(s[2:4], 2); cd < 2 || cd > 98 {
		return false
	}
	return mod97(s[4:]+s[:4]) == 1
}

// mod97 is the ISO 7064 mod 97-10 remainder of an upper-case alphanumeric
// string, letters counting as 10 to 35; -1 for any other character.
func mod97(s string) int {
	if s == "" {
		return -1
	}
	r := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			r = (r*100 + int(c-'A') + 10) % 97
		default:
			return -1
		}
	}
	return r
}

// validSSN checks nine digits against the SSA's rules: area not 000, 666 or
// 900-999, group not 00, serial not 0000, and not a number known to be void
// (published in advertising or used as an example).
func validSSN(d string) bool {
	if len(d) != 9 {
		return false
	}
	area, group, serial := prefix(d, 3), prefix(d[3:], 2), prefix(d[5:], 4)
	if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
		return false
	}
	switch d {
	case "078051120", "219099999", "123456789", "457555462":
		return false
	}
	return true
}

// findPhone finds phone-number candidates in one linear pass: runs of
// digits, '+', parentheses and the separators space, '.', '-' and '/', with
// at most two separators in a row, trimmed to start at '+', '(' or a digit
// and to end at a digit.
func findPhone(st *state, s string, emit func(int, int)) {
	if !hasDigit(s) {
		return
	}
	for i := 0; i < len(s); {
		if !phoneChar(s[i]) {
			i++
			continue
		}
		start, seps := i, 0
		for i < len(s) && phoneChar(s[i]) {
			if s[i] == '+' && i > start {
				break // a second number starts
			}
			if isDigit(s[i]) || s[i] == '(' || s[i] == ')' || s[i] == '+' {
				seps = 0
			} else if seps++; seps > 2 {
				break
			}
			i++
		}
		a, b := start, i
		for a < b && !isDigit(s[a]) && s[a] != '+' && s[a] != '(' {
			a++
		}
		for b > a && !isDigit(s[b-1]) {
			b--
		}
		if b-a >= 7 && validPhoneAt(st, s, a, b) {
			emit(a, b)
		}
		if i == start {
			i++
		}
	}
}

func phoneChar(c byte) bool {
	return isDigit(c) || c == ' ' || c == '.' || c == '-' || c == '/' || c == '(' || c == ')' || c == '+'
}

func validPhoneAt(st *state, s string, a, b int) bool {
	if a > 0 {
		c := s[a-1]
		if isWord(c) || c == '.' || c == '-' || c == '/' || c == ':' || c == '#' || c == '$' {
			return false
		}
	}
	if b < len(s) {
		c := s[b]
		if isWord(c) || c == '%' || ((c == '.' || c == '-' || c == '/' || c == ':' || c == ',') && b+1 < len(s) && isDigit(s[b+1])) {
			return false
		}
	}
	m := s[a:b]
	if strings.Count(m, "+") > 1 || strings.LastIndexByte(m, '+') > 0 || strings.Count(m, "(") != strings.Count(m, ")") {
		return false
	}
	if !strings.ContainsAny(m, "+( .-/") {
		return false // bare digit runs are order numbers and ids far more often
	}
	return st.validPhone(m)
}

// validPhone rejects shapes that are something else and asks libphonenumber
// whether the rest is a valid number in the configured region.
func (st *state) validPhone(m string) bool {
	digits := alnum(m)
	if len(digits) < 7 || len(digits) > 15 || len(digits) != countDigits(m) {
		return false
	}
	if looksLikeDate(m) || dottedGroups(m) >= 3 || yearAndSerial(m) {
		return false
	}
	if m[0] != '+' && len(digits) >= 13 && luhn(digits) && cardBrand(digits) {
		return false
	}
	if st.phoneLeft <= 0 {
		if st.firstPass {
			st.skipped.Candidates++
		}
		return false
	}
	st.phoneLeft--
	num, err := phonenumbers.Parse(m, st.s.region)
	return err == nil && phonenumbers.IsValidNumber(num)
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

// dottedGroups counts the dots when dots are the only separator: versions
// and addresses (1.2.3.4, 2024.01.15.7) have three or more.
func dottedGroups(m string) int {
	if strings.ContainsAny(m, " -/()+") {
		return 0
	}
	return strings.Count(m, ".")
}

// looksLikeDate reports whether m is three groups of digits that read as a
// date: YYYY-MM-DD or DD/MM/YYYY and the like, any separator.
func looksLikeDate(m string) bool {
	groups := strings.FieldsFunc(m, func(r rune) bool { return r < '0' || r > '9' })
	if len(groups) != 3 {
		return false
	}
	l0, l1, l2 := len(groups[0]), len(groups[1]), len(groups[2])
	switch {
	case l0 == 4 && l1 <= 2 && l2 <= 2:
		return prefix(groups[1], 2) >= 1 && prefix(groups[1], 2) <= 12
	case l0 <= 2 && l1 <= 2 && (l2 == 4 || l2 == 2):
		return true
	}
	return false
}

// yearAndSerial reports whether m is a year and a serial number, the shape of
// invoice and ticket numbers (2023-000123): four digits starting 19 or 20, one
// separator, one more group.
func yearAndSerial(m string) bool {
	groups := strings.FieldsFunc(m, func(r rune) bool { return r < '0' || r > '9' })
	return len(groups) == 2 && len(groups[0]) == 4 && (groups[0][:2] == "19" || groups[0][:2] == "20") && isDigit(m[0])
}
