package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// TestApprovalsPage drives the approvals page in a headless browser: an
// approver signs in, finds the pending call, approves it and the call goes
// through once; the caller cannot approve his own call; arguments an
// attacker chose render as text.
func TestApprovalsPage(t *testing.T) {
	browser := startBrowser(t)
	env := newApprovalsEnv(t)
	p := startPDP(t, env.cfg)
	base := "http://" + p.httpAddr
	mcp := mcpv1.NewMCPPolicyClient(p.dial(t))
	check := func(t *testing.T, req *mcpv1.CheckRequest) *mcpv1.CheckResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := mcp.Check(ctx, req)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return resp
	}
	pending := func(t *testing.T, req *mcpv1.CheckRequest) *mcpv1.Approval {
		t.Helper()
		resp := check(t, req)
		if got := resp.GetDecision(); got != mcpv1.Decision_DECISION_REQUIRE_APPROVAL {
			t.Fatalf("decision = %v, want DECISION_REQUIRE_APPROVAL", got)
		}
		a := resp.GetApproval()
		if want := base + "/approvals/" + a.GetId(); a.GetUrl() != want {
			t.Fatalf("approval URL = %q, want %q", a.GetUrl(), want)
		}
		return a
	}
	dana := env.token(t, "dana", "roles", []string{"crm_lead"})

	t.Run("approve from the list", func(t *testing.T) {
		a := pending(t, carlDeletes("42"))
		pg := openPage(t, browser)
		pg.signIn(base+"/approvals", dana)
		if got := pg.text("#who"); got != "Signed in as dana" {
			t.Errorf("session shows %q, want %q", got, "Signed in as dana")
		}
		link := `#approvals-body a[href="/approvals/` + a.GetId() + `"]`
		pg.do("the pending approval is listed", chromedp.WaitVisible(chromedp.CSS(link)))
		row := pg.eval(`document.querySelector(` + jsString(link) + `).closest("tr").textContent`)
		for _, want := range []string{"carl", "crm", "delete_contact", "tools/call", `"id":"42"`} {
			if !strings.Contains(row, want) {
				t.Errorf("list row %q does not show %q", row, want)
			}
		}
		if got := pg.eval(`String(localStorage.length) + "|" + document.cookie + "|" + String(sessionStorage.getItem("verdict.approvals.token") !== null)`); got != "0||true" {
			t.Errorf("localStorage length | cookie | token in sessionStorage = %q, want %q", got, "0||true")
		}

		pg.do("open the approval", chromedp.Click(chromedp.CSS(link)), chromedp.WaitVisible(chromedp.CSS("#approve")))
		pg.waitText("#status", "pending")
		if u := pg.eval(`location.href`); u != a.GetUrl() {
			t.Errorf("detail view at %q, want %q", u, a.GetUrl())
		}
		if args := pg.text("#arguments"); !strings.Contains(args, `"id": "42"`) || !strings.Contains(args, `"tenant": "acme"`) {
			t.Errorf("arguments shown as %q, want the call's id and tenant", args)
		}
		for field, want := range map[string]string{"field-subject": "carl", "field-target": "delete_contact", "field-id": a.GetId()} {
			if got := pg.text("#" + field); got != want {
				t.Errorf("%s = %q, want %q", field, got, want)
			}
		}
		if sha := pg.text("#field-arguments_sha256"); len(sha) != 64 {
			t.Errorf("arguments_sha256 shown as %q, want 64 hex digits", sha)
		}

		pg.do("approve with a note",
			chromedp.SendKeys(chromedp.CSS("#note"), "ticket 7: customer asked"),
			chromedp.Click(chromedp.CSS("#approve")))
		pg.waitText("#status", "approved")
		if got := pg.text("#field-resolved_by"); got != "dana" {
			t.Errorf("resolved_by = %q, want dana", got)
		}
		if got := pg.text("#field-note"); got != "ticket 7: customer asked" {
			t.Errorf("note = %q, want the approver's", got)
		}
		if got := pg.eval(`String(document.getElementById("resolve").hidden)`); got != "true" {
			t.Errorf("the approve and deny buttons are still offered after approval")
		}

		if got := check(t, carlDeletes("42")).GetDecision(); got != mcpv1.Decision_DECISION_ALLOW {
			t.Fatalf("the approved call answers %v, want DECISION_ALLOW", got)
		}
		again := pending(t, carlDeletes("42"))
		if again.GetId() == a.GetId() {
			t.Errorf("the third call reuses the consumed approval %s", a.GetId())
		}

		pg.do("the used approval is listed as consumed",
			chromedp.Navigate(base+"/approvals?status=consumed"),
			chromedp.WaitVisible(chromedp.CSS(link)))
		if got := pg.eval(`document.getElementById("status-filter").value`); got != "consumed" {
			t.Errorf("status filter reads %q, want consumed", got)
		}
		pg.do("an empty list says so",
			chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("status-filter"); s.value = "denied"; s.dispatchEvent(new Event("change")); })()`),
			chromedp.WaitVisible(chromedp.CSS("#list-empty")))
		if got := pg.text("#list-empty"); got != "No denied approvals" {
			t.Errorf("empty list reads %q, want %q", got, "No denied approvals")
		}
	})

	t.Run("nobody approves their own call", func(t *testing.T) {
		a := pending(t, carlDeletes("43"))
		pg := openPage(t, browser)
		pg.signIn(a.GetUrl(), env.token(t, "carl", "roles", []string{"crm_lead"}))
		pg.do("open the approval", chromedp.WaitVisible(chromedp.CSS("#approve")))
		pg.waitText("#status", "pending")
		pg.do("approve", chromedp.Click(chromedp.CSS("#approve")), chromedp.WaitVisible(chromedp.CSS("#error")))
		if msg := pg.text("#error"); !strings.Contains(msg, "approval.self") {
			t.Errorf("error shown as %q, want approval.self", msg)
		}
		if got := pg.text("#status"); got != "pending" {
			t.Errorf("status shown as %q after a refused approval, want pending", got)
		}
		if got := pg.eval(`String(document.getElementById("approve").disabled)`); got != "false" {
			t.Errorf("approve stays disabled after a refusal")
		}
		code, out := adminCall(t, p, "GET", "/v1/approvals/"+a.GetId(), dana, nil)
		got, _ := out["approval"].(map[string]any)
		if code != 200 || got["status"] != "pending" {
			t.Errorf("after carl's attempt: %d %v, want 200 and status pending", code, out)
		}
		if again := pending(t, carlDeletes("43")); again.GetId() != a.GetId() {
			t.Errorf("the call asks for approval %s, want the pending %s", again.GetId(), a.GetId())
		}
	})

	t.Run("arguments render as text", func(t *testing.T) {
		const payload = `<img src=x onerror=window.__pwned=1>`
		a := pending(t, carlDeletes(payload))
		pg := openPage(t, browser)
		pg.signIn(a.GetUrl(), dana)
		pg.do("open the approval", chromedp.WaitVisible(chromedp.CSS("#approve")))
		pg.waitText("#status", "pending")
		if args := pg.text("#arguments"); !strings.Contains(args, payload) {
			t.Errorf("arguments shown as %q, want the markup literally", args)
		}
		// The CSP alone would stop the handler; no element may be made
		// from the arguments either.
		if n := pg.eval(`String(document.querySelectorAll("img").length)`); n != "0" {
			t.Errorf("the page holds %s img elements, want none", n)
		}
		pg.do("back to the list", chromedp.Click(chromedp.CSS("#back")),
			chromedp.WaitVisible(chromedp.CSS(`#approvals-body a[href="/approvals/`+a.GetId()+`"]`)))
		if got := pg.eval(`typeof window.__pwned + "|" + document.querySelectorAll("img").length`); got != "undefined|0" {
			t.Errorf("typeof window.__pwned | img elements = %q, want undefined|0", got)
		}
	})
}

