// Package app assembles Herald's processes from the configuration: it connects to NATS and
// Redis, provisions JetStream, and runs the API, the worker or both, stopping them in a
// fixed order.
//
// Shutdown order on SIGTERM (the context given to Run is cancelled):
//  1. the HTTP server stops accepting requests and finishes the ones in progress;
//  2. the worker stops pulling, hands back buffered jobs and drains in-flight ones
//     (bounded by HERALD_SHUTDOWN_TIMEOUT, then its provider calls are cancelled);
//  3. the template watcher stops;
//  4. the caller closes the NATS connection (draining it) and Redis, then flushes telemetry.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/consent"
	"github.com/herald-notify/herald/internal/console"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/grey"
	"github.com/herald-notify/herald/internal/health"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/routing"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/smsnats"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/white"
	"github.com/herald-notify/herald/producer"
	"github.com/herald-notify/herald/worker"
)

// ConnectNATS connects to HERALD_NATS_URL (with HERALD_NATS_CREDS), reconnecting forever.
func ConnectNATS(cfg *config.Config, log *slog.Logger, name string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("HERALD_NATS_URL: connect: %w", err)
	}
	return nc, nil
}

// ConnectRedis connects to HERALD_REDIS_URL.
func ConnectRedis(ctx context.Context, url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("HERALD_REDIS_URL: %w", err)
	}
	opts.PoolSize = max(opts.PoolSize, 64)
	// Fail fast when Redis is gone: workers then stop sending at once (fail closed) and
	// probe until it is back, rather than each call retrying for a second.
	opts.MaxRetries = 1
	// RESP2: Herald needs nothing of RESP3, whose push-notification check costs a few
	// percent of a worker's CPU on every reply.
	opts.Protocol = 2
	opts.DialerRetries = 1
	opts.DialTimeout = 2 * time.Second
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		// Not fatal: Redis may come up after us; readiness reports it meanwhile.
		return rdb, fmt.Errorf("HERALD_REDIS_URL: ping: %w", err)
	}
	return rdb, nil
}

// StreamOptions derives the JetStream sizing from the configuration.
func StreamOptions(cfg *config.Config) streams.Options {
	return streams.Options{
		Replicas:        cfg.Replicas,
		DuplicateWindow: cfg.DuplicateWindow,
		AckWait:         AckWait(cfg),
		CampaignsMaxAge: cfg.StatusTTL,
		HistoryMaxAge:   cfg.StatusTTL,
	}
}

// AckWait is the consumers' ack wait: two provider calls (a fallback inside one delivery)
// and a margin.
func AckWait(cfg *config.Config) time.Duration {
	if cfg.AckWait > 0 {
		return cfg.AckWait
	}
	return 2*cfg.SendTimeout + 30*time.Second
}

// startRetryFor bounds how long a process keeps retrying its start-up steps.
const startRetryFor = 2 * time.Minute

