package control

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	"github.com/gowebpki/jcs"
)

// ArgumentsDigest is the hex SHA-256 of args in RFC 8785 (JCS) canonical
// JSON: the same arguments give the same digest whatever their key order
// or number spelling. Absent arguments (nil, a nil map, JSON null) digest
// as {}.
//
// JCS writes every number as an IEEE 754 double, so two integers beyond
// 2^53 that round to the same double would digest alike while the server
// may read them apart: an integer literal a double cannot hold exactly is
// an error, and the call cannot be bound to an approval.
func ArgumentsDigest(args any) (string, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("arguments: %w", err)
	}
	if string(raw) == "null" {
		raw = []byte("{}")
	}
	if err := exactIntegers(raw); err != nil {
		return "", fmt.Errorf("arguments: %w", err)
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		return "", fmt.Errorf("arguments: %w", err)
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// exactIntegers refuses an integer literal in raw that a float64 does not
// hold exactly.
func exactIntegers(raw []byte) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		n, ok := tok.(json.Number)
		// Up to 15 digits every integer is exact.
		if !ok || len(n) <= 15 || strings.ContainsAny(string(n), ".eE") {
			continue
		}
		exact, ok := new(big.Int).SetString(string(n), 10)
		if !ok {
			return fmt.Errorf("number %s is malformed", n)
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return fmt.Errorf("number %s is out of range", n)
		}
		if held, acc := new(big.Float).SetFloat64(f).Int(nil); acc != big.Exact || held.Cmp(exact) != 0 {
			return fmt.Errorf("integer %s is beyond what a JSON number holds exactly; send it as a string", n)
		}
	}
}
