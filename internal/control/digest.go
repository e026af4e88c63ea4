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
// JCS writes every number as an IEEE 754 double, so two numbers that round
// to the same double (integers beyond 2^53, decimals with more digits than
// a double holds) would digest alike while the server may read them apart:
// a number literal whose value a double does not hold exactly is an error,
// and the call cannot be bound to an approval.
func ArgumentsDigest(args any) (string, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("arguments: %w", err)
	}
	if string(raw) == "null" {
		raw = []byte("{}")
	}
	if err := exactNumbers(raw); err != nil {
		return "", fmt.Errorf("arguments: %w", err)
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		return "", fmt.Errorf("arguments: %w", err)
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// exactNumbers refuses a number literal in raw whose exact value is not
// the value of the double JCS writes for it: an integer beyond 2^53, and
// equally 9007199254740993.0, 9.007199254740993e15 or a decimal with more
// digits than a double holds. A server reading numbers exactly would see
// another call than the one bound.
func exactNumbers(raw []byte) error {
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
		if !ok {
			continue
		}
		if err := exactNumber(string(n)); err != nil {
			return err
		}
	}
}

// maxNumberBytes bounds a number literal an approval can bind.
const maxNumberBytes = 400

func exactNumber(n string) error {
	integer := !strings.ContainsAny(n, ".eE")
	// Up to 15 digits every integer is exact.
	if integer && len(n) <= 15 {
		return nil
	}
	if len(n) > maxNumberBytes {
		return fmt.Errorf("number literal of %d bytes is too long to bind exactly; send it as a string", len(n))
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil {
		return fmt.Errorf("number %s is out of range", n)
	}
	inexact := func() error {
		if integer {
			return fmt.Errorf("integer %s is beyond what a JSON number holds exactly; send it as a string", n)
		}
		return fmt.Errorf("number %s has more precision than a JSON number holds exactly; send it as a string", n)
	}
	if f == 0 {
		// Zero only when every digit of the mantissa is: no big.Rat, whose
		// parsing of an exponent such as 1e-999999999 would be costly.
		mantissa, _, _ := strings.Cut(strings.ToLower(n), "e")
		if strings.Trim(mantissa, "-+0.") != "" {
			return inexact()
		}
		return nil
	}
	short := strconv.FormatFloat(f, 'g', -1, 64)
	if short == n {
		return nil
	}
	// f is finite and not zero, so n's exponent is bounded by its length
	// and a double's range: parsing it exactly is cheap.
	exact, ok := new(big.Rat).SetString(n)
	held, ok2 := new(big.Rat).SetString(short)
	if !ok || !ok2 {
		return fmt.Errorf("number %s is malformed", n)
	}
	if exact.Cmp(held) != 0 {
		return inexact()
	}
	return nil
}
