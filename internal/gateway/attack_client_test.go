package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// atkStdlibUpstream decodes requests the way servers built on
// encoding/json structs do (mark3labs/mcp-go, Go SDK before it turned off
// case-insensitive matching, most hand-written Go servers): member names
// match struct tags case-insensitively (with Unicode simple folding), the
// last match winning. It records the tool names it would run.
type atkStdlibUpstream struct {
	mu  sync.Mutex
	ran []string
}

func (u *atkStdlibUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		} `json:"params"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	if req.Method == "tools/call" {
		u.mu.Lock()
		u.ran = append(u.ran, req.Params.Name)
		u.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}`, req.ID)
}

// TestAttackClientCaseVariantSmuggling: a low-privilege client hides the
// call the policy denies in a member the gateway's case-sensitive parser
// ignores and a case-insensitive upstream reads. guard.ScanJSON's
// duplicate-key check compares names exactly, so it does not refuse these.
func TestAttackClientCaseVariantSmuggling(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"params.Name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"delete_all"}}`},
		{"params.NAME", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","NAME":"delete_all"}}`},
		{"Params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"},"Params":{"name":"delete_all"}}`},
		{"paramſ (U+017F)", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"},"paramſ":{"name":"delete_all"}}`},
		{"Method on an open method", `{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"delete_all"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &atkStdlibUpstream{}
			d := &atkDecider{}
			gw, _ := atkProxy(t, d, up, nil)
			status, _, body := atkPost(t, gw.URL, tc.body, nil)
			up.mu.Lock()
			defer up.mu.Unlock()
			for _, name := range up.ran {
				if name == "delete_all" {
					t.Errorf("the upstream ran delete_all, which the policy denies (gateway decided %v; answered %d %s)", d.checked, status, body)
				}
			}
		})
	}
}

// TestAttackConcurrentSameIDOverwritesCall: two POSTs on one session with
// the same id pass the in-flight check together while their decisions
// run; the second add overwrites the first's pending call. The answer to
// the checked tools/call is then matched to the unchecked ping and reaches
// the client without CheckResult.
func TestAttackConcurrentSameIDOverwritesCall(t *testing.T) {
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	d := &atkDecider{hold: func(req *mcpv1.CheckRequest) {
		if req.GetMethod() != "tools/call" {
			return
		}
		once.Do(func() { close(held) })
		<-release
	}}
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		method, id := atkMethodOf(body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Mcp-Session-Id", "s1")
		switch method {
		case "initialize":
			_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"u","version":"1"}}}`, id)
		case "tools/call":
			_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"SECRET"}]}}`, id)
		case "ping":
			_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, id)
		}
	})
	gw, _ := atkProxy(t, d, upstream, nil)
	_, h, _ := atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`, nil)
	sid := h.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatal("no session")
	}
	hdr := map[string]string{"Mcp-Session-Id": sid}
	var toolBody string
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, toolBody = atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search"}}`, hdr)
	}()
	<-held // the tools/call is being decided: its id is taken
	_, _, pingBody := atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":7.0,"method":"ping"}`, hdr)
	close(release)
	<-done
	if !contains(pingBody, "still in flight") {
		t.Errorf("a ping reusing the id (as 7.0) of a tools/call being decided was not refused: %s", pingBody)
	}
	if contains(toolBody, "SECRET") {
		t.Errorf("the tools/call result reached the client unchecked: %s", toolBody)
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (func() bool {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
		return false
	})()
}
