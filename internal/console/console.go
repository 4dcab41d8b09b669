// Package console is Herald's operator console: server-rendered pages under /console/ on
// the API port (campaigns with live progress and a per-recipient table, notification
// lookup, dead letters with replay, senders, templates with a lint playground,
// suppressions), signed in with a tenant or operator API key.
//
// The console reads and changes what the API does by calling the API's own handlers
// in-process with the signed-in key, so the API's authentication, tenant scoping and
// validation stay the one source of truth. What the API has no route for (the DLQ, the
// campaign and phone indexes, queue lag) it reads directly, always scoped to the session's
// tenant. Assets are embedded; live figures come over server-sent events.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// DefaultSessionTTL is how long a sign-in lasts.
const DefaultSessionTTL = 12 * time.Hour

// Records is what the console reads of the status store: records and the indexes
// (status.Index) that list a campaign's jobs and a number's.
type Records interface {
	GetMany(ctx context.Context, refs []string) ([]*status.Record, error)
	CampaignMembers(ctx context.Context, tenant, name string, offset, count int64) ([]string, int64, error)
	CampaignNames(ctx context.Context, tenant string) ([]string, error)
	JobsTo(ctx context.Context, tenant, to string) ([]string, error)
}

var _ Records = (*status.Store)(nil)

// Config is what the console needs.
type Config struct {
	// Keys (tenant keys, HERALD_API_KEYS), AdminKeys (HERALD_ADMIN_KEYS) and Fleet's tenants'
	// api_keys may sign in: the same keys the API accepts.
	Keys, AdminKeys map[string]string
	Fleet           *fleet.Fleet
	// Records reads records and the campaign and phone indexes.
	Records Records
	// JS reads and replays the DLQ and the consumers' lag; Campaigns lists the campaigns
	// imports recorded (their metadata bucket). Either may be nil: that part is empty.
	JS        jetstream.JetStream
	Campaigns jetstream.KeyValue
	// Region is the default region of phone numbers typed without a country code.
	Region     string
	SessionTTL time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
	// Tick is how often live figures are pushed (default one second).
	Tick time.Duration
}

// Console serves the pages. Mount gives it the API it calls.
type Console struct {
	cfg   Config
	log   *slog.Logger
	keys  *keyring
	pages map[string]*template.Template
}

// New returns the console; Mount it on the API (api.Config.Console).
func New(cfg Config) *Console {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	keys := cfg.Keys
	if cfg.Fleet != nil {
		if k, err := api.FleetKeys(cfg.Fleet, cfg.Keys); err == nil {
			keys = k
		}
	}
	return &Console{cfg: cfg, log: cfg.Logger, keys: newKeyring(keys, cfg.AdminKeys), pages: parsePages()}
}

// Mount returns the handler of /console/ calling apiHandler (the API's public handler)
// for what the API serves.
func (c *Console) Mount(apiHandler http.Handler) http.Handler {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /console/login", c.loginPage)
	m.HandleFunc("POST /console/login", c.login)
	h := &handlers{c: c, api: apiHandler}
	route := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, u *user)) {
		m.Handle(pattern, c.signedIn(fn))
	}
	route("POST /console/logout", h.logout)
	route("POST /console/tenant", h.switchTenant)
	route("GET /console/{$}", h.overview)
	route("GET /console/campaigns", h.campaigns)
	route("GET /console/campaigns/new", h.newCampaign)
	route("POST /console/campaigns", h.importCampaign)
	route("GET /console/campaigns/{name}", h.campaign)
	route("GET /console/campaigns/{name}/export.csv", h.exportCampaign)
	route("GET /console/campaigns/{name}/cancel", h.confirmCancel)
	route("POST /console/campaigns/{name}/cancel", h.cancelCampaign)
	route("GET /console/lookup", h.lookup)
	route("GET /console/dlq", h.deadLetters)
	route("POST /console/dlq/replay", h.replay)
	route("GET /console/senders", h.senders)
	route("GET /console/templates", h.templates)
	route("POST /console/lint", h.lint)
	route("GET /console/suppressions", h.suppressions)
	route("POST /console/suppressions", h.changeSuppression)
	route("GET /console/events", h.events)
	return securityHeaders(m)
}

// securityHeaders forbid framing and any script or style not served by the console itself.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// user is the signed-in session as the handlers see it.
type user struct {
	s        session
	key      string
	Tenant   string
	Operator string
	CSRF     string
}

