package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// Keys of the test deployment beside the harness's default tenant key.
const (
	otherKey = "acme-key-00000001"
	opsKey   = "ops-key-000000001"
)

// chromiumPath finds Debian's chromium; the browser test fails, and says how to install it,
// when it is missing: a silent skip would let the console go untested.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("HERALD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("chromium not found (/usr/bin/chromium): run `make deps` to install Debian's chromium, or set HERALD_CHROMIUM")
	return ""
}

// artifacts is where the screenshots go: $HERALD_TEST_ARTIFACTS/console, else a temporary
// directory of the test.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if d := os.Getenv("HERALD_TEST_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts a headless Chromium of its own (a fresh profile, no network but loopback).
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium did not start: %v (run `make deps`)", err)
	}
	return ctx
}

func startHerald(t *testing.T) *harness.Herald {
	t.Helper()
	return harness.Start(t, harness.Options{Config: func(c *config.Config) {
		c.APIKeys = harness.Tenant + ":" + harness.APIKey + ",acme:" + otherKey
		c.AdminKeys = "ops:" + opsKey
	}})
}

// TestConsoleInBrowser drives the console in Chromium through the flow: sign in,
// import a campaign and watch it reach 100%, filter its failures, replay them and see them
// delivered, look one up, lint a promotional template. Every page is screenshotted.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	h := startHerald(t)
	ctx := browser(t)
	dir := artifacts(t)
	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("%s: %v\n%s", what, err, html)
		}
	}
	// wait polls a JavaScript predicate until it holds.
	wait := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("%s: %v\n%s", what, err, html)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	base := h.APIURL + "/console/"

	// 1. Sign in.
	do("sign-in page", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#key")))
	shot("01-sign-in")
	do("sign in", chromedp.SendKeys(chromedp.CSS("#key"), harness.APIKey), chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#lanes")))
	wait("the overview's live figures", `document.body.dataset.live !== undefined`)
	if s := text("#sender-health tbody"); !strings.Contains(s, "white") {
		t.Fatalf("sender health: %q", s)
	}
	shot("02-overview")

	// 2. Import a small campaign; two numbers are not on WhatsApp and fail.
	failing := []string{"79000000902", "79000000904"}
	for _, to := range failing {
		h.Sim.AddRule(sim.Rule{To: to, Code: 131026})
	}
	var csv strings.Builder
	csv.WriteString("to,name,amount,date\n")
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&csv, "+7900000090%d,Anna %d,%d,30.11.2026\n", i, i, 100*i)
	}
	do("import form", chromedp.Navigate(base+"campaigns/new"), chromedp.WaitVisible(chromedp.CSS("#import-form")),
		chromedp.SendKeys(chromedp.CSS("#name"), "nov-bonus"),
		chromedp.SetValue(chromedp.CSS("#template"), "bonus_expiring"),
		chromedp.SendKeys(chromedp.CSS("#channels"), "white"),
		chromedp.SetValue(chromedp.CSS("#recipients"), csv.String()))
	shot("03-import")
	do("import", chromedp.Click(chromedp.CSS("#import-submit")), chromedp.WaitVisible(chromedp.CSS("#progress")))
	if f := text("#flash"); !strings.Contains(f, "6 accepted") {
		t.Fatalf("import flash: %q", f)
	}
	wait("progress reaches 100% (pushed over SSE)", `document.getElementById("percent").textContent === "100"`)
	// The server-paged tables follow the live figures: no recipient is left shown as queued,
	// and the channel that sent shows its messages.
	wait("the recipients and channels tables refreshed", `(function(){`+
		`const st=Array.from(document.querySelectorAll('#recipients tbody td:nth-child(3)')).map(function(td){return td.textContent;});`+
		`return st.length===6 && st.indexOf('queued')<0 && document.querySelectorAll('#channels tbody tr').length>0;})()`)
	shot("04-campaign")
	do("campaign list", chromedp.Navigate(base+"campaigns"), chromedp.WaitVisible(chromedp.CSS(`tr[data-campaign="nov-bonus"]`)))
	wait("the list's live progress", `document.querySelector('tr[data-campaign="nov-bonus"] [data-f=percent]').textContent === "100"`)
	shot("05-campaigns")

	// 3. Filter the failures, replay them (the numbers are on WhatsApp now), see them delivered.
	testutil.Eventually(t, 20*time.Second, func() bool {
		n := 0
		for _, to := range failing {
			if r := h.Record("nov-bonus-00000" + to[len(to)-1:]); r != nil && r.State == status.Failed {
				n++
			}
		}
		return n == len(failing)
	}, "the two failing jobs failed")
	do("filter failures", chromedp.Navigate(base+"campaigns/nov-bonus"), chromedp.WaitVisible(chromedp.CSS("#recipient-filter")),
		chromedp.SetValue(chromedp.CSS("#f-state"), "failed"), chromedp.Click(chromedp.CSS("#apply-filter")),
		chromedp.WaitVisible(chromedp.CSS("#replay-failed")))
	rows := text("#recipients tbody")
	if strings.Count(strings.TrimSpace(rows), "\n") != 1 || !strings.Contains(rows, "\tfailed\t") || !strings.Contains(rows, "nov-bonus-000002") || strings.Contains(rows, "nov-bonus-000001") {
		t.Fatalf("failed rows: %q", rows)
	}
	if strings.Contains(rows, "79000000902") {
		t.Fatalf("a full phone number on the page: %q", rows)
	}
	shot("06-failures")
	do("dead letters page", chromedp.Navigate(base+"dlq?campaign=nov-bonus"), chromedp.WaitVisible(chromedp.CSS("#letters")))
	wait("two letters listed", `document.getElementById("dlq-total").textContent === "2"`)
	shot("07-dead-letters")
	h.Sim.ClearRules()
	do("replay", chromedp.Navigate(base+"campaigns/nov-bonus?state=failed"), chromedp.WaitVisible(chromedp.CSS("#replay-failed")),
		chromedp.Click(chromedp.CSS("#replay-failed")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if f := text("#flash"); !strings.Contains(f, "Replayed 2 of 2") {
		t.Fatalf("replay flash: %q", f)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		return h.Record("nov-bonus-000002").State == status.Delivered && h.Record("nov-bonus-000004").State == status.Delivered
	}, "the replayed jobs delivered")
	do("the replay's outcome", chromedp.Click(chromedp.CSS("#refresh-outcome")), chromedp.WaitVisible(chromedp.CSS("#replayed")))
	if s := text("#replayed tbody"); strings.Count(s, "delivered") != 2 || !strings.Contains(s, "nov-bonus-000004") {
		t.Fatalf("the replay's outcome: %q", s)
	}
	shot("08-replayed")
	do("campaign after replay", chromedp.Navigate(base+"campaigns/nov-bonus"), chromedp.WaitVisible(chromedp.CSS("#states")))
	wait("all six delivered, pushed live", `(function(){const d=document.querySelector('#states [data-state=delivered] [data-f=n]');`+
		`const f=document.querySelector('#states [data-state=failed] [data-f=n]');return d&&d.textContent==="6"&&(!f||f.textContent==="0");})()`)

	// 4. Look one notification up, by phone (masked) and then its timeline.
	do("lookup by phone", chromedp.Navigate(base+"lookup"), chromedp.SendKeys(chromedp.CSS("#q"), "+79000000902"),
		chromedp.Click(chromedp.CSS("#lookup-submit")), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	tl := text("#record")
	if !strings.Contains(tl, "nov-bonus-000002") || !strings.Contains(tl, "131026") || !strings.Contains(tl, "delivered") || strings.Contains(tl, "79000000902") {
		t.Fatalf("timeline: %q", tl)
	}
	shot("09-lookup")

	// 5. Lint a promotional template: flagged as you type.
	promo := `{"name":"bonus_news","language":"en","category":"UTILITY","components":[{"type":"BODY","text":"Big sale! Buy now and get 50% off everything, limited time offer, shop today!"}]}`
	do("templates", chromedp.Navigate(base+"templates"), chromedp.WaitVisible(chromedp.CSS("#lint-input")))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.getElementById("lint-input").value = "", true)`)); err != nil {
		t.Fatal(err)
	}
	do("type a template", chromedp.SendKeys(chromedp.CSS("#lint-input"), promo))
	wait("a promotional finding, an error", `!!document.querySelector('#lint-findings .finding.error[data-code="promo_in_utility"]')`)
	shot("10-templates")

	// The other pages, keyboard-reachable and labelled.
	do("senders", chromedp.Navigate(base+"senders"), chromedp.WaitVisible(chromedp.CSS("#senders")))
	if s := text("#senders tbody"); !strings.Contains(s, "white") || !strings.Contains(s, "sms") {
		t.Fatalf("senders: %q", s)
	}
	shot("11-senders")
	do("suppressions", chromedp.Navigate(base+"suppressions"), chromedp.WaitVisible(chromedp.CSS("#suppression-form")),
		chromedp.SendKeys(chromedp.CSS("#c-phone"), "+79000000906"), chromedp.Click(chromedp.CSS("#s-change")),
		chromedp.WaitVisible(chromedp.CSS("#suppression")))
	if s := text("#s-all"); s != "yes" {
		t.Fatalf("suppressed: %q", s)
	}
	shot("12-suppressions")
	for _, p := range []string{"", "campaigns", "campaigns/nov-bonus", "campaigns/new", "lookup", "dlq", "senders", "templates", "suppressions"} {
		do("page "+p, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("main")))
		unlabelled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](unlabelledJS))
		if err != nil {
			t.Fatal(err)
		}
		if len(unlabelled) > 0 {
			t.Errorf("page /console/%s: controls without a label: %v", p, unlabelled)
		}
	}
	// The keyboard reaches the skip link first, then the navigation.
	do("keyboard", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("main")), chromedp.KeyEvent("\t"))
	if f, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.textContent`)); f != "Skip to content" {
		t.Errorf("first tab stop: %q", f)
	}
}

