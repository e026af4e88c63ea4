//go:build linux

package guard

import (
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
)

// guardedInput returns a 16 MiB input whose first page holds head followed
// by body repeated to fill the page, and whose other pages cannot be read:
// touching them faults. It proves how far a scan reads without any test
// hook.
func guardedInput(t *testing.T, head, body string) []byte {
	t.Helper()
	page := os.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 16<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	copy(mem[:page], head+strings.Repeat(body, page/len(body)+1))
	if err := syscall.Mprotect(mem[page:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	return mem
}

// TestScanJSONStopsEarly checks, on 16 MiB inputs whose bytes past the first
// page are unreadable, that ScanJSON refuses them after reading only that
// page: the work past the size check is bounded by the limits, not by the
// input.
func TestScanJSONStopsEarly(t *testing.T) {
	tests := []struct {
		name       string
		head, body string
		limits     JSONLimits
		code       string
	}{
		{"depth bomb", "", "[", JSONLimits{}, CodeTooDeep},
		{"object depth bomb", "", `{"a":`, JSONLimits{}, CodeTooDeep},
		{"long string", `"`, "a", JSONLimits{MaxStringBytes: 1000}, CodeStringTooLong},
		{"long escaped string", `"`, `\u00e9\n`, JSONLimits{MaxStringBytes: 1000}, CodeStringTooLong},
		{"many elements", "[", "[],", JSONLimits{MaxElements: 100}, CodeTooManyElements},
		{"wide array", "[", "1,", JSONLimits{MaxMembers: 100}, CodeTooManyMembers},
		{"wide object", "{", `"a":1,`, JSONLimits{MaxMembers: 100}, CodeTooManyMembers},
		{"duplicate key", "{", `"a":1,`, JSONLimits{RejectDuplicateKeys: true}, CodeDuplicateKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := guardedInput(t, tt.head, tt.body)
			tt.limits.MaxBytes = 32 << 20
			old := debug.SetPanicOnFault(true)
			defer debug.SetPanicOnFault(old)
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("ScanJSON read past the first page: %v", r)
				}
			}()
			v := ScanJSON(in, tt.limits)
			if v == nil || v.Code != tt.code {
				t.Fatalf("ScanJSON = %v, want %s", v, tt.code)
			}
		})
	}
}

// TestGuardedInputFaults checks the harness itself: reading the whole
// guarded input must fault, or TestScanJSONStopsEarly would prove nothing.
func TestGuardedInputFaults(t *testing.T) {
	in := guardedInput(t, "", "[")
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if recover() == nil {
			t.Fatal("reading past the first page did not fault")
		}
	}()
	var sum byte
	for _, c := range in {
		sum += c
	}
	t.Fatalf("read all of the guarded input (sum %d)", sum)
}
