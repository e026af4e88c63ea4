package app

import (
	"fmt"
	"io"

	"github.com/verdictpdp/verdict/internal/config"
)

// writeConfig is `pdp serve --print-config`: the effective configuration
// as YAML, secrets masked.
func writeConfig(cfg config.Config, stdout, stderr io.Writer) int {
	if err := config.WriteYAML(stdout, cfg); err != nil {
		fmt.Fprintf(stderr, "pdp serve: %v\n", err)
		return 1
	}
	return 0
}
