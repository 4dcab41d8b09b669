// Package harness runs a whole Herald in a test or benchmark: a real nats-server
// (in-process), a real redis-server process, the provider simulator over HTTP on loopback,
// and the API and worker as `herald api` and `herald worker` run them (internal/app).
package harness

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/producer"
)

// Secrets the harness configures.
const (
	AppSecret = "harness-app-secret"
	// PhoneNumberID is the business number the workers send from (the Cloud API id).
	PhoneNumberID = "100200300"
	APIKey        = "harness-key-0001"
	// Tenant is the tenant of APIKey, the default one: jobs the harness's producer publishes
	// without a tenant belong to it too.
	Tenant = job.DefaultTenant
	Token  = "harness-token"
	// GreyInstance is the simulated grey gateway instance.
	GreyInstance = "1101000001"
	// GreyWebhookToken is the instance's webhookUrlToken: the simulator sends it on grey
	// webhooks, the API requires it.
	GreyWebhookToken = "harness-grey-webhook-token"
	// DLRSecret signs the Kannel dlr-urls (HERALD_SMS_DLR_SECRET).
	DLRSecret = "harness-dlr-secret-0123456789abcdef"
)

// Herald is a running system under test.
type Herald struct {
	NATS     *testutil.NATS
	Redis    *testutil.Redis
	Sim      *sim.Sim
	SimURL   string
	APIURL   string
	Cfg      *config.Config
	NC       *nats.Conn
	JS       jetstream.JetStream
	RDB      *redis.Client
	Store    *status.Store
	Producer *producer.Producer
	Log      *slog.Logger

	tb      testing.TB
	now     func() time.Time
	apiLn   net.Listener
	mu      sync.Mutex
	workers []*Worker
}

// Options adjust the system.
type Options struct {
	// Sim adjusts the simulator's configuration (webhook URL and secrets are set for you).
	Sim func(*sim.Config)
	// Config adjusts Herald's configuration.
	Config func(*config.Config)
	// NoWorker starts only the API; start workers with StartWorker.
	NoWorker bool
	// Verbose logs to stderr.
	Verbose bool
	// Now is the workers' clock (expiry, quiet hours); nil is time.Now.
	Now func() time.Time
	// PersistentRedis runs redis-server with an append-only file synced on every write, as
	// production should: a kill or restart keeps every acknowledged write.
	PersistentRedis bool
}

