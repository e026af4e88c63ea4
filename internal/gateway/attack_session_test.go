package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/verdictpdp/verdict/internal/identity"
	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// TestAttackSessionEvictionByOtherSubject: the session table has one
// global bound and evicts the least recently used session when full, so a
// low-privilege subject that opens MaxSessions sessions (one initialize
// each) evicts every other subject's live session: their next request
// gets 404 and their in-flight state is lost.
func TestAttackSessionEvictionByOtherSubject(t *testing.T) {
	var n atomic.Int64
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, id := atkMethodOf(body)
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Mcp-Session-Id") == "" {
			w.Header().Set("Mcp-Session-Id", fmt.Sprintf("s%d", n.Add(1)))
		}
		_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, id)
	})
	verify := func(_ context.Context, tok string) (*mcpv1.Subject, *identity.Error) {
		return &mcpv1.Subject{Id: tok, Tenant: "acme"}, nil
	}
	const max = 50
	gw, _ := atkProxy(t, &atkDecider{}, upstream, func(o *ProxyOptions) { o.Verify, o.MaxSessions = verify, max })
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`
	_, h, _ := atkPost(t, gw.URL, init, map[string]string{"Authorization": "Bearer alice"})
	victim := h.Get("Mcp-Session-Id")
	for range max {
		atkPost(t, gw.URL, init, map[string]string{"Authorization": "Bearer mallory"})
	}
	status, _, _ := atkPost(t, gw.URL, `{"jsonrpc":"2.0","id":2,"method":"ping"}`,
		map[string]string{"Authorization": "Bearer alice", "Mcp-Session-Id": victim})
	if status == http.StatusNotFound {
		t.Errorf("mallory's %d initializes evicted alice's live session %s (404); no per-subject bound", max, victim)
	}
}
