// Package api is Herald's HTTP server: the notification and template API (/v1, behind API
// keys, each limited in request rate and batch bytes in flight) and the provider webhooks
// (/webhooks, each authenticated: Meta's signature, the grey gateway's token, the DLR token),
// on the public listener; and the operational endpoints (/healthz, /readyz, /metrics and, when
// enabled, /debug/pprof) on the ops listener (OpsHandler), which the internet never reaches.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/consent"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/producer"
)

// MaxBatch is the most notifications one batch request may carry.
const MaxBatch = 10000

// MaxBatchBody bounds a batch request's body; no request body may be larger.
const MaxBatchBody = 64 << 20

// Defaults for a zero Config limit.
const (
	DefaultWebhookMaxInFlight  = 64
	DefaultAPIRate             = 200
	DefaultAPIBurst            = 400
	DefaultAPIMaxInFlightBytes = 128 << 20
)

// Store is the part of the status store the API uses.
type Store interface {
	Get(ctx context.Context, id string) (*status.Record, error)
	Create(ctx context.Context, rec *status.Record) (bool, *status.Record, error)
	CreateMany(ctx context.Context, recs []*status.Record) error
	GetMany(ctx context.Context, refs []string) ([]*status.Record, error)
	Apply(ctx context.Context, r status.Report) (string, *status.Record, bool, error)
	OpenWindow(ctx context.Context, business, to string, d time.Duration) error
	Campaign(ctx context.Context, tenant, name string) (status.CampaignCounters, error)
	Window(ctx context.Context, business, to string) (bool, time.Time, error)
	Ping(ctx context.Context) error
}

var _ Store = (*status.Store)(nil)

// Publisher publishes validated jobs.
type Publisher interface {
	Publish(ctx context.Context, j *job.Job) (producer.Result, error)
	PublishBatch(ctx context.Context, jobs []*job.Job) ([]producer.Result, error)
}

var _ Publisher = (*producer.Producer)(nil)

