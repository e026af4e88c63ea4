package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Pin returns crypto.sha256(json.marshal(entry)) as the policy library
// computes it for a list entry (lists.rego): the entry as an OPA value,
// serialized with sorted keys, no spaces and Go's HTML escaping of <, >
// and &, then hashed. Numbers keep the text they were decoded from
// (json.Number), as OPA keeps them.
func Pin(entry map[string]any) (string, error) {
	v, err := ast.InterfaceToValue(entry)
	if err != nil {
		return "", fmt.Errorf("catalog: pin: %w", err)
	}
	j, err := ast.JSON(v)
	if err != nil {
		return "", fmt.Errorf("catalog: pin: %w", err)
	}
	raw, err := json.Marshal(j)
	if err != nil {
		return "", fmt.Errorf("catalog: pin: %w", err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}