// signedIn checks the session cookie, and the CSRF token of every POST: a POST without it
// is refused with 403 before anything changes.
func (c *Console) signedIn(fn func(http.ResponseWriter, *http.Request, *user)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie)
		var s session
		var e keyEntry
		if err == nil {
			s, e, err = c.keys.decode(ck.Value, c.cfg.Now())
		}
		if err != nil {
			if r.Method == http.MethodGet && r.URL.Path != "/console/events" {
				http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in first (/console/login)", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if !c.keys.validCSRF(s, tok) {
				c.log.Warn("console: POST without a valid CSRF token refused", "path", r.URL.Path, "tenant", s.Tenant)
				http.Error(w, "csrf: missing or invalid token; reload the page and try again", http.StatusForbidden)
				return
			}
		}
		u := &user{s: s, key: e.key, Tenant: job.TenantOr(s.Tenant), Operator: e.operator, CSRF: c.keys.csrf(s)}
		if e.operator == "" {
			u.Tenant = job.TenantOr(e.tenant) // a tenant key's cookie cannot name another tenant
		}
		fn(w, r, u)
	})
}

// handlers are the signed-in pages, with the API they call.
type handlers struct {
	c   *Console
	api http.Handler
}

// callAPI calls the API in-process as the signed-in key: method and path ("/v1/..."),
// an optional JSON body, the answer decoded into out. It returns the status code and, for
// an error answer, the API's error text.
func (h *handlers) callAPI(ctx context.Context, u *user, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	if u.Operator != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "tenant=" + url.QueryEscape(u.Tenant)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+u.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	h.api.ServeHTTP(rec, req)
	if rec.code >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &e)
		if e.Error == "" {
			e.Error = http.StatusText(rec.code)
		}
		return rec.code, &APIError{Code: rec.code, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return rec.code, fmt.Errorf("console: decoding %s %s: %w", method, path, err)
		}
	}
	return rec.code, nil
}

// APIError is an error answer of the API, shown as it is: the API's texts name the field
// and the reason.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// recorder is the in-process response of an API call.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}

var _ http.ResponseWriter = (*recorder)(nil)

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	User   *user
	Flash  string
	Error  string
	Data   any
	Stream string // the events topic the page listens to ("" none)
}

func (h *handlers) render(w http.ResponseWriter, name string, p page) {
	h.c.render(w, name, p)
}

func (c *Console) render(w http.ResponseWriter, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console: rendering a page", "page", name, "err", err)
		http.Error(w, "page not rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// loginPage shows the sign-in form. Sign-in has no session yet: its CSRF token is a random
// value in a cookie that the form must repeat (double submit).
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	tok := randomToken()
	setCookie(w, r, loginCookie, tok, 600)
	c.render(w, "login", page{Title: "Sign in", Data: map[string]string{"CSRF": tok, "Next": safeNext(r.URL.Query().Get("next"))}})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" || r.PostFormValue("csrf") != ck.Value {
		http.Error(w, "csrf: missing or invalid token; reload the sign-in page", http.StatusForbidden)
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	e, ok := c.keys.lookup(key)
	if !ok {
		tok := randomToken()
		setCookie(w, r, loginCookie, tok, 600)
		w.WriteHeader(http.StatusUnauthorized)
		c.render(w, "login", page{Title: "Sign in", Error: "key: not a tenant key (HERALD_API_KEYS) nor an operator key (HERALD_ADMIN_KEYS)",
			Data: map[string]string{"CSRF": tok, "Next": safeNext(r.PostFormValue("next"))}})
		return
	}
	s := session{KeyID: keyID(e.key), Tenant: job.TenantOr(e.tenant), Operator: e.operator, Nonce: randomToken(),
		Expires: c.cfg.Now().Add(c.cfg.SessionTTL).Unix()}
	if e.operator != "" {
		s.Tenant = job.DefaultTenant
	}
	setCookie(w, r, sessionCookie, c.keys.encode(s), int(c.cfg.SessionTTL/time.Second))
	setCookie(w, r, loginCookie, "", -1)
	c.log.Info("console: signed in", "tenant", s.Tenant, "operator", e.operator)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// safeNext keeps a redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/console/"
	}
	return next
}

func (h *handlers) logout(w http.ResponseWriter, r *http.Request, _ *user) {
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// switchTenant lets an operator act for another tenant; a tenant key cannot.
func (h *handlers) switchTenant(w http.ResponseWriter, r *http.Request, u *user) {
	if u.Operator == "" {
		http.Error(w, "tenant: only an operator key acts for another tenant", http.StatusForbidden)
		return
	}
	t := strings.TrimSpace(r.PostFormValue("tenant"))
	if !job.ValidTenant(t) {
		http.Error(w, "tenant: must be 1-63 characters of a-z 0-9 -", http.StatusBadRequest)
		return
	}
	s := u.s
	s.Tenant = t
	setCookie(w, r, sessionCookie, h.c.keys.encode(s), int(time.Until(time.Unix(s.Expires, 0))/time.Second))
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}