// Config carries what the server needs.
type Config struct {
	Store     Store
	Publisher Publisher
	// JS publishes events; KV is the template catalogue bucket.
	JS jetstream.JetStream
	KV jetstream.KeyValue
	// NATS is checked by /readyz.
	NATS *nats.Conn
	// Keys maps API keys to tenants (HERALD_API_KEYS); AdminKeys maps operators' keys to
	// their names (HERALD_ADMIN_KEYS). A tenant key sees its tenant only; an operator acts for
	// the tenant its request names (?tenant=, default "default") and alone changes the
	// deployment-wide suppression list.
	Keys      map[string]string
	AdminKeys map[string]string
	// Jobs are the validation defaults; Channels the default cascade.
	Jobs     job.Options
	Channels []string
	// WhiteAppSecret verifies Cloud API webhooks; WhiteVerifyToken answers Meta's handshake.
	WhiteAppSecret, WhiteVerifyToken string
	Logger                           *slog.Logger
	Metrics                          *telemetry.Metrics
	MetricsHandler                   http.Handler
	Now                              func() time.Time
	// Prices estimate campaign costs; Campaigns is the campaign metadata bucket.
	Prices    campaign.Prices
	Campaigns jetstream.KeyValue
	// GreyWebhookToken must come as "Authorization: Bearer <token>" on grey webhooks
	// (GREEN-API's webhookUrlToken); without it every grey webhook is refused.
	GreyWebhookToken string
	// DLRSecret verifies the token of Kannel delivery reports (HERALD_SMS_DLR_SECRET);
	// without it every report is refused.
	DLRSecret []byte
	// Consent records opt-outs and marketing preferences; nil records none.
	Consent *consent.Store
	// StopWords and StartWords override the consent defaults (HERALD_STOP_WORDS,
	// HERALD_START_WORDS).
	StopWords, StartWords []string
	// Pprof serves /debug/pprof/ on the ops handler (HERALD_PPROF).
	Pprof bool
	// WebhookMaxInFlight bounds, per webhook route, the requests read and handled at once
	// (their bodies are read before they can be authenticated); 0 is the default.
	WebhookMaxInFlight int
	// APIRate and APIBurst are each API key's request rate; APIMaxInFlightBytes bounds the
	// batch bytes one key has in flight. 0 is the default.
	APIRate             float64
	APIBurst            int
	APIMaxInFlightBytes int64
	// Fleet is the deployment's senders and tenants (HERALD_CONFIG_FILE, else the HERALD_*
	// variables' one sender of each kind): GET /v1/senders shows a tenant's pool from it,
	// and its tenants' api_keys are API keys beside Keys (a key of two tenants is dropped;
	// FleetKeys finds it first). nil: no senders to show.
	Fleet *fleet.Fleet
	// RouteByFleet routes and authenticates webhooks by Fleet's senders: a Cloud API webhook
	// must be signed with the app secret of the number it names and goes to that number's
	// tenants, a grey one must carry its instance's webhook_token; a number or instance not
	// in Fleet is answered 200 and ignored. Set it when Fleet comes from a file; false keeps
	// WhiteAppSecret and GreyWebhookToken for every webhook.
	RouteByFleet bool
	// Health keeps the latest quality, account and grey state events per sender for
	// GET /v1/senders (each change's health.Status is published on NATS for the workers);
	// nil keeps none.
	Health SenderHealth
	// Catalogue, when set, is checked before a template job is queued (precheck.go): a
	// template the tenant lacks, or params and buttons that do not fit it, answer 400.
	Catalogue TemplateCatalogue
	// Submitter, when set, submits each new template version POST /v1/templates registers
	// to Meta for review (the verdict comes back by webhook); nil only registers it.
	Submitter TemplateSubmitter
	// Console, when set, serves /console/ (internal/console's Mount): it is given the
	// server, whose routes it calls in-process with the signed-in key.
	Console func(api http.Handler) http.Handler
}

// Server serves the routes.
type Server struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	ops   *http.ServeMux
	words *consent.Words
	// purges bounds the delivery-deadline cancellations in progress.
	purges chan struct{}
	// keys holds each API key's limits, built once from Keys: no caller can add entries.
	keys map[string]*keyLimit
	// noGreyToken and noDLRSecret log a missing secret once, not once per refused request.
	noGreyToken, noDLRSecret sync.Once
}

// New returns the server: ServeHTTP serves the public routes, OpsHandler the ops ones.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WebhookMaxInFlight <= 0 {
		cfg.WebhookMaxInFlight = DefaultWebhookMaxInFlight
	}
	if cfg.APIRate <= 0 {
		cfg.APIRate = DefaultAPIRate
	}
	if cfg.APIBurst <= 0 {
		cfg.APIBurst = DefaultAPIBurst
	}
	if cfg.APIMaxInFlightBytes <= 0 {
		cfg.APIMaxInFlightBytes = DefaultAPIMaxInFlightBytes
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), ops: http.NewServeMux(),
		words: consent.NewWords(cfg.StopWords, cfg.StartWords), purges: make(chan struct{}, 16), keys: map[string]*keyLimit{}}
	if cfg.Fleet != nil {
		keys, err := FleetKeys(cfg.Fleet, cfg.Keys)
		if err != nil {
			cfg.Logger.Error("API keys of the fleet not used", "err", err)
			keys = cfg.Keys
		}
		s.cfg.Keys = keys
	}
	for k := range s.cfg.Keys {
		s.keys[k] = newKeyLimit(cfg.APIRate, cfg.APIBurst, cfg.APIMaxInFlightBytes)
	}
	for k := range cfg.AdminKeys {
		s.keys[k] = newKeyLimit(cfg.APIRate, cfg.APIBurst, cfg.APIMaxInFlightBytes)
	}
	s.routes()
	s.opsRoutes()
	return s
}

