package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/embedded"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
)

// Dev defaults: the simulator stands in for every provider.
const (
	devKey          = "dev-key-change-me"
	devPhoneID      = "100200300"
	devWABAID       = "100200301"
	devToken        = "dev-token"
	devGreyInstance = "1101000001"
	devAppSecret    = "dev-app-secret"
	devVerifyToken  = "dev-verify-token"
	// devHTTPAddr is dev's API address when HERALD_HTTP_ADDR is not set.
	devHTTPAddr = "127.0.0.1:8080"
)

// cmdDev runs everything in one process: embedded nats-server (data in ./.herald), a
// durable Redis-compatible store unless HERALD_REDIS_URL is set (redis-server from the PATH
// with an append-only file, else the embedded one with its snapshot, both in ./.herald), the
// provider simulator, the API and a worker, with the sample templates loaded.
func cmdDev(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	// The API listens on loopback unless told otherwise: dev's key is printed in the README,
	// so a dev on every interface would take notifications from anyone on the network.
	if _, set := os.LookupEnv("HERALD_HTTP_ADDR"); !set {
		cfg.HTTPAddr = devHTTPAddr
	}
	return runDev(ctx, cfg, log, out, devEnv{
		DataDir: os.Getenv("HERALD_DATA_DIR"), SimAddr: os.Getenv("HERALD_SIM_ADDR"),
		RedisServer: os.Getenv(embedded.RedisServerEnv),
	})
}

// devEnv is what herald dev reads from the environment beside the configuration.
type devEnv struct {
	// DataDir holds JetStream's store and the Redis-compatible store's data (HERALD_DATA_DIR,
	// default .herald).
	DataDir string
	// SimAddr is the simulator's listen address (HERALD_SIM_ADDR, default any loopback port).
	SimAddr string
	// RedisServer names the redis-server binary to run (HERALD_REDIS_SERVER; "": the one on
	// the PATH, "none": the embedded store).
	RedisServer string
}

