//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it.

package guard

import "testing"

func TestScanJSONAllocations(t *testing.T) {
	body := mcpToolsCallBody()
	for _, l := range []JSONLimits{{}, {RejectDuplicateKeys: true}} {
		_ = ScanJSON(body, l) // warm the pool
		if n := testing.AllocsPerRun(100, func() { _ = ScanJSON(body, l) }); n > 0 {
			t.Errorf("ScanJSON(limits %+v) allocates %.1f times per call, want 0", l, n)
		}
	}
}

func TestNormalizePathAllocations(t *testing.T) {
	for _, p := range []string{"/api/v1/users/42", "/api/v1/users/42?limit=5", "*"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = NormalizePath(p) }); n > 0 {
			t.Errorf("NormalizePath(%q) allocates %.1f times per call, want 0", p, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = CheckPath("/a/caf%C3%A9/../b?c", PathLimits{}) }); n > 0 {
		t.Errorf("CheckPath allocates %.1f times per call, want 0", n)
	}
}

func TestCheckHeadersAllocations(t *testing.T) {
	h := map[string]string{":path": "/mcp", ":method": "POST", "authorization": "Bearer x", "content-type": "application/json"}
	if n := testing.AllocsPerRun(100, func() { _ = CheckHeaders(h, HeaderLimits{}) }); n > 0 {
		t.Errorf("CheckHeaders allocates %.1f times per call, want 0", n)
	}
}