// opsRoutes are the ops listener's: health with details, metrics, and profiles when enabled.
func (s *Server) opsRoutes() {
	m := s.ops
	m.HandleFunc("GET /healthz", healthz)
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { s.ready(w, r, true) })
	if s.cfg.MetricsHandler != nil {
		m.Handle("GET /metrics", s.cfg.MetricsHandler)
	}
	if s.cfg.Pprof {
		m.HandleFunc("GET /debug/pprof/", pprof.Index)
		m.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		m.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}

// OpsHandler serves /healthz, /readyz (naming what is not ready, and why), /metrics and,
// with Pprof, /debug/pprof/: for the ops listener, never the public one.
func (s *Server) OpsHandler() http.Handler { return s.ops }

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) routes() {
	m := s.mux
	// Load balancers probe the public port: health and readiness stay, readiness without the
	// error texts (addresses, versions) that only the ops listener shows.
	m.HandleFunc("GET /healthz", healthz)
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { s.ready(w, r, false) })
	m.Handle("POST /v1/notifications", s.auth(s.postNotification))
	m.Handle("POST /v1/notifications/batch", s.auth(s.postBatch))
	m.Handle("GET /v1/notifications/{id}", s.auth(s.getNotification))
	m.Handle("GET /v1/templates", s.auth(s.listTemplates))
	m.Handle("POST /v1/templates", s.auth(s.postTemplate))
	m.Handle("GET /v1/templates/{name}/{language}", s.auth(s.getTemplate))
	m.Handle("GET /v1/suppressions/{phone}", s.auth(s.getSuppression))
	m.Handle("POST /v1/suppressions/{phone}", s.auth(s.suppress))
	m.Handle("DELETE /v1/suppressions/{phone}", s.auth(s.unsuppress))
	m.Handle("GET /v1/windows/{phone}", s.auth(s.getWindow))
	m.Handle("GET /v1/campaigns/{name}", s.auth(s.getCampaign))
	m.Handle("POST /v1/campaigns/{name}/cancel", s.auth(s.cancelCampaign))
	m.Handle("GET /v1/senders", s.auth(s.listSenders))
	if s.cfg.Console != nil {
		m.Handle("/console/", s.cfg.Console(s))
	}
	// Webhooks are unauthenticated until their body is read: each route has its own bound
	// on how many are in progress, so a flood on one cannot starve the others.
	m.Handle("GET /webhooks/whatsapp", s.webhookGate("whatsapp_verify", s.whatsappVerify))
	m.Handle("POST /webhooks/whatsapp", s.webhookGate("whatsapp", s.whatsappWebhook))
	m.Handle("GET /webhooks/sms", s.webhookGate("sms", s.smsReport))
	m.Handle("POST /webhooks/grey", s.webhookGate("grey", s.greyWebhook))
}

// ServeHTTP serves the public routes. Every body is bounded (MaxBatchBody) before any
// handler sees it; each handler bounds its own body tighter.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBatchBody)
	s.mux.ServeHTTP(w, r)
}

type tenantKey struct{}

type keyLimitKey struct{}