// Start brings a whole Herald up and registers its teardown.
func Start(tb testing.TB, o Options) *Herald {
	tb.Helper()
	h := &Herald{tb: tb, NATS: testutil.StartNATS(tb), now: o.Now}
	if o.PersistentRedis {
		h.Redis = testutil.StartRedisPersistent(tb)
	} else {
		h.Redis = testutil.StartRedis(tb)
	}
	h.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.Verbose || os.Getenv("HERALD_TEST_VERBOSE") != "" {
		h.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	h.apiLn = ln
	h.APIURL = "http://" + ln.Addr().String()

	scfg := sim.Config{
		PhoneNumberID: PhoneNumberID, Token: Token, AppSecret: AppSecret,
		WebhookURL: h.APIURL + "/webhooks/whatsapp", Statuses: []string{"sent", "delivered"},
		GreyInstanceID: GreyInstance, GreyToken: Token, GreyWebhookURL: h.APIURL + "/webhooks/grey",
		GreyWebhookToken: GreyWebhookToken,
		Logger:           h.Log,
	}
	if o.Sim != nil {
		o.Sim(&scfg)
	}
	h.Sim = sim.New(scfg)
	simCtx, stopSim := context.WithCancel(context.Background())
	h.Sim.Start(simCtx)
	srv := httptest.NewServer(h.Sim.Handler())
	h.SimURL = srv.URL
	tb.Cleanup(func() { stopSim(); srv.Close() })

	defaults := config.Defaults()
	cfg := &defaults
	cfg.NATSURL = h.NATS.URL
	cfg.RedisURL = h.Redis.URL
	cfg.HTTPAddr = ln.Addr().String()
	cfg.APIKeys = Tenant + ":" + APIKey
	cfg.WhiteBaseURL = srv.URL
	cfg.WhitePhoneNumberID = PhoneNumberID
	cfg.WhiteToken = Token
	cfg.WhiteAppSecret = AppSecret
	cfg.WhiteVerifyToken = "verify-me"
	cfg.SMSURL = srv.URL + "/cgi-bin/sendsms"
	cfg.GreyBaseURL = srv.URL
	cfg.GreyInstanceID = GreyInstance
	cfg.GreyToken = Token
	cfg.GreyWebhookToken = GreyWebhookToken
	cfg.SMSDLRSecret = DLRSecret
	// Tests decide about quiet hours themselves: the wall clock must not. Limits are high
	// (but enforced) unless a test sets its own.
	cfg.QuietHours = "off"
	cfg.WhiteMPS, cfg.GreyMPS, cfg.PairInterval = 20000, 20000, 0
	cfg.SendTimeout = 5 * time.Second
	cfg.AckWait = 4 * time.Second
	cfg.RetryBaseDelay = 50 * time.Millisecond
	cfg.RetryMaxDelay = 500 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	if o.Config != nil {
		o.Config(cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	h.Cfg = cfg

	h.NC, h.JS = h.NATS.Connect(tb)
	h.RDB = h.Redis.Client(tb)
	h.Store = status.NewStore(h.RDB, cfg.StatusTTL, nil).ForBusiness(PhoneNumberID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := streams.Ensure(ctx, h.JS, app.StreamOptions(cfg)); err != nil {
		tb.Fatal(err)
	}
	kv, err := h.JS.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		tb.Fatal(err)
	}
	// The samples are the default tenant's (the producer's jobs) and every configured
	// tenant's (API keys, a fleet file): each tenant has its own catalogue.
	tenants := []string{job.DefaultTenant}
	for _, t := range cfg.Tenants() {
		tenants = append(tenants, t)
	}
	f, _, err := app.LoadFleet(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := templates.PutSamples(ctx, kv, templates.WABATenants(nil, "", append(tenants, f.TenantNames()...))...); err != nil {
		tb.Fatal(err)
	}
	h.Producer = producer.New(h.JS)

	// The API process.
	h.run(app.Parts{API: true, Listener: ln})
	if !o.NoWorker {
		h.StartWorker()
	}
	testutil.Eventually(tb, 10*time.Second, func() bool {
		resp, err := http.Get(h.APIURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "API ready")
	return h
}

// Worker is one running worker "process": its own NATS and Redis connections.
type Worker struct {
	cancel context.CancelFunc
	done   chan struct{}
	nc     *nats.Conn
	rdb    *redis.Client
}

// StartWorker starts one more worker with its own connections.
func (h *Herald) StartWorker() *Worker {
	h.tb.Helper()
	w := h.run(app.Parts{Worker: true, Listener: newLoopback(h.tb), Now: h.now})
	h.mu.Lock()
	h.workers = append(h.workers, w)
	h.mu.Unlock()
	return w
}

func newLoopback(tb testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

func (h *Herald) run(parts app.Parts) *Worker {
	h.tb.Helper()
	nc, err := app.ConnectNATS(h.Cfg, h.Log, "harness")
	if err != nil {
		h.tb.Fatal(err)
	}
	rdb, err := app.ConnectRedis(context.Background(), h.Cfg.RedisURL)
	if err != nil {
		h.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{cancel: cancel, done: make(chan struct{}), nc: nc, rdb: rdb}
	ready := make(chan struct{})
	parts.Ready = func() { close(ready) }
	go func() {
		defer close(w.done)
		if err := app.Run(ctx, h.Cfg, h.Log, nil, nc, rdb, parts); err != nil {
			h.Log.Error("app.Run", "err", err)
		}
	}()
	select {
	case <-ready:
	case <-w.done:
		h.tb.Fatal("app.Run ended before it was ready")
	case <-time.After(20 * time.Second):
		h.tb.Fatal("app.Run not ready within 20s")
	}
	h.tb.Cleanup(w.Stop)
	return w
}

// Stop stops the worker gracefully (SIGTERM) and closes its connections.
func (w *Worker) Stop() {
	w.cancel()
	<-w.done
	w.nc.Close()
	_ = w.rdb.Close()
}

// Kill closes the worker's connections and cancels it at once, as close to a crash as a
// goroutine allows: acks and records after this point are lost.
func (w *Worker) Kill() {
	w.nc.Close()
	w.cancel()
	<-w.done
	_ = w.rdb.Close()
}

// Record returns a job's status record (nil if none).
func (h *Herald) Record(id string) *status.Record {
	rec, err := h.Store.Get(context.Background(), job.Ref(Tenant, id))
	if err != nil {
		return nil
	}
	return rec
}

// SentPerJob counts the simulator's accepted sends per job id and channel ("white:id").
func (h *Herald) SentPerJob() map[string]int {
	n := map[string]int{}
	for _, m := range h.Sim.Messages() {
		if m.ErrorCode == 0 && m.HTTPStatus < 300 {
			n[m.Channel+":"+m.JobID]++
		}
	}
	return n
}

// DecodeJSON is a test helper decoding an HTTP response body.
func DecodeJSON(tb testing.TB, r io.Reader, v any) {
	tb.Helper()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		tb.Fatal(err)
	}
}
