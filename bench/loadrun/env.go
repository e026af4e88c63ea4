package main

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// --- environment ------------------------------------------------------------

// machineInfo describes where the run happened.
type machineInfo struct {
	goVersion   string
	clientGo    string
	gomaxprocs  int
	envMaxProcs string
	numCPU      int
	cpuModel    string
	kernel      string
	pdpVersion  string
	commit      string
}

func readMachineInfo(ctx context.Context, root, pdpBin string) machineInfo {
	mi := machineInfo{
		clientGo:    runtime.Version(),
		gomaxprocs:  runtime.GOMAXPROCS(0),
		envMaxProcs: os.Getenv("GOMAXPROCS"),
		numCPU:      runtime.NumCPU(),
		cpuModel:    "unknown",
		kernel:      "unknown",
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		mi.goVersion = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				mi.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		mi.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, pdpBin, "version").Output(); err == nil {
		mi.pdpVersion = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil { //nolint:gosec // git of the repository under test
		mi.commit = strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 { //nolint:gosec // git of the repository under test
			mi.commit += " (with uncommitted changes)"
		}
	}
	return mi
}

// commandLine is the command that reproduces this run.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./bench/loadrun"}
	for _, a := range args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_./=:,@%+", r)
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