// auth checks the bearer key, then its request rate, and puts its tenant and limits in the
// context.
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		key = strings.TrimSpace(key)
		tenant, found, known, operator := "", false, "", false
		if ok {
			// Every key is compared, in constant time: the answer's timing tells nothing
			// about which keys exist.
			for k, t := range s.cfg.Keys {
				if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
					tenant, found, known = t, true, k
				}
			}
			for k, name := range s.cfg.AdminKeys {
				if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
					tenant, found, known, operator = name, true, k, true
				}
			}
		}
		if !found {
			writeError(w, http.StatusUnauthorized, "missing or unknown API key (Authorization: Bearer <key> from HERALD_API_KEYS or HERALD_ADMIN_KEYS)")
			return
		}
		c := caller{tenant: tenant}
		if operator {
			c = c.operatorFor(r.URL.Query().Get("tenant"), tenant)
			if !job.ValidTenant(c.tenant) {
				writeError(w, http.StatusBadRequest, "tenant: must be 1-63 characters of a-z 0-9 -")
				return
			}
		} else if t := r.URL.Query().Get("tenant"); t != "" && t != tenant {
			writeError(w, http.StatusForbidden, "tenant: this API key belongs to tenant "+tenant+"; only an operator key (HERALD_ADMIN_KEYS) names another")
			return
		}
		kl := s.keys[known]
		if d, ok := kl.allow(s.cfg.Now()); !ok {
			s.log.Info("API key over its request rate", "tenant", tenant)
			tooMany(w, d, "this API key's request rate (HERALD_API_RATE, HERALD_API_BURST) is used up; retry after Retry-After seconds")
			return
		}
		ctx := context.WithValue(context.WithValue(r.Context(), tenantKey{}, c), keyLimitKey{}, kl)
		h(w, r.WithContext(ctx))
	})
}

// caller is who a request acts as: a tenant, or an operator acting for one.
type caller struct {
	tenant   string
	operator string // the operator's name; "" for a tenant key
}

func (c caller) operatorFor(tenant, name string) caller {
	return caller{tenant: job.TenantOr(tenant), operator: name}
}

// isOperator tells whether the request came with an operator key.
func isOperator(r *http.Request) bool {
	c, _ := r.Context().Value(tenantKey{}).(caller)
	return c.operator != ""
}

// actor names who made a change, for the audit trail: "operator:<name>" or "tenant:<name>".
func actor(r *http.Request) string {
	c, _ := r.Context().Value(tenantKey{}).(caller)
	if c.operator != "" {
		return "operator:" + c.operator
	}
	return "tenant:" + c.tenant
}

// tenantOf is the tenant a request acts for: its key's, or the one an operator names. Every
// handler scopes what it reads and changes by it.
func tenantOf(r *http.Request) string {
	c, _ := r.Context().Value(tenantKey{}).(caller)
	return c.tenant
}

func keyLimitOf(r *http.Request) *keyLimit {
	kl, _ := r.Context().Value(keyLimitKey{}).(*keyLimit)
	return kl
}

// accepted is the answer for one job.
type accepted struct {
	ID        string           `json:"id"`
	State     string           `json:"state,omitempty"`
	Duplicate bool             `json:"duplicate,omitempty"`
	Error     string           `json:"error,omitempty"`
	Fields    []job.FieldError `json:"fields,omitempty"`
}

