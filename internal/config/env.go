package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

// EnvPrefix starts the name of every environment variable that sets a flag.
const EnvPrefix = "VERDICT_"

// EnvName is the environment variable that sets a flag: --grpc-addr is
// VERDICT_GRPC_ADDR.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ParseArgsAndEnv parses args into fs, then sets every flag the command
// line left out from its VERDICT_ environment variable (see ApplyEnv).
// Errors and warnings go to fs.Output(), as fs.Parse does.
func ParseArgsAndEnv(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	warnings, err := ApplyEnv(fs, os.Environ())
	for _, w := range warnings {
		fmt.Fprintf(fs.Output(), "%s: warning: %s\n", fs.Name(), w)
	}
	if err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
	}
	return err
}

// ApplyEnv sets each flag of fs that was not given on the command line from
// its environment variable (EnvName), so that the command line wins over the
// environment, which wins over the config file (Resolve applies every set
// flag over the file), which wins over the defaults.
//
// environ is in the form of os.Environ; an empty value counts as unset.
// For a repeatable flag (--bundle,
// --mcp-route, --jwt-audience, --allowed-peer) commas separate the values.
// A value a flag refuses is an error naming the variable. A VERDICT_
// variable that names no flag of fs is not an error (another command may
// read it) but is returned as a warning with the closest flag's variable.
func ApplyEnv(fs *flag.FlagSet, environ []string) (warnings []string, err error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	byEnv := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[EnvName(f.Name)] = f })

	var errs []error
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		f := byEnv[name]
		if f == nil {
			warnings = append(warnings, unknownEnv(name, byEnv))
			continue
		}
		if given[f.Name] || value == "" {
			continue // an empty variable is unset, as templates often leave them
		}
		if err := setFromEnv(fs, f, value); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, value, err))
		}
	}
	return warnings, errors.Join(errs...)
}

func setFromEnv(fs *flag.FlagSet, f *flag.Flag, value string) error {
	values := []string{value}
	switch f.Value.(type) {
	case *bundleList, *routeList:
		values = nil
		for _, v := range strings.Split(value, ",") {
			if v = strings.TrimSpace(v); v != "" {
				values = append(values, v)
			}
		}
		if len(values) == 0 {
			return fmt.Errorf("--%s: no value", f.Name)
		}
	}
	for _, v := range values {
		if err := fs.Set(f.Name, v); err != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				return fmt.Errorf("--%s wants true or false", f.Name)
			}
			return fmt.Errorf("--%s: %w", f.Name, err)
		}
	}
	return nil
}

func unknownEnv(name string, known map[string]*flag.Flag) string {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	msg := name + " names no flag of this command"
	for i := range names {
		names[i] = strings.TrimPrefix(names[i], EnvPrefix)
	}
	if s := closest(strings.TrimPrefix(name, EnvPrefix), names); s != "" {
		msg += "; did you mean " + EnvPrefix + s + "?"
	}
	return msg
}

// closest returns the candidate nearest to s by edit distance, or "" when
// none is near enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := editDistance(ls, lc)
		if len(ls) >= 3 && (strings.Contains(lc, ls) || strings.Contains(ls, lc)) {
			d = min(d, 1) // a part of the name, or the name with more
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, 2*len(s)/3) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