// startBrowser starts a headless Chromium for the test, or skips it when
// none is installed.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" && os.Getenv("CI") == "true" {
		t.Fatal("no chromium, chromium-browser or google-chrome in PATH: .ci/run installs chromium; CI must run the approvals page test")
	}
	if path == "" {
		t.Skip("no chromium, chromium-browser or google-chrome in PATH: the approvals page needs a browser to test (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true), // tests may run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	// A browser that dies while starting on a loaded machine (the whole
	// suite runs packages in parallel) is started again, twice at most:
	// what is tested is the page, not Chromium's start.
	var bctx context.Context
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if bctx, err = launch(t, opts); err == nil {
			break
		}
		t.Logf("starting %s (attempt %d): %v", path, attempt, err)
	}
	if err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return bctx
}

// launch starts a browser and its first tab; the contexts end with the
// test, or at once when the start fails.
func launch(t *testing.T, opts []chromedp.ExecAllocatorOption) (context.Context, error) {
	t.Helper()
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// The first run starts the browser; it takes no timeout, which would
	// stop the browser with it.
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(bctx) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		err = errors.New("did not start within 20s")
	}
	if err != nil {
		bcancel()
		acancel()
		return nil, err
	}
	t.Cleanup(func() { bcancel(); acancel() })
	return bctx, nil
}

// approvalsPage is one browser tab on the approvals page.
type approvalsPage struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string
}

// openPage opens a tab (with its own sessionStorage) and records what the
// page reports as broken: exceptions and refusals by the CSP.
func openPage(t *testing.T, browser context.Context) *approvalsPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	pg := &approvalsPage{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// Refused API calls are logged by the network; they are the
			// page's business, shown in #error.
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				pg.mu.Lock()
				pg.console = append(pg.console, m.String())
				pg.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		pg.mu.Lock()
		defer pg.mu.Unlock()
		for _, m := range pg.console {
			t.Errorf("the page reported: %s", m)
		}
	})
	return pg
}

// do runs steps within 30s (a loaded CI machine starts Chromium's pages
// slowly), failing the test with what the page shows.
func (pg *approvalsPage) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		pg.t.Fatalf("%s: %v (page error: %q)", what, err, pg.errorText())
	}
}

// eval returns a JavaScript expression's string value.
func (pg *approvalsPage) eval(expr string) string {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		pg.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// text is the text content of the element sel selects.
func (pg *approvalsPage) text(sel string) string {
	pg.t.Helper()
	return pg.eval(`(document.querySelector(` + jsString(sel) + `) || {textContent: "<no element ` + strings.ReplaceAll(sel, `"`, "") + `>"}).textContent.trim()`)
}

// waitText waits until the element sel selects reads want.
func (pg *approvalsPage) waitText(sel, want string) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 25*time.Second)
	defer cancel()
	expr := `(document.querySelector(` + jsString(sel) + `) || {}).textContent === ` + jsString(want)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		pg.t.Fatalf("waiting for %s to read %q: %v (it reads %q; page error: %q)", sel, want, err, pg.text(sel), pg.errorText())
	}
}

// signIn opens url and signs in with token.
func (pg *approvalsPage) signIn(url, token string) {
	pg.t.Helper()
	pg.do("sign in at "+url,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#sign-out")),
	)
	if u := pg.eval(`location.href`); strings.Contains(u, token) {
		pg.t.Errorf("the token is in the page's URL %q", u)
	}
}

func (pg *approvalsPage) errorText() string {
	ctx, cancel := context.WithTimeout(pg.ctx, 2*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("error") || {}).textContent || ""`))
	return v
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