func (s *Server) postNotification(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, job.MaxSize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body larger than 64 KiB")
		return
	}
	j, res, code := s.accept(r, body)
	if j == nil {
		writeJSON(w, code, res)
		return
	}
	if rec, err := s.cfg.Store.Get(r.Context(), j.Ref()); err == nil {
		writeJSON(w, http.StatusOK, accepted{ID: rec.ID, State: rec.State, Duplicate: true})
		return
	}
	pr, err := s.cfg.Publisher.Publish(r.Context(), j)
	if err != nil {
		s.log.Error("publish failed", "job", j.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the job queue is unavailable; retry with the same id")
		return
	}
	rec := status.NewRecord(j, initialState(j, pr), s.cascade(j), s.cfg.Now())
	if err := s.createRecords(r.Context(), func(ctx context.Context) error {
		_, existing, err := s.cfg.Store.Create(ctx, rec)
		if err == nil && existing != nil {
			rec = existing
		}
		return err
	}); err != nil {
		s.log.Error("job queued but its record not written", "job", j.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the job is queued but the status store did not record it; retry with the same id (it will not be sent twice)")
		return
	}
	code = http.StatusAccepted
	if pr.Duplicate {
		code = http.StatusOK
	}
	writeJSON(w, code, accepted{ID: j.ID, State: rec.State, Duplicate: pr.Duplicate})
}

// accept decodes and validates one job for the caller's tenant.
func (s *Server) accept(r *http.Request, body []byte) (*job.Job, accepted, int) {
	j, err := job.Decode(body, s.cfg.Jobs)
	if err != nil {
		var ve *job.ValidationError
		errors.As(err, &ve)
		return nil, accepted{ID: job.PeekID(body), Error: "invalid job", Fields: ve.Fields}, http.StatusBadRequest
	}
	tenant := tenantOf(r)
	if j.Tenant == "" {
		j.Tenant = tenant
	} else if j.Tenant != tenant {
		return nil, accepted{ID: j.ID, Error: "invalid job", Fields: []job.FieldError{{Field: "tenant", Reason: "does not match the API key's tenant " + tenant}}}, http.StatusForbidden
	}
	if res, code, ok := s.precheck(j); !ok {
		return nil, res, code
	}
	return j, accepted{}, 0
}

func (s *Server) postBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Notifications []json.RawMessage `json:"notifications"`
	}
	// The key's batch bytes in flight: a known length is reserved before reading, an
	// unknown one as it is read.
	body, release, readable := s.batchBody(w, r)
	if !readable {
		return
	}
	defer release()
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.Is(err, errBatchBytes):
			tooMany(w, time.Second, "this API key has too many batch bytes in flight (HERALD_API_MAX_INFLIGHT_BYTES); retry after Retry-After seconds")
		case errors.As(err, &tooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, "body larger than 64 MiB")
		default:
			writeError(w, http.StatusBadRequest, "body must be {\"notifications\":[...]}: "+err.Error())
		}
		return
	}
	if len(req.Notifications) == 0 || len(req.Notifications) > MaxBatch {
		writeError(w, http.StatusBadRequest, "notifications: must hold 1 to 10000 jobs")
		return
	}
	results := make([]accepted, len(req.Notifications))
	var jobs []*job.Job
	var idx []int
	for i, raw := range req.Notifications {
		j, res, _ := s.accept(r, raw)
		if j == nil {
			results[i] = res
			continue
		}
		jobs = append(jobs, j)
		idx = append(idx, i)
	}
	// An id the caller's tenant used before answers with its record, as a single post does,
	// however long ago: past JetStream's duplicate window a second publish would go out.
	jobs, idx = s.knownInBatch(r, jobs, idx, results)
	if len(jobs) == 0 {
		s.batchAnswer(w, results)
		return
	}
	prs, err := s.cfg.Publisher.PublishBatch(r.Context(), jobs)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the job queue is unavailable; retry with the same ids")
		return
	}
	var recs []*status.Record
	for k, pr := range prs {
		i := idx[k]
		if pr.Err != nil {
			results[i] = accepted{ID: pr.ID, Error: "not queued: " + pr.Err.Error()}
			continue
		}
		st := initialState(jobs[k], pr)
		results[i] = accepted{ID: pr.ID, State: st, Duplicate: pr.Duplicate}
		// A duplicate has no record either (knownInBatch found none): it is the retry of a
		// batch whose records were not written. Creating never overwrites a record.
		recs = append(recs, status.NewRecord(jobs[k], st, s.cascade(jobs[k]), s.cfg.Now()))
	}
	// Every accepted job has its record when the answer arrives, so a status lookup never
	// answers 404 for it. Creating is idempotent: a timed-out try is simply tried again.
	if err := s.createRecords(r.Context(), func(ctx context.Context) error { return s.cfg.Store.CreateMany(ctx, recs) }); err != nil {
		s.log.Error("batch queued but its records not written", "jobs", len(recs), "err", err)
		writeError(w, http.StatusServiceUnavailable, "the jobs are queued but the status store did not record them; retry with the same ids (they will not be sent twice)")
		return
	}
	s.batchAnswer(w, results)
}