// unlabelledJS lists the visible form controls without an accessible name.
const unlabelledJS = `Array.from(document.querySelectorAll('input:not([type=hidden]),select,textarea,button')).filter(function(e){
  if (e.getAttribute('aria-label')) return false;
  if (e.tagName === 'BUTTON') return e.textContent.trim() === '';
  return !(e.id && document.querySelector('label[for="' + e.id + '"]'));
}).map(function(e){ return e.outerHTML.slice(0, 80); })`

// client is a browser-less session: a cookie jar, signed in with key.
func client(t *testing.T, h *harness.Herald, key string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(h.APIURL + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if tok == nil {
		t.Fatalf("no CSRF token on the sign-in page: %s", body)
	}
	resp, err = c.PostForm(h.APIURL+"/console/login", url.Values{"csrf": {string(tok[1])}, "key": {key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %s", resp.Status)
	}
	resp, err = c.Get(h.APIURL + "/console/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	tok = regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if tok == nil {
		t.Fatalf("no CSRF token on a signed-in page: %s", body)
	}
	return c, string(tok[1])
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsoleTenantsAndCSRF: a tenant sees none of another's campaign, records or dead
// letters; a POST without its CSRF token (or with another session's) changes nothing.
func TestConsoleTenantsAndCSRF(t *testing.T) {
	t.Parallel()
	h := startHerald(t)
	h.Sim.AddRule(sim.Rule{To: "79000000801", Code: 131026})
	owner, ownerCSRF := client(t, h, harness.APIKey)
	resp, err := owner.PostForm(h.APIURL+"/console/campaigns", url.Values{"csrf": {ownerCSRF}, "name": {"secret-plan"},
		"template": {"bonus_expiring"}, "channels": {"white"}, "recipients": {"to,name,amount,date\n+79000000801,A,1,30.11.2026\n+79000000802,B,2,30.11.2026"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("import: %s", resp.Status)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		r := h.Record("secret-plan-000001")
		return r != nil && r.State == status.Failed
	}, "the first job failed")
	other, otherCSRF := client(t, h, otherKey)
	ops, _ := client(t, h, opsKey)

	tests := []struct {
		name   string
		c      *http.Client
		path   string
		code   int
		absent string // must not be in the page
	}{
		{"owner sees its campaign", owner, "/console/campaigns/secret-plan", 200, "79000000801"},
		{"other tenant: campaign not found", other, "/console/campaigns/secret-plan", 404, "secret-plan-000001"},
		{"other tenant: list without it", other, "/console/campaigns", 200, "secret-plan"},
		{"other tenant: export refused", other, "/console/campaigns/secret-plan/export.csv", 404, "secret-plan-000001"},
		{"other tenant: no dead letters", other, "/console/dlq", 200, "secret-plan"},
		{"other tenant: lookup by id not found", other, "/console/lookup?q=secret-plan-000002", 404, "79000000802"},
		{"other tenant: lookup by phone finds nothing", other, "/console/lookup?q=%2B79000000802", 200, "secret-plan"},
		{"events: an unknown topic refused", other, "/console/events?topic=bogus", 400, "secret"},
		{"operator sees the default tenant's letter", ops, "/console/dlq?tenant=default", 200, "79000000801"},
		{"signed out: redirected", &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, "/console/campaigns", 303, "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, tt.c, h.APIURL+tt.path)
			if code != tt.code || strings.Contains(body, tt.absent) {
				t.Fatalf("GET %s: %d (want %d), %q present: %v\n%s", tt.path, code, tt.code, tt.absent, strings.Contains(body, tt.absent), body)
			}
		})
	}
	if _, body := get(t, owner, h.APIURL+"/console/dlq"); !strings.Contains(body, "secret-plan-000001") {
		t.Errorf("the owner does not see its dead letter:\n%s", body)
	}
	if _, body := get(t, ops, h.APIURL+"/console/dlq?tenant=default"); !strings.Contains(body, "secret-plan-000001") {
		t.Errorf("the operator does not see the default tenant's dead letter:\n%s", body)
	}

	posts := []struct {
		name string
		c    *http.Client
		form url.Values
		code int
	}{
		{"cancel without a token", owner, url.Values{"confirm": {"secret-plan"}}, 403},
		{"cancel with a forged token", owner, url.Values{"confirm": {"secret-plan"}, "csrf": {"forged"}}, 403},
		{"cancel with another session's token", owner, url.Values{"confirm": {"secret-plan"}, "csrf": {otherCSRF}}, 403},
		{"other tenant cancels its own namesake, not the owner's", other, url.Values{"confirm": {"secret-plan"}, "csrf": {otherCSRF}}, 303},
	}
	for _, tt := range posts {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.c.PostForm(h.APIURL+"/console/campaigns/secret-plan/cancel", tt.form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("POST: %s, want %d", resp.Status, tt.code)
			}
		})
	}
	if _, body := get(t, owner, h.APIURL+"/console/campaigns/secret-plan"); strings.Contains(body, "badge down\">canceled") || !strings.Contains(body, "cancel-link") {
		t.Fatalf("the owner's campaign was canceled by a refused POST or by another tenant:\n%s", body)
	}
	for _, path := range []string{"/console/dlq/replay", "/console/suppressions", "/console/logout", "/console/lint", "/console/tenant"} {
		resp, err := owner.PostForm(h.APIURL+path, url.Values{"all": {"1"}, "phone": {"+79000000805"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s without a token: %s, want 403", path, resp.Status)
		}
	}
}