// runDev is herald dev with its environment read.
func runDev(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer, env devEnv) error {
	dataDir := env.DataDir
	if dataDir == "" {
		dataDir = ".herald"
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("HERALD_DATA_DIR: %w", err)
	}
	tel, err := telemetry.Setup(ctx, "herald-dev")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	if cfg.NATSURL == "" {
		ns, err := embedded.StartNATS(filepath.Join(dataDir, "nats"), "127.0.0.1", -1)
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		cfg.NATSURL = ns.URL
		log.Info("embedded nats-server started", "url", ns.URL, "store", filepath.Join(dataDir, "nats"))
	}
	if cfg.RedisURL == "" {
		// Durable, like the JetStream store beside it: the records and claims that stop a
		// second send of an id survive a restart of herald dev.
		rs, kind, err := embedded.OpenRedis(ctx, filepath.Join(dataDir, "redis"), env.RedisServer, log)
		if err != nil {
			return fmt.Errorf("the Redis-compatible store of herald dev (%s): %w", embedded.RedisServerEnv, err)
		}
		// Closed after app.Run has returned (defers run last-in first-out): the last write is
		// in before the store stops.
		defer func() {
			if err := rs.Close(); err != nil {
				log.Error("Redis-compatible store not stopped cleanly", "err", err)
			}
		}()
		cfg.RedisURL = rs.URL()
		log.Info("Redis-compatible store started", "kind", kind, "url", rs.URL(), "data", filepath.Join(dataDir, "redis"))
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HERALD_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	apiURL := "http://" + loopback(ln.Addr())
	cfg.HTTPAddr = ln.Addr().String()
	// Metrics and health on loopback, apart from the API: 127.0.0.1:9090 unless it is taken.
	opsLn, err := devOpsListener(cfg.OpsAddr)
	if err != nil {
		return err
	}
	opsURL := "http://" + loopback(opsLn.Addr())
	// The webhook secrets are made at start: the simulator signs with them, nothing else
	// needs them, and no fixed one can be copied into a real deployment.
	if cfg.GreyWebhookToken == "" {
		cfg.GreyWebhookToken = randomSecret()
	}
	if cfg.SMSDLRSecret == "" {
		cfg.SMSDLRSecret = randomSecret()
	}

	simAddr := env.SimAddr
	if simAddr == "" {
		simAddr = "127.0.0.1:0"
	}
	simLn, err := net.Listen("tcp", simAddr)
	if err != nil {
		return fmt.Errorf("HERALD_SIM_ADDR %s: %w", simAddr, err)
	}
	simURL := "http://" + simLn.Addr().String()
	s := sim.New(sim.Config{
		PhoneNumberID: devPhoneID, Token: devToken, AppSecret: devAppSecret,
		WebhookURL: apiURL + "/webhooks/whatsapp", StatusDelay: 500 * time.Millisecond,
		Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond, MaxMessages: 100000, Logger: log,
		Templates: sampleTemplateJSON(), GreyInstanceID: devGreyInstance, GreyToken: devToken,
		GreyWebhookURL: apiURL + "/webhooks/grey",
		// The gateway sends its webhookUrlToken on every webhook, as GREEN-API does.
		GreyWebhookToken: cfg.GreyWebhookToken,
	})
	simCtx, stopSim := context.WithCancel(context.Background())
	defer stopSim()
	s.Start(simCtx)
	simSrv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	defer simSrv.Close()

	// The simulator stands in for every provider unless the environment names real ones.
	if os.Getenv("HERALD_WHITE_BASE_URL") == "" {
		cfg.WhiteBaseURL, cfg.WhitePhoneNumberID, cfg.WhiteToken = simURL, devPhoneID, devToken
		cfg.WhiteAppSecret, cfg.WhiteVerifyToken = devAppSecret, devVerifyToken
		cfg.WhiteWABAID = devWABAID // templates add submits there; the simulator reviews them
	}
	if cfg.SMSURL == "" {
		cfg.SMSURL = simURL + "/cgi-bin/sendsms"
	}
	if cfg.GreyBaseURL == "" {
		cfg.GreyBaseURL, cfg.GreyInstanceID, cfg.GreyToken = simURL, devGreyInstance, devToken
	}
	if cfg.APIKeys == "" {
		// The default tenant: what herald import, herald dlq and a producer without a
		// tenant publish belongs to it too, so the tour sees one tenant's data throughout.
		cfg.APIKeys = job.DefaultTenant + ":" + devKey
	}
	cfg.PublicURL = apiURL

	nc, err := app.ConnectNATS(cfg, log, "herald-dev")
	if err != nil {
		return err
	}
	defer nc.Close()
	rdb, err := app.ConnectRedis(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := streams.Ensure(ectx, js, app.StreamOptions(cfg)); err != nil {
		return err
	}
	if err := loadSamples(ectx, js, cfg); err != nil {
		return err
	}

	ready := func() {
		fmt.Fprintf(out, devBanner, apiURL, opsURL, simURL, firstKey(cfg), cfg.NATSURL, apiURL, firstKey(cfg), apiURL, simURL)
	}
	err = app.Run(ctx, cfg, log, tel, nc, rdb, app.Parts{API: true, Worker: true, Listener: ln, OpsListener: opsLn, Ready: ready})
	_ = nc.Drain()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

const devBanner = `
Herald is running (all in one process).
  API and webhooks   %s
  health, metrics    %s   (loopback only)
  provider simulator %s   (GET /sim/messages lists what was "sent")
  API key            %s
  NATS               %s   (HERALD_NATS_URL for herald import, dlq, templates sync)

Send the sample "order ready" notification:

  curl -s -X POST %s/v1/notifications \
    -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
    -d '{"id":"order-123456-ready","to":"+79001234567","template":"order_ready","params":{"order":"123456","address":"ул. Текстильщиков, д. 20","until":"21.02.2027"},"buttons":{"0":"123456"},"sms_text":"Заказ 123456 ждёт вас до 21.02.2027"}'

Then watch it reach the simulator and turn delivered, then read:

  curl -s %s/v1/notifications/order-123456-ready -H 'Authorization: Bearer dev-key-change-me'
  curl -s %s/sim/messages

Press Ctrl-C to stop.
`

// devOpsAddr is where herald dev serves health and metrics unless HERALD_OPS_ADDR says.
const devOpsAddr = "127.0.0.1:9090"

// devOpsListener listens on HERALD_OPS_ADDR, else on devOpsAddr, else (9090 taken, by
// another herald dev say) on any free loopback port.
func devOpsListener(addr string) (net.Listener, error) {
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("HERALD_OPS_ADDR %s: %w", addr, err)
		}
		return ln, nil
	}
	if ln, err := net.Listen("tcp", devOpsAddr); err == nil {
		return ln, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("HERALD_OPS_ADDR: %w", err)
	}
	return ln, nil
}

// randomSecret is 32 random bytes in hex: a webhook secret no one else knows.
func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func firstKey(cfg *config.Config) string {
	for k := range cfg.Tenants() {
		return k
	}
	return ""
}

func loopback(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// loadSamples puts the sample templates, approved, in the catalogue of the default tenant
// and of every tenant configured (HERALD_API_KEYS, where the tour's key is, and a fleet
// file), unless a tenant has them already.
func loadSamples(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
	kv, err := js.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		return err
	}
	tenants, _, err := configuredTenants(cfg)
	if err != nil {
		return err
	}
	for _, t := range templates.WABATenants(nil, "", append(tenants, job.DefaultTenant)) {
		for _, d := range templates.SampleDefinitions() {
			if _, err := templates.Get(ctx, kv, t, d.Name, d.Language); err == nil {
				continue
			}
			if _, err := templates.Put(ctx, kv, t, d); err != nil {
				return fmt.Errorf("sample template %s of tenant %s: %w", d.Name, t, err)
			}
		}
	}
	return nil
}

func sampleTemplateJSON() []json.RawMessage {
	var out []json.RawMessage
	for _, d := range templates.SampleDefinitions() {
		b, _ := json.Marshal(d)
		out = append(out, b)
	}
	return out
}
