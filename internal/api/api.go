// Package api is Herald's HTTP server: the notification and template API (/v1, behind API
// keys), the provider webhooks (/webhooks) and the operational endpoints (/healthz, /readyz,
// /metrics).
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
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/consent"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/producer"
)

// MaxBatch is the most notifications one batch request may carry.
const MaxBatch = 10000

// Store is the part of the status store the API uses.
type Store interface {
	Get(ctx context.Context, id string) (*status.Record, error)
	Create(ctx context.Context, rec *status.Record) (bool, *status.Record, error)
	CreateMany(ctx context.Context, recs []*status.Record) error
	Apply(ctx context.Context, r status.Report) (string, *status.Record, bool, error)
	OpenWindow(ctx context.Context, business, to string, d time.Duration) error
	Campaign(ctx context.Context, name string) (status.CampaignCounters, error)
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
	// Keys maps API keys to tenants (HERALD_API_KEYS).
	Keys map[string]string
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
	// GreyWebhookToken, when set, must come as "Authorization: Bearer <token>" on grey
	// webhooks (GREEN-API's webhookUrlToken).
	GreyWebhookToken string
	// Redis holds the suppression set (opt-outs).
	Redis redis.UniversalClient
	// StopWords and StartWords override the consent defaults (HERALD_STOP_WORDS,
	// HERALD_START_WORDS).
	StopWords, StartWords []string
	// OpsOnly serves only /healthz, /readyz and /metrics (worker pods).
	OpsOnly bool
}

// Server serves the routes.
type Server struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	words *consent.Words
	// purges bounds the delivery-deadline cancellations in progress.
	purges chan struct{}
}

// New returns the server's handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), words: consent.NewWords(cfg.StopWords, cfg.StartWords),
		purges: make(chan struct{}, 16)}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	m.HandleFunc("GET /readyz", s.ready)
	if s.cfg.MetricsHandler != nil {
		m.Handle("GET /metrics", s.cfg.MetricsHandler)
	}
	if s.cfg.OpsOnly {
		// Workers' ops listener (not exposed like the API): profiles for performance work.
		m.HandleFunc("GET /debug/pprof/", pprof.Index)
		m.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		m.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		return
	}
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
	m.HandleFunc("GET /webhooks/whatsapp", s.whatsappVerify)
	m.HandleFunc("POST /webhooks/whatsapp", s.whatsappWebhook)
	m.HandleFunc("GET /webhooks/sms", s.smsReport)
	m.HandleFunc("POST /webhooks/grey", s.greyWebhook)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type tenantKey struct{}

// auth checks the bearer key and puts its tenant in the context.
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		key = strings.TrimSpace(key)
		tenant, found := "", false
		if ok {
			for k, t := range s.cfg.Keys {
				if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
					tenant, found = t, true
				}
			}
		}
		if !found {
			writeError(w, http.StatusUnauthorized, "missing or unknown API key (Authorization: Bearer <key> from HERALD_API_KEYS)")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, tenant)))
	})
}

func tenantOf(r *http.Request) string { t, _ := r.Context().Value(tenantKey{}).(string); return t }

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
	if rec, err := s.cfg.Store.Get(r.Context(), j.ID); err == nil {
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
	if _, existing, err := s.cfg.Store.Create(r.Context(), rec); err == nil && existing != nil {
		rec = existing
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
	return j, accepted{}, 0
}

func (s *Server) postBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Notifications []json.RawMessage `json:"notifications"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be {\"notifications\":[...]}: "+err.Error())
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
		if !pr.Duplicate {
			recs = append(recs, status.NewRecord(jobs[k], st, s.cascade(jobs[k]), s.cfg.Now()))
		}
	}
	if err := s.cfg.Store.CreateMany(r.Context(), recs); err != nil {
		s.log.Warn("batch records not created; workers will create them", "err", err)
	}
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
	return s.cfg.Channels
}

func (s *Server) getNotification(w http.ResponseWriter, r *http.Request) {
	rec, err := s.cfg.Store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, status.ErrNotFound) || (err == nil && rec.Tenant != "" && rec.Tenant != tenantOf(r)) {
		writeError(w, http.StatusNotFound, "no notification with this id")
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "status store unavailable")
		return
	}
	rec.Claim, rec.Early = nil, nil
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	problems := map[string]string{}
	if s.cfg.NATS == nil || s.cfg.NATS.Status() != nats.CONNECTED {
		problems["nats"] = "not connected"
	}
	if err := s.cfg.Store.Ping(ctx); err != nil {
		problems["redis"] = err.Error()
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
