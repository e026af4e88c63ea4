package control

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// Id prefixes, one per kind of record.
const (
	approvalPrefix   = "apr_"
	grantPrefix      = "grt_"
	quarantinePrefix = "qua_"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns prefix and 128 random bits in lower-case base32: 26
// characters nobody can guess.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// validID reports whether id is an id of the kind prefix names, so a
// malformed one is refused before any lookup.
func validID(id, prefix string) bool {
	if len(id) != len(prefix)+26 || !strings.HasPrefix(id, prefix) {
		return false
	}
	for _, c := range id[len(prefix):] {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}