// createAttempts bounds the tries of writing an accepted job's first record.
const createAttempts = 3

// createRecords runs create, which must be idempotent, until it succeeds, createAttempts
// times at most, 100 ms then 200 ms apart, or until ctx ends.
func (s *Server) createRecords(ctx context.Context, create func(context.Context) error) error {
	wait := 100 * time.Millisecond
	var err error
	for try := 1; ; try++ {
		if err = create(ctx); err == nil || try == createAttempts {
			return err
		}
		s.log.Warn("status records not written; trying again", "try", try, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// knownInBatch answers the jobs whose id the tenant already has a record for as duplicates
// and returns the others. If the records cannot be read, every job is kept: JetStream's
// duplicate window and the workers' claim still stop a second send.
func (s *Server) knownInBatch(r *http.Request, jobs []*job.Job, idx []int, results []accepted) ([]*job.Job, []int) {
	refs := make([]string, len(jobs))
	for k, j := range jobs {
		refs[k] = j.Ref()
	}
	recs, err := s.cfg.Store.GetMany(r.Context(), refs)
	if err != nil {
		s.log.Warn("batch: existing records not read; relying on the duplicate window and claims", "err", err)
		return jobs, idx
	}
	keepJobs, keepIdx := jobs[:0:0], idx[:0:0]
	for k, rec := range recs {
		if rec != nil {
			results[idx[k]] = accepted{ID: rec.ID, State: rec.State, Duplicate: true}
			continue
		}
		keepJobs, keepIdx = append(keepJobs, jobs[k]), append(keepIdx, idx[k])
	}
	return keepJobs, keepIdx
}

// batchAnswer writes the per-item results of a batch.
func (s *Server) batchAnswer(w http.ResponseWriter, results []accepted) {
	ok, bad := 0, 0
	for _, a := range results {
		if a.Error == "" {
			ok++
		} else {
			bad++
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"accepted": ok, "rejected": bad, "results": results})
}

func initialState(j *job.Job, pr producer.Result) string {
	if pr.Scheduled {
		return status.Scheduled
	}
	return status.Queued
}

func (s *Server) cascade(j *job.Job) []string {
	if len(j.Channels) > 0 {
		return j.Channels
	}
	// The workers walk the tenant's cascade of the fleet file: the record says the same.
	if f := s.cfg.Fleet; f != nil && s.cfg.RouteByFleet {
		if t, ok := f.Tenants[job.TenantOr(j.Tenant)]; ok && len(t.Channels) > 0 {
			return t.Channels
		}
	}
	return s.cfg.Channels
}

func (s *Server) getNotification(w http.ResponseWriter, r *http.Request) {
	// The caller's tenant is part of the key: another tenant's id is simply not found.
	rec, err := s.cfg.Store.Get(r.Context(), job.Ref(tenantOf(r), r.PathValue("id")))
	if errors.Is(err, status.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no notification with id "+r.PathValue("id")+" in tenant "+job.TenantOr(tenantOf(r)))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "status store unavailable")
		return
	}
	rec.Claim, rec.Early = nil, nil
	writeJSON(w, http.StatusOK, rec)
}

// ready answers /readyz; detail adds each problem's error text (ops listener only).
func (s *Server) ready(w http.ResponseWriter, r *http.Request, detail bool) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	problems := map[string]string{}
	if s.cfg.NATS == nil || s.cfg.NATS.Status() != nats.CONNECTED {
		problems["nats"] = "not connected"
	}
	if err := s.cfg.Store.Ping(ctx); err != nil {
		problems["redis"] = "unavailable"
		if detail {
			problems["redis"] = err.Error()
		}
	}
	if len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// tooMany answers 429 with Retry-After in whole seconds, at least one.
func tooMany(w http.ResponseWriter, after time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((after+time.Second-1)/time.Second))))
	writeError(w, http.StatusTooManyRequests, msg)
}