// retryStart runs fn until it succeeds, ctx ends or startRetryFor passes, backing off from
// half a second to five.
func retryStart(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(startRetryFor)
	delay := 500 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		log.Warn("start-up step failed; retrying", "step", what, "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// headerRepublish counts the re-publishes of a failed asynchronous publish.
const headerRepublish = "Herald-Republish"

// republish retries status events and delivery deadlines, published without waiting, whose
// publish failed (a NATS node restarting, a leader election): five times, backing off from a
// quarter of a second. Their Nats-Msg-Id makes a repeat that did get stored a duplicate.
func republish(log *slog.Logger) jetstream.MsgErrHandler {
	return func(js jetstream.JetStream, m *nats.Msg, err error) {
		n, _ := strconv.Atoi(m.Header.Get(headerRepublish))
		if n >= 5 {
			log.Error("asynchronous publish failed for good", "subject", m.Subject, "attempts", n+1, "err", err)
			return
		}
		again := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
		for k, v := range m.Header {
			again.Header[k] = v
		}
		again.Header.Set(headerRepublish, strconv.Itoa(n+1))
		time.AfterFunc(250*time.Millisecond<<n, func() {
			if _, err := js.PublishMsgAsync(again); err != nil {
				log.Warn("asynchronous publish not retried", "subject", m.Subject, "err", err)
			}
		})
	}
}

// Parts selects what Run runs.
type Parts struct {
	API    bool
	Worker bool
	// Listener, when set, is used instead of listening on HERALD_HTTP_ADDR (tests, dev): the
	// public API's; for a worker alone, its ops listener (a worker serves nothing else).
	Listener net.Listener
	// OpsListener, when set, is used instead of listening on HERALD_OPS_ADDR.
	OpsListener net.Listener
	// Senders replace the channel adapters built from the configuration (tests).
	Senders map[string]worker.Sender
	// Ready, when set, is called once everything has started.
	Ready func()
	// Now is the worker's clock (tests); nil is time.Now.
	Now func() time.Time
}

// SenderStopSubject carries, over core NATS, a channel one worker stopped after an
// account-level error (worker.SenderStop), so that every worker stops it.
const SenderStopSubject = "herald.control.sender_stop"

// LoadFleet returns the deployment's fleet: the file HERALD_CONFIG_FILE names (read with the
// process's environment for its ${NAME}s; fromFile true), else the one sender of each kind
// the HERALD_* variables describe. The error names the file and every problem in it, and a
// key that the file and HERALD_API_KEYS give to different tenants.
func LoadFleet(cfg *config.Config) (f *fleet.Fleet, fromFile bool, err error) {
	if cfg.ConfigFile == "" {
		return fleet.FromEnv(*cfg), false, nil
	}
	if f, err = fleet.Load(cfg.ConfigFile, configEnv(cfg)); err != nil {
		return nil, false, fmt.Errorf("HERALD_CONFIG_FILE %s: %w", cfg.ConfigFile, err)
	}
	if _, err := api.FleetKeys(f, cfg.Tenants()); err != nil {
		return nil, false, fmt.Errorf("HERALD_CONFIG_FILE %s: %w", cfg.ConfigFile, err)
	}
	return f, true, nil
}

// configEnv is the environment a fleet file is read with: the process's, except that the
// HERALD_* defaults a file's senders inherit (base URLs, API version) are the configuration's
// values, the one reading of the environment.
func configEnv(cfg *config.Config) func(string) string {
	return func(name string) string {
		switch name {
		case "HERALD_WHITE_BASE_URL":
			return cfg.WhiteBaseURL
		case "HERALD_WHITE_API_VERSION":
			return cfg.WhiteAPIVersion
		case "HERALD_GREY_BASE_URL":
			return cfg.GreyBaseURL
		}
		return os.Getenv(name)
	}
}

// Run provisions JetStream and runs the selected parts until ctx is cancelled, then stops
// them in the documented order. The caller owns nc and rdb.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, tel *telemetry.Provider, nc *nats.Conn, rdb redis.UniversalClient, parts Parts) error {
	// The API routes webhooks and keys by the fleet: one it cannot read stops it at start.
	var apiFleet *fleet.Fleet
	var fleetFromFile bool
	if parts.API {
		var err error
		if apiFleet, fleetFromFile, err = LoadFleet(cfg); err != nil {
			return err
		}
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(republish(log)))
	if err != nil {
		return err
	}
	// A process may start while a NATS node restarts or a stream elects its leader: the
	// start-up steps are retried for a while rather than ending the process.
	var kv, campaignsKV, historyKV jetstream.KeyValue
	if err := retryStart(ctx, log, "provision JetStream", func(ctx context.Context) error {
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := streams.Ensure(ectx, js, StreamOptions(cfg)); err != nil {
			return err
		}
		var err error
		if kv, err = js.KeyValue(ectx, streams.TemplatesKV); err != nil {
			return err
		}
		if campaignsKV, err = js.KeyValue(ectx, streams.CampaignsKV); err != nil {
			return err
		}
		historyKV, err = js.KeyValue(ectx, streams.HistoryKV)
		return err
	}); err != nil {
		return err
	}
	// Scripts go through go-redis's autopipeliner: the claims, slots and outcomes of
	// hundreds of concurrent jobs share round trips instead of taking one each. Closed when
	// every part has stopped (deferred), before the caller closes rdb.
	ap, err := rdb.AutoPipeline()
	if err != nil {
		return fmt.Errorf("redis autopipeline: %w", err)
	}
	defer ap.Close()
	// Finished records move to the history bucket after HERALD_HOT_TTL: every reader below
	// (API, console, webhooks) goes through this store and finds them there. The archivers
	// outlive the parts (a draining worker still finishes records) and stop last.
	archiveCtx, stopArchive := context.WithCancel(context.WithoutCancel(ctx))
	archive := status.NewArchive(archiveCtx, historyKV, log)
	defer func() {
		stopArchive()
		archive.Wait()
	}()
	store := status.NewStore(rdb, cfg.StatusTTL, nil).Pipelined(ap).ForBusiness(cfg.WhitePhoneNumberID).
		WithArchive(archive, cfg.HotTTL)
	var metrics *telemetry.Metrics
	if tel != nil {
		metrics = tel.Metrics
	}
	// Consent survives a Redis that lost its data: the sets come back from the bucket.
	cons, err := consent.Open(ctx, js, rdb)
	if err != nil {
		return err
	}
	if _, err := cons.Rebuild(ctx, log); err != nil {
		log.Warn("suppression sets not checked against the consent bucket", "err", err)
	}
	// onReport records a delivery report that arrives outside HTTP (SMPP receipts, the nats
	// SMS driver's status subject) and publishes the change.
	onReport := func(ctx context.Context, r status.Report) error {
		old, rec, changed, err := store.Apply(ctx, r)
		if errors.Is(err, status.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if changed && old != rec.State {
			worker.PublishStatus(ctx, js, log, metrics, rec)
		}
		return nil
	}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	catCtx, stopCatalogue := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCatalogue()

	// The catalogue: workers render with it, the API checks template jobs against it.
	cat := templates.NewCatalogue(kv, log)
	if err := retryStart(ctx, log, "watch the template bucket", func(context.Context) error {
		if err := cat.Start(catCtx); err != nil {
			return fmt.Errorf("template catalogue: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	if parts.Worker {
		var camps *campaign.Watcher
		if err := retryStart(ctx, log, "watch the campaign bucket", func(context.Context) error {
			var err error
			camps, err = campaign.Watch(catCtx, campaignsKV, log)
			return err
		}); err != nil {
			return err
		}
		// A fleet file gives the worker its senders, pools and cascades; without one the
		// HERALD_* variables give one sender per channel, shared by every tenant.
		senders := parts.Senders
		var fr *fleetRoutes
		if senders == nil {
			if cfg.ConfigFile != "" {
				f, _, err := LoadFleet(cfg)
				if err != nil {
					return err
				}
				if fr, err = buildRoutes(catCtx, cfg, f, log, js, nc, rdb, metrics, onReport); err != nil {
					return fmt.Errorf("HERALD_CONFIG_FILE %s: %w", cfg.ConfigFile, err)
				}
			} else if senders, err = buildSenders(catCtx, cfg, log, js, nc, metrics, onReport); err != nil {
				return err
			}
		}
		// Sender health reaches every worker (herald.events.sender.<id>, re-read from Redis).
		var healthOpts []health.Option
		if metrics != nil {
			healthOpts = append(healthOpts, health.WithMetrics(metrics))
		}
		watcher, err := health.Watch(catCtx, nc, health.NewStore(rdb), senderIDs(fr, senders), log, healthOpts...)
		if err != nil {
			return fmt.Errorf("sender health: %w", err)
		}
		wcfg := worker.Config{
			Channels: cfg.Channels, Concurrency: cfg.Concurrency, SendTimeout: cfg.SendTimeout,
			ShutdownTimeout: cfg.ShutdownTimeout, AckWait: AckWait(cfg),
			RetryMaxAttempts: cfg.RetryMaxAttempts, RetryBaseDelay: cfg.RetryBaseDelay, RetryMaxDelay: cfg.RetryMaxDelay,
			FallbackAfter: cfg.FallbackAfter, QuietHours: cfg.Quiet(), Now: parts.Now,
			Limiter: ratelimit.New(rdb).Pipelined(ap), Limits: Limits(cfg), Campaigns: camps,
			Jobs: cfg.JobOptions(), Logger: log, Metrics: metrics,
			AnnounceStop: func(_ context.Context, s worker.SenderStop) {
				if b, err := json.Marshal(s); err == nil {
					if err := nc.Publish(SenderStopSubject, b); err != nil {
						log.Warn("sender stop not announced to the fleet", "channel", s.Channel, "err", err)
					}
				}
			},
			Health: watcher, Affinity: routing.NewAffinity(rdb, cfg.StickyTTL),
		}
		if fr != nil {
			wcfg.Routes, wcfg.Pools, wcfg.TenantChannels, wcfg.TenantQuietHours = fr.routes, fr.pools, fr.channels, fr.quiet
		}
		w := worker.New(js, store, cat, senders, wcfg)
		// Stops announced by the other workers (core NATS: a worker that misses one finds the
		// account error itself on its next call).
		stopSub, err := nc.Subscribe(SenderStopSubject, func(m *nats.Msg) {
			var s worker.SenderStop
			if json.Unmarshal(m.Data, &s) == nil && s.Channel != "" {
				w.StopSender(s)
			}
		})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", SenderStopSubject, err)
		}
		defer func() { _ = stopSub.Unsubscribe() }()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(workerCtx); err != nil {
				errc <- err
			}
		}()
	}

	var servers []*http.Server
	serve := func(srv *http.Server, ln net.Listener) {
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	var mh http.Handler
	if tel != nil {
		mh = tel.Handler()
	}
	// A template registered through the API goes to Meta for review when the WABA is known.
	var submitter api.TemplateSubmitter
	if cfg.WhiteWABAID != "" && cfg.WhiteToken != "" {
		submitter = white.New(white.Config{BaseURL: cfg.WhiteBaseURL, Version: cfg.WhiteAPIVersion, WABAID: cfg.WhiteWABAID, Token: cfg.WhiteToken}, nil)
	}
	handler := api.New(api.Config{
		Catalogue: cat, Submitter: submitter, Store: status.Indexing{Store: store}, Publisher: producer.New(js, producer.WithDefaults(cfg.DefaultRegion, cfg.DefaultLanguage)),
		JS: js, KV: kv, NATS: nc, Keys: cfg.Tenants(), AdminKeys: cfg.Admins(), Jobs: cfg.JobOptions(), Channels: cfg.Channels,
		WhiteAppSecret: cfg.WhiteAppSecret, WhiteVerifyToken: cfg.WhiteVerifyToken,
		Prices: Prices(cfg), Campaigns: campaign.Limited{KeyValue: campaignsKV, Max: cfg.CampaignsMaxPerTenant}, GreyWebhookToken: cfg.GreyWebhookToken, DLRSecret: []byte(cfg.SMSDLRSecret),
		Consent: cons, StopWords: cfg.StopWords, StartWords: cfg.StartWords,
		Fleet: apiFleet, RouteByFleet: fleetFromFile, Health: api.NewRedisHealth(rdb),
		Logger: log, Metrics: metrics, MetricsHandler: mh, Pprof: cfg.Pprof,
		WebhookMaxInFlight: cfg.WebhookMaxInFlight, APIRate: cfg.APIRate, APIBurst: cfg.APIBurst,
		APIMaxInFlightBytes: int64(cfg.APIMaxInFlightBytes),
		// The console (/console/) signs in with the same keys and calls this API in-process.
		Console: console.New(console.Config{Keys: cfg.Tenants(), AdminKeys: cfg.Admins(), Fleet: apiFleet, Records: store,
			JS: js, Campaigns: campaignsKV, Region: cfg.DefaultRegion, Logger: log}).Mount,
	})
	if parts.API {
		ln := parts.Listener
		if ln == nil {
			if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
				return fmt.Errorf("HERALD_HTTP_ADDR: %w", err)
			}
		}
		log.Info("HTTP server listening", "addr", ln.Addr().String())
		serve(PublicServer(cfg, handler), LimitListener(ln, cfg.HTTPMaxConns))
	}
	// The ops listener: HERALD_OPS_ADDR; for a worker alone, HERALD_HTTP_ADDR when that is
	// not set (it has no public routes). An API without HERALD_OPS_ADDR serves no metrics.
	opsLn := parts.OpsListener
	switch {
	case opsLn != nil:
	case cfg.OpsAddr != "":
		if opsLn, err = net.Listen("tcp", cfg.OpsAddr); err != nil {
			return fmt.Errorf("HERALD_OPS_ADDR: %w", err)
		}
	case !parts.API && parts.Listener != nil:
		opsLn = parts.Listener
	case !parts.API:
		if opsLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("HERALD_HTTP_ADDR: %w", err)
		}
	}
	if opsLn != nil {
		log.Info("ops listener (health, metrics) listening", "addr", opsLn.Addr().String(), "pprof", cfg.Pprof)
		serve(OpsServer(cfg, handler), LimitListener(opsLn, opsMaxConns))
	}
	if parts.API && cfg.SMSDriver == "nats" {
		sub, err := smsnats.Subscribe(catCtx, nc, smsnats.SubscribeConfig{Logger: log}, onReport)
		if err != nil {
			return fmt.Errorf("SMS status subscription: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if parts.Ready != nil {
		parts.Ready()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("shutting down")
	for _, srv := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	stopWorker()
	wg.Wait()
	stopCatalogue()
	return runErr
}

// buildSenders builds the channel adapters the configuration describes; a channel without its
// settings is left out (jobs fall back past it). Background parts of the adapters (the grey
// state poller, the SMPP link) run until ctx ends.
func buildSenders(ctx context.Context, cfg *config.Config, log *slog.Logger, js jetstream.JetStream, nc *nats.Conn, metrics *telemetry.Metrics, onReport func(context.Context, status.Report) error) (map[string]worker.Sender, error) {
	s := map[string]worker.Sender{}
	if cfg.WhitePhoneNumberID != "" && cfg.WhiteToken != "" {
		s[job.ChannelWhite] = worker.White{Client: white.New(white.Config{
			BaseURL: cfg.WhiteBaseURL, Version: cfg.WhiteAPIVersion, PhoneNumberID: cfg.WhitePhoneNumberID,
			WABAID: cfg.WhiteWABAID, Token: cfg.WhiteToken, Timeout: cfg.SendTimeout,
		}, nil)}
	}
	if cfg.GreyBaseURL != "" && cfg.GreyInstanceID != "" && cfg.GreyToken != "" {
		gc := newGrey(ctx, cfg, log, js, nc, metrics)
		s[job.ChannelGrey] = worker.Grey{Client: gc}
	}
	switch cfg.SMSDriver {
	case "kannel":
		if cfg.SMSURL != "" {
			s[job.ChannelSMS] = worker.SMS{Client: sms.NewKannel(sms.KannelConfig{
				URL: cfg.SMSURL, User: cfg.SMSUser, Password: cfg.SMSPassword, From: cfg.SMSFrom,
				DLRURL: PublicURL(cfg) + "/webhooks/sms", DLRSecret: []byte(cfg.SMSDLRSecret),
				MaxSegments: cfg.SMSMaxSegments, Timeout: cfg.SendTimeout,
			}, nil)}
		}
	case "nats":
		if _, err := smsnats.EnsureStream(ctx, js, cfg.SMSSubject); err != nil {
			return nil, fmt.Errorf("HERALD_SMS_SUBJECT: %w", err)
		}
		s[job.ChannelSMS] = worker.SMS{Client: smsnats.New(js, smsnats.Config{Subject: cfg.SMSSubject, From: cfg.SMSFrom, MaxSegments: cfg.SMSMaxSegments})}
	case "smpp":
		c, err := dialSMPP(ctx, cfg, log, onReport)
		if err != nil {
			return nil, err
		}
		s[job.ChannelSMS] = worker.SMS{Client: c}
	}
	return s, nil
}

// newGrey builds the grey adapter, polls the instance state, and follows the state changes
// the API receives by webhook.
func newGrey(ctx context.Context, cfg *config.Config, log *slog.Logger, js jetstream.JetStream, nc *nats.Conn, metrics *telemetry.Metrics) *grey.Client {
	gc := grey.New(grey.Config{
		BaseURL: cfg.GreyBaseURL, InstanceID: cfg.GreyInstanceID, Token: cfg.GreyToken, Logger: log, Timeout: cfg.SendTimeout,
		OnBlocked: func(ctx context.Context) {
			data, _ := json.Marshal(api.SenderBlocked{Channel: job.ChannelGrey, Instance: cfg.GreyInstanceID, At: time.Now().UTC()})
			m := &nats.Msg{Subject: streams.StatusSubject("sender_blocked"), Data: data, Header: nats.Header{}}
			m.Header.Set(streams.HeaderMsgID, "blocked:"+cfg.GreyInstanceID+":"+strconv.FormatInt(time.Now().Unix()/60, 10))
			if _, err := js.PublishMsg(ctx, m); err != nil {
				log.Error("sender_blocked event not published", "err", err)
			}
		},
		OnStateChange: func(from, to grey.BreakerState) {
			log.Warn("grey circuit breaker", "instance", cfg.GreyInstanceID, "from", from.String(), "to", to.String())
			if metrics != nil {
				metrics.BreakerState(cfg.GreyInstanceID, int64(to))
			}
		},
	}, nil)
	go gc.Watch(ctx, grey.DefaultWatchEvery)
	sub, err := nc.Subscribe(api.GreyStateSubject, func(m *nats.Msg) {
		var st api.GreyState
		if json.Unmarshal(m.Data, &st) == nil && st.Instance == cfg.GreyInstanceID {
			gc.ObserveState(ctx, st.State)
		}
	})
	if err == nil {
		context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	}
	return gc
}

// Limits derives each channel's pacing from the configuration. SMS is not paced: SMS
// gateways queue and throttle themselves.
func Limits(cfg *config.Config) map[string]worker.ChannelLimit {
	return map[string]worker.ChannelLimit{
		job.ChannelWhite: {
			Sender: "white:" + cfg.WhitePhoneNumberID, Rate: cfg.WhiteMPS, PairInterval: cfg.PairInterval,
			RecipientDailyMax: cfg.RecipientDailyMax, UniqueDailyMax: cfg.WhiteDailyUnique,
		},
		job.ChannelGrey: {
			// Grey numbers are banned for bursts: every gap is stretched at random by up to
			// half of itself.
			Sender: "grey:" + cfg.GreyInstanceID, Rate: cfg.GreyMPS, Jitter: 0.5, PairInterval: cfg.PairInterval,
			RecipientDailyMax: cfg.RecipientDailyMax, SenderDailyMax: cfg.GreyDailyMax,
		},
	}
}

// Prices are the campaign cost estimate's prices (HERALD_PRICE_*).
func Prices(cfg *config.Config) campaign.Prices {
	return campaign.Prices{Currency: cfg.PriceCurrency, Marketing: cfg.PriceMarketing, Utility: cfg.PriceUtility,
		Authentication: cfg.PriceAuthentication, SMS: cfg.PriceSMS, Grey: cfg.PriceGrey}
}

// PublicURL is where providers reach Herald (HERALD_PUBLIC_URL, else loopback on the HTTP
// port).
func PublicURL(cfg *config.Config) string {
	if cfg.PublicURL != "" {
		return strings.TrimRight(cfg.PublicURL, "/")
	}
	_, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil || port == "" {
		port = "8080"
	}
	return "http://127.0.0.1:" + port
}
