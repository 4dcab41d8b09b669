// Package chaos proves Herald's delivery guarantees under failure: it runs a whole Herald
// as real processes (a 3-node JetStream cluster with R3 streams, redis-server with an
// append-only file, three `herald worker` processes, `herald api` for the status webhooks,
// and the provider simulator over HTTP), publishes jobs with the producer, and meanwhile
// kills a random worker with SIGKILL every few seconds (and starts it again), and hard-
// restarts one NATS node and Redis once each. At the end it checks every job id against
// Redis and the simulator's log and reports lost jobs, duplicates and unknown outcomes.
//
// `make chaos` (cmd/heraldchaos) runs 50,000 jobs; the package's test runs a small version.
//
// # Windows in which a duplicate is still possible
//
// Herald sends a job id at most once: a delivery claims the job in Redis (a leased claim in
// the status record, one Lua script) before the provider call and records the outcome in the
// same record before it acks the message. What is left:
//
//   - A worker killed after the provider accepted the message and before Redis recorded it:
//     the claim outlives the worker (lease = ack wait + 10 s), every redelivery meanwhile
//     answers busy, and when the lease ends the next delivery records the attempt as
//     'unknown' and does NOT resend on that channel. No duplicate. The provider's status
//     report (matched by job id) resolves the attempt, and the delivery deadline falls back
//     to the next channel unless a report says delivered, so a message that never went out
//     is not lost either; the report counts what is still unknown at the end (and how many
//     of those the provider never saw).
//   - A worker that is alive but stalled (GC pause, SIGSTOP, a network partition from Redis)
//     for longer than the lease during its provider call: the next delivery takes the job as
//     'unknown' (not resent), so still no duplicate; only a provider call that outlasts the
//     lease AND a second delivery that claims afresh could double-send, which the lease
//     (longer than HERALD_SEND_TIMEOUT) rules out.
//   - Redis losing acknowledged writes: with appendfsync everysec a crash forgets up to a
//     second of claims and records, and a redelivered job whose record vanished is claimed
//     afresh and sent again. This run uses appendfsync always (fsync before the reply), which
//     closes the window for a Redis process crash; a replica failover with asynchronous
//     replication re-opens it (use WAIT or a synchronously replicated store for that).
//   - The producer retrying a publish across a NATS node restart: JetStream's duplicate window
//     (Nats-Msg-Id = job id) drops the copy, and a copy past the window is stopped by the
//     record in Redis (which lives for HERALD_STATUS_TTL).
//   - The status record expiring (HERALD_STATUS_TTL) before the same id is published again.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/benchenv"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/producer"
)

// Config is one chaos run. Zero values take the defaults noted.
type Config struct {
	// Dir holds the servers' stores and every process's log (required).
	Dir string
	// Bin are the binaries (see Build).
	Bin Binaries
	// Jobs to publish (default 3,000).
	Jobs int
	// Rate is HERALD_WHITE_MPS, the fleet-wide send rate; it stretches the run to about
	// Jobs/Rate so that the chaos has something to hit (default 150).
	Rate float64
	// Workers is the number of `herald worker` processes (default 3).
	Workers int
	// KillEvery is the period of the worker kills (default 3 s).
	KillEvery time.Duration
	// NATSRestartAt and RedisRestartAt are when, from the first publish, one NATS node and
	// Redis are killed (SIGKILL) and started again (defaults: 25 % and 50 % of Jobs/Rate).
	NATSRestartAt, RedisRestartAt time.Duration
	// Downtime is how long the NATS node and Redis stay down (default 2 s).
	Downtime time.Duration
	// SimLatency is the simulator's response time per provider call (default 10 ms); it is
	// the window in which a kill leaves an unknown outcome.
	SimLatency time.Duration
	// AckWait is HERALD_ACK_WAIT (default 4 s); a dead worker's claims run out at AckWait+10 s.
	AckWait time.Duration
	// SettleTimeout bounds the wait, after the chaos, for every job to settle (default 2 min).
	SettleTimeout time.Duration
	// Seed makes the chaos schedule reproducible (0: random).
	Seed uint64
	// Log receives progress; nil discards.
	Log *slog.Logger
}

func (c *Config) defaults() error {
	if c.Dir == "" {
		return errors.New("chaos: Config.Dir is required")
	}
	if c.Bin.Herald == "" || c.Bin.NATSServer == "" || c.Bin.RedisServer == "" {
		return errors.New("chaos: Config.Bin is incomplete (use Build)")
	}
	if c.Jobs <= 0 {
		c.Jobs = 3000
	}
	if c.Rate <= 0 {
		c.Rate = 150
	}
	if c.Workers <= 0 {
		c.Workers = 3
	}
	if c.KillEvery <= 0 {
		c.KillEvery = 3 * time.Second
	}
	expected := time.Duration(float64(c.Jobs) / c.Rate * float64(time.Second))
	if c.NATSRestartAt <= 0 {
		c.NATSRestartAt = expected / 4
	}
	if c.RedisRestartAt <= 0 {
		c.RedisRestartAt = expected / 2
	}
	if c.Downtime <= 0 {
		c.Downtime = 2 * time.Second
	}
	if c.SimLatency <= 0 {
		c.SimLatency = 10 * time.Millisecond
	}
	if c.AckWait <= 0 {
		c.AckWait = 4 * time.Second
	}
	if c.SettleTimeout <= 0 {
		c.SettleTimeout = 2 * time.Minute
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Report is the outcome of a run. A job is settled when its record is done (sent, delivered
// or read: the provider accepted it, or the attempt is recorded as unknown) or final
// (failed, expired, suppressed, rejected, canceled).
type Report struct {
	Jobs      int
	Published int
	// PublishRetries counts batches of publishes repeated after an error or a lost
	// acknowledgement; PublishDuplicates the acknowledgements JetStream marked as duplicates
	// (a retry of a publish that had in fact been stored).
	PublishRetries, PublishDuplicates int
	Seed                              uint64
	Duration                          time.Duration
	// Kills are worker SIGKILLs (each followed by a restart).
	Kills, WorkerRestarts int
	NATSRestarts          int
	NATSNode              string
	RedisRestarts         int
	// RedisKeysBefore and RedisKeysAfter count the status records (herald:n:*) just before
	// Redis was killed and after it came back: they outlive the restart when After >= Before.
	// (Not DBSIZE: rate-limit keys expire within seconds, so the total may fall by itself.)
	RedisKeysBefore, RedisKeysAfter int64
	// Sends are the provider calls the simulator accepted.
	Sends int
	// Duplicates are job ids the simulator accepted more than once (on any channel);
	// ExtraSends the sends beyond the first.
	Duplicates, ExtraSends int
	// Unknown are records with an 'unknown' attempt (the worker died during the provider
	// call); UnknownNotSent those of them the simulator never received.
	Unknown, UnknownNotSent int
	// Lost are job ids without a settled record, or recorded as sent without the provider
	// ever receiving them (and no unknown attempt to explain it).
	Lost int
	// NoDeadline are records still only sent on WhatsApp (never reported delivered) with no
	// delivery deadline parked in HERALD_JOBS: their SMS fallback would never go out. They
	// count as lost too.
	NoDeadline int
	// States counts the records by state.
	States map[string]int
	// QueueLeft is what the worker consumers still had pending or unacknowledged at the end.
	QueueLeft uint64
	// Crashes names the processes that exited without being killed (with the count).
	Crashes []string
	// Details describe each duplicate and lost job (up to 20 each): the record and the sends.
	Details []string
	// Timeline lists the chaos events.
	Timeline []string
}

// Run runs one chaos scenario and returns its report. Every process it starts is killed
// before it returns, on success or failure. The error reports a run that could not be
// carried out (a server that did not start); lost jobs and duplicates are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &chaosRun{cfg: cfg, rep: &Report{Jobs: cfg.Jobs, Seed: cfg.Seed, States: map[string]int{}},
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	defer r.stopAll()
	if err := r.run(ctx); err != nil {
		return r.rep, err
	}
	return r.rep, nil
}

type chaosRun struct {
	cfg Config
	rep *Report
	rng *rand.Rand

	mu       sync.Mutex
	procs    []*proc
	closers  []func()
	timeline []string
	start    time.Time

	nodes   []*natsNode
	redis   *redisNode
	workers []*proc
	sim     *sim.Sim
	simURL  string
	apiURL  string
	env     []string
	nc      *nats.Conn
	js      jetstream.JetStream
	rdb     *redis.Client
	ids     []string
}

func (r *chaosRun) track(p *proc) {
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
}

// stopAll kills every process by pid (workers first, servers last).
func (r *chaosRun) stopAll() {
	r.mu.Lock()
	ps := slices.Clone(r.procs)
	r.mu.Unlock()
	slices.Reverse(ps)
	for _, p := range ps {
		p.kill()
	}
	for _, c := range r.closers {
		c()
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.rdb != nil {
		_ = r.rdb.Close()
	}
}

func (r *chaosRun) event(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	at := time.Duration(0)
	if !r.start.IsZero() {
		at = time.Since(r.start).Round(100 * time.Millisecond)
	}
	r.timeline = append(r.timeline, fmt.Sprintf("%7s  %s", at, msg))
	r.mu.Unlock()
	r.cfg.Log.Info(msg, "at", at)
}

func (r *chaosRun) run(ctx context.Context) error {
	cfg := r.cfg
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	var err error
	if r.nodes, err = startCluster(ctx, cfg.Bin.NATSServer, cfg.Dir, 3); err != nil {
		for _, n := range r.nodes {
			if n != nil {
				r.track(n.proc)
			}
		}
		return err
	}
	for _, n := range r.nodes {
		r.track(n.proc)
	}
	cfg.Log.Info("NATS cluster healthy", "nodes", len(r.nodes))
	if r.redis, err = startRedis(ctx, cfg.Bin.RedisServer, cfg.Dir); err != nil {
		if r.redis != nil {
			r.track(r.redis.proc)
		}
		return err
	}
	r.track(r.redis.proc)
	var urls []string
	for _, n := range r.nodes {
		urls = append(urls, n.url)
	}
	natsURL := strings.Join(urls, ",")
	r.nc, err = nats.Connect(natsURL, nats.Name("heraldchaos"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		// Connection errors while a node is down are expected: log them, do not print them.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { cfg.Log.Debug("nats", "err", err) }))
	if err != nil {
		return err
	}
	if r.js, err = jetstream.New(r.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		return err
	}
	r.rdb = redis.NewClient(&redis.Options{Addr: r.redis.addr})

	// The same sizing every Herald process derives from the environment below, so that
	// provisioning here and in each process agree (R3, the ack wait).
	hc := config.Defaults()
	hc.Replicas, hc.AckWait = 3, cfg.AckWait
	if err := benchenv.Poll(ctx, nil, time.Minute, "streams provisioned", func(ctx context.Context) error {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return streams.Ensure(ectx, r.js, app.StreamOptions(&hc))
	}); err != nil {
		return err
	}
	// A bucket just created on R3 may not have elected its leader yet ("no responders"):
	// seeding is retried like provisioning (a repeated Put only bumps the version).
	if err := benchenv.Poll(ctx, nil, time.Minute, "templates seeded", func(ctx context.Context) error {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		kv, err := r.js.KeyValue(ectx, streams.TemplatesKV)
		if err != nil {
			return err
		}
		return templates.PutSamples(ectx, kv)
	}); err != nil {
		return err
	}

	cfg.Log.Info("streams provisioned (R3)")
	if err := r.startSimAndAPI(ctx, natsURL); err != nil {
		return err
	}
	cfg.Log.Info("simulator and API ready", "sim", r.simURL, "api", r.apiURL)
	for i := range cfg.Workers {
		port, err := benchenv.FreePort()
		if err != nil {
			return err
		}
		w := newProc(fmt.Sprintf("worker-%d", i+1), cfg.Bin.Herald, filepath.Join(cfg.Dir, fmt.Sprintf("worker-%d.log", i+1)),
			[]string{"worker"}, append(slices.Clone(r.env), "HERALD_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port)))
		if err := w.start(); err != nil {
			return err
		}
		r.track(w)
		r.workers = append(r.workers, w)
		if err := benchenv.WaitHTTP(ctx, w.current(), fmt.Sprintf("http://127.0.0.1:%d/readyz", port), time.Minute); err != nil {
			return err
		}
	}
	return r.scenario(ctx)
}

func (r *chaosRun) startSimAndAPI(ctx context.Context, natsURL string) error {
	cfg := r.cfg
	apiPort, err := benchenv.FreePort()
	if err != nil {
		return err
	}
	r.apiURL = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	const secret, token, phoneID = "chaos-app-secret", "chaos-token", "100200300"
	simLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	if f, err := os.Create(filepath.Join(cfg.Dir, "sim.log")); err == nil {
		simLog = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	r.sim = sim.New(sim.Config{
		PhoneNumberID: phoneID, Token: token, AppSecret: secret,
		WebhookURL: r.apiURL + "/webhooks/whatsapp", Statuses: []string{"sent", "delivered"},
		Latency: cfg.SimLatency, Jitter: cfg.SimLatency, Logger: simLog,
	})
	sctx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
	r.sim.Start(sctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stopSim()
		return err
	}
	srv := &http.Server{Handler: r.sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	r.simURL = "http://" + ln.Addr().String()
	r.mu.Lock()
	r.closers = append(r.closers, func() { stopSim(); _ = srv.Close() })
	r.mu.Unlock()

	// Added to this process's environment by benchenv.Launch.
	r.env = []string{
		"HERALD_NATS_URL=" + natsURL, "HERALD_REDIS_URL=" + r.redis.url, "HERALD_STREAM_REPLICAS=3",
		"HERALD_WHITE_BASE_URL=" + r.simURL, "HERALD_WHITE_PHONE_NUMBER_ID=" + phoneID, "HERALD_WHITE_TOKEN=" + token,
		"HERALD_WHITE_APP_SECRET=" + secret, "HERALD_WHITE_VERIFY_TOKEN=chaos-verify",
		"HERALD_SMS_URL=" + r.simURL + "/cgi-bin/sendsms", "HERALD_CHANNELS=white,sms",
		"HERALD_SMS_DLR_SECRET=chaos-dlr-secret-0123456789abcdef",
		"HERALD_API_KEYS=chaos:chaos-key-0001", "HERALD_PUBLIC_URL=" + r.apiURL,
		"HERALD_WHITE_MPS=" + strconv.FormatFloat(cfg.Rate, 'f', -1, 64), "HERALD_PAIR_INTERVAL=0s",
		"HERALD_QUIET_HOURS=off",
		// No delivery-deadline fallback inside a run: a second message on SMS would be by
		// design, but it would blur the duplicate count.
		"HERALD_FALLBACK_AFTER=1h",
		"HERALD_ACK_WAIT=" + cfg.AckWait.String(), "HERALD_SEND_TIMEOUT=2s",
		"HERALD_RETRY_BASE_DELAY=100ms", "HERALD_RETRY_MAX_DELAY=1s", "HERALD_SHUTDOWN_TIMEOUT=5s",
		"HERALD_LOG_LEVEL=warn", "HERALD_LOG_FORMAT=text",
	}
	api := newProc("api", cfg.Bin.Herald, filepath.Join(cfg.Dir, "api.log"), []string{"api"},
		append(slices.Clone(r.env), "HERALD_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(apiPort)))
	if err := api.start(); err != nil {
		return err
	}
	r.track(api)
	return benchenv.WaitHTTP(ctx, api.current(), r.apiURL+"/readyz", time.Minute)
}

// scenario publishes the jobs while the chaos runs, then waits for every job to settle and
// tallies the result.
func (r *chaosRun) scenario(ctx context.Context) error {
	cfg := r.cfg
	r.ids = make([]string, cfg.Jobs)
	for i := range r.ids {
		r.ids[i] = fmt.Sprintf("chaos-%07d", i)
	}
	expected := time.Duration(float64(cfg.Jobs) / cfg.Rate * float64(time.Second))
	r.mu.Lock()
	r.start = time.Now()
	r.mu.Unlock()
	r.event("start: %d jobs at %.0f/s (about %s), %d workers, kill every %s, seed %d", cfg.Jobs, cfg.Rate, expected.Round(time.Second), cfg.Workers, cfg.KillEvery, cfg.Seed)

	chaosCtx, stopChaos := context.WithCancel(ctx)
	defer stopChaos()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(4)
	go func() { defer wg.Done(); errc <- r.publish(chaosCtx) }()
	// Kills stop a little before the expected end of the sends: a kill after that only adds
	// a lease (ack wait + 10 s) to the tail without hitting many sends.
	go func() { defer wg.Done(); errc <- r.killWorkers(chaosCtx, expected*3/4) }()
	go func() { defer wg.Done(); errc <- r.restartNATS(chaosCtx, cfg.NATSRestartAt) }()
	go func() { defer wg.Done(); errc <- r.restartRedis(chaosCtx, cfg.RedisRestartAt) }()
	var firstErr error
	for range 4 {
		if err := <-errc; err != nil && firstErr == nil {
			firstErr = err
			stopChaos()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	// Every node must be healthy again before the tally: a settled count read from a
	// recovering cluster proves less.
	for _, n := range r.nodes {
		if err := n.waitHealthy(ctx, time.Minute); err != nil {
			return err
		}
	}
	r.event("chaos over; waiting up to %s for every job to settle", cfg.SettleTimeout)
	settleErr := benchenv.Poll(ctx, nil, cfg.SettleTimeout, "every job settled and the queue empty", func(ctx context.Context) error {
		n, err := r.countSettled(ctx)
		if err != nil {
			return err
		}
		if n < len(r.ids) {
			return fmt.Errorf("%d of %d settled", n, len(r.ids))
		}
		left, err := r.queueLeft(ctx)
		if err == nil && left > 0 {
			err = fmt.Errorf("%d left in the queue", left)
		}
		return err
	})
	if settleErr != nil {
		r.event("%v", settleErr)
	} else {
		r.event("every job settled, queue empty")
	}
	r.rep.Duration = time.Since(r.start)
	r.mu.Lock()
	for _, p := range r.procs {
		if n := p.crashes(); n > 0 {
			r.rep.Crashes = append(r.rep.Crashes, fmt.Sprintf("%s×%d", p.name(), n))
		}
	}
	r.mu.Unlock()
	r.rep.QueueLeft, _ = r.queueLeft(ctx)
	if err := r.tally(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	r.rep.Timeline = slices.Clone(r.timeline)
	r.mu.Unlock()
	return nil
}

// publish publishes every job in chunks at twice the send rate (so publishing overlaps the
// NATS restart), retrying whatever was not acknowledged with the same ids.
func (r *chaosRun) publish(ctx context.Context) error {
	const chunk = 250
	p := producer.New(r.js, producer.WithMaxInFlight(1024))
	every := time.Duration(float64(chunk) / (2 * r.cfg.Rate) * float64(time.Second))
	t := time.NewTicker(every)
	defer t.Stop()
	var dup, retries atomic.Int64
	published := 0
	for i := 0; i < len(r.ids); i += chunk {
		jobs := make([]*producer.Job, 0, chunk)
		for k := i; k < min(i+chunk, len(r.ids)); k++ {
			jobs = append(jobs, &producer.Job{ID: r.ids[k], To: fmt.Sprintf("+7900%07d", k), Template: "order_ready",
				Params:  map[string]string{"order": strconv.Itoa(k), "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
				Buttons: map[string]string{"0": strconv.Itoa(k)}})
		}
		for attempt := 0; len(jobs) > 0; attempt++ {
			if attempt > 0 {
				retries.Add(1)
				if attempt > 200 {
					return fmt.Errorf("publish: %d jobs not acknowledged after %d attempts", len(jobs), attempt)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, time.Second)): // backoff of the retry schedule
				}
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, _ := p.PublishBatch(pctx, jobs)
			cancel()
			var again []*producer.Job
			for k, rs := range res {
				ok := rs.Err == nil && (rs.Sequence > 0 || rs.Duplicate)
				if !ok {
					// Validation has normalised the job in place; publishing it again is the
					// same message with the same Nats-Msg-Id.
					again = append(again, jobs[k])
					continue
				}
				published++
				if rs.Duplicate {
					dup.Add(1)
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			jobs = again
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	r.mu.Lock()
	r.rep.Published, r.rep.PublishDuplicates, r.rep.PublishRetries = published, int(dup.Load()), int(retries.Load())
	r.mu.Unlock()
	r.event("published %d jobs (%d batch retries, %d acknowledged as duplicates)", published, retries.Load(), dup.Load())
	return nil
}

// killWorkers SIGKILLs a random worker every KillEvery until the expected end of the
// sends, starting it again at once, as a supervisor would.
func (r *chaosRun) killWorkers(ctx context.Context, until time.Duration) error {
	t := time.NewTicker(r.cfg.KillEvery)
	defer t.Stop()
	end := time.NewTimer(until)
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-end.C:
			return nil
		case <-t.C:
		}
		r.mu.Lock()
		w := r.workers[r.rng.IntN(len(r.workers))]
		r.mu.Unlock()
		pid := w.current().Pid()
		w.kill()
		r.rep.Kills++
		if err := w.start(); err != nil {
			return err
		}
		r.rep.WorkerRestarts++
		r.event("kill -9 %s (pid %d), restarted", w.name(), pid)
	}
}

// afterOrDone waits d, false if ctx ended first.
func afterOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// restartNATS kills one node at `at`, keeps it down for Downtime and starts it again on the
// same ports and store.
func (r *chaosRun) restartNATS(ctx context.Context, at time.Duration) error {
	if !afterOrDone(ctx, at) {
		return nil
	}
	r.mu.Lock()
	n := r.nodes[r.rng.IntN(len(r.nodes))]
	r.mu.Unlock()
	n.kill()
	r.event("kill -9 %s", n.name())
	if !afterOrDone(ctx, r.cfg.Downtime) {
		return nil
	}
	if err := n.start(); err != nil {
		return err
	}
	if err := n.waitHealthy(ctx, 2*time.Minute); err != nil {
		return err
	}
	r.rep.NATSRestarts++
	r.rep.NATSNode = n.name()
	r.event("%s restarted and current", n.name())
	return nil
}

// restartRedis kills redis-server at `at`, keeps it down for Downtime, and starts it again
// from its append-only file.
func (r *chaosRun) restartRedis(ctx context.Context, at time.Duration) error {
	if !afterOrDone(ctx, at) {
		return nil
	}
	before := countRecords(ctx, r.rdb)
	r.redis.kill()
	r.event("kill -9 redis (%d records)", before)
	if !afterOrDone(ctx, r.cfg.Downtime) {
		return nil
	}
	if err := r.redis.startAndWait(ctx); err != nil {
		return err
	}
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis after restart: %w", err)
	}
	after := countRecords(ctx, r.rdb)
	r.rep.RedisRestarts++
	r.rep.RedisKeysBefore, r.rep.RedisKeysAfter = before, after
	r.event("redis restarted from its AOF (%d records)", after)
	return nil
}

// records reads every job's record (nil where there is none).
func (r *chaosRun) records(ctx context.Context) ([]*status.Record, error) {
	out := make([]*status.Record, len(r.ids))
	const batch = 1000
	for i := 0; i < len(r.ids); i += batch {
		keys := make([]string, 0, batch)
		for _, id := range r.ids[i:min(i+batch, len(r.ids))] {
			keys = append(keys, status.RecordKey(job.Ref("", id)))
		}
		vals, err := r.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("read records: %w", err)
		}
		for k, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue
			}
			var rec status.Record
			if err := json.Unmarshal([]byte(s), &rec); err != nil {
				return nil, fmt.Errorf("record %s: %w", r.ids[i+k], err)
			}
			out[i+k] = &rec
		}
	}
	return out, nil
}

// Settled tells whether a record state is settled: done (sent, delivered, read) or final.
func Settled(state string) bool {
	switch state {
	case status.Sent, status.Delivered, status.Read:
		return true
	}
	return status.Terminal(state)
}

func (r *chaosRun) countSettled(ctx context.Context) (int, error) {
	recs, err := r.records(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range recs {
		if rec != nil && Settled(rec.State) {
			n++
		}
	}
	return n, nil
}

// queueLeft is what the worker consumers have pending or unacknowledged.
func (r *chaosRun) queueLeft(ctx context.Context) (uint64, error) {
	var n uint64
	for _, name := range []string{streams.ConsumerTransactional, streams.ConsumerBulk} {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := r.js.Consumer(ictx, streams.JobsStream, name)
		if err != nil {
			cancel()
			return 0, err
		}
		info, err := c.Info(ictx)
		cancel()
		if err != nil {
			return 0, err
		}
		n += info.NumPending + uint64(info.NumAckPending)
	}
	return n, nil
}

// deadlineMissing tells whether job id has no delivery deadline parked in st (HERALD_JOBS)
// for its send on cascade index idx (an older deadline, for an earlier channel, does not count).
func deadlineMissing(ctx context.Context, st jetstream.Stream, id string, idx int) (bool, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := st.GetLastMsgForSubject(ictx, streams.DeadlineSubject(job.Ref("", id)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return m.Header.Get(streams.HeaderCheck) != strconv.Itoa(idx), nil
}

// tally compares every record with the simulator's log.
func (r *chaosRun) tally(ctx context.Context) error {
	recs, err := r.records(ctx)
	if err != nil {
		return err
	}
	sends := map[string][]sim.Message{}
	for _, m := range r.sim.Messages() {
		if m.ErrorCode == 0 && m.HTTPStatus < 300 && m.JobID != "" {
			sends[m.JobID] = append(sends[m.JobID], m)
			r.rep.Sends++
		}
	}
	var dupDetails, lostDetails []string
	var jobs jetstream.Stream // HERALD_JOBS, opened at the first send that needs a deadline
	detail := func(kind, id string, rec *status.Record) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s:", kind, id)
		for _, m := range sends[id] {
			fmt.Fprintf(&b, " send{%s seq=%d at=%s msg=%s}", m.Channel, m.Seq, m.At.Format("15:04:05.000"), m.MessageID)
		}
		if rec == nil {
			b.WriteString(" no record")
		} else {
			hist, _ := json.Marshal(rec.History)
			fmt.Fprintf(&b, " record{state=%s reason=%q attempts=%d history=%s}", rec.State, rec.Reason, rec.Attempts, hist)
		}
		return b.String()
	}
	for i, id := range r.ids {
		rec := recs[i]
		n := len(sends[id])
		if n > 1 {
			r.rep.Duplicates++
			r.rep.ExtraSends += n - 1
			if len(dupDetails) < 20 {
				dupDetails = append(dupDetails, detail("duplicate", id, rec))
			}
		}
		if rec == nil {
			r.rep.Lost++
			r.rep.States["(none)"]++
			if len(lostDetails) < 20 {
				lostDetails = append(lostDetails, detail("lost", id, rec))
			}
			continue
		}
		r.rep.States[rec.State]++
		unknown := slices.ContainsFunc(rec.History, func(a status.Attempt) bool { return a.State == "unknown" })
		if unknown {
			r.rep.Unknown++
			if n == 0 {
				r.rep.UnknownNotSent++
			}
		}
		phantom := (rec.State == status.Sent || rec.State == status.Delivered || rec.State == status.Read) && n == 0 && !unknown
		noDeadline := false
		// A send on a channel that reports delivery (WhatsApp; SMS has no deadline here) with
		// a next channel left.
		if rec.State == status.Sent && !rec.Resume && rec.Channel != "sms" && rec.ChannelIdx+1 < len(rec.Channels) {
			if jobs == nil {
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				jobs, err = r.js.Stream(sctx, streams.JobsStream)
				cancel()
				if err != nil {
					return err
				}
			}
			if noDeadline, err = deadlineMissing(ctx, jobs, id, rec.ChannelIdx); err != nil {
				return err
			}
			if noDeadline {
				r.rep.NoDeadline++
			}
		}
		if !Settled(rec.State) || phantom || noDeadline {
			r.rep.Lost++
			if len(lostDetails) < 20 {
				lostDetails = append(lostDetails, detail("lost", id, rec))
			}
		}
	}
	r.rep.Details = append(dupDetails, lostDetails...)
	return nil
}

// String renders the report for people.
func (rep *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Herald chaos report\n\n")
	fmt.Fprintf(&b, "  jobs                 %d (published %d; %d publish batch retries, %d publishes acknowledged as duplicates)\n", rep.Jobs, rep.Published, rep.PublishRetries, rep.PublishDuplicates)
	fmt.Fprintf(&b, "  duration             %s\n", rep.Duration.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "  worker kills (-9)    %d (restarted %d)\n", rep.Kills, rep.WorkerRestarts)
	fmt.Fprintf(&b, "  NATS node restarts   %d (%s, kill -9)\n", rep.NATSRestarts, rep.NATSNode)
	fmt.Fprintf(&b, "  Redis restarts       %d (kill -9; status records %d before, %d after, appendfsync always)\n", rep.RedisRestarts, rep.RedisKeysBefore, rep.RedisKeysAfter)
	fmt.Fprintf(&b, "  provider sends       %d\n", rep.Sends)
	fmt.Fprintf(&b, "  duplicates           %d job ids sent more than once (%d extra sends)\n", rep.Duplicates, rep.ExtraSends)
	fmt.Fprintf(&b, "  unknown outcome      %d (worker died during the provider call; not resent; %d never reached the provider)\n", rep.Unknown, rep.UnknownNotSent)
	fmt.Fprintf(&b, "  lost                 %d (of which %d sent on WhatsApp without a delivery deadline)\n", rep.Lost, rep.NoDeadline)
	fmt.Fprintf(&b, "  queue left           %d\n", rep.QueueLeft)
	fmt.Fprintf(&b, "  crashed on own       %d %v\n", len(rep.Crashes), rep.Crashes)
	states := make([]string, 0, len(rep.States))
	for s := range rep.States {
		states = append(states, s)
	}
	slices.Sort(states)
	fmt.Fprintf(&b, "  states              ")
	for _, s := range states {
		fmt.Fprintf(&b, " %s=%d", s, rep.States[s])
	}
	fmt.Fprintf(&b, "\n  seed                 %d\n", rep.Seed)
	if len(rep.Details) > 0 {
		fmt.Fprintf(&b, "\nDetails:\n")
		for _, d := range rep.Details {
			fmt.Fprintf(&b, "  %s\n", d)
		}
	}
	fmt.Fprintf(&b, "\nTimeline:\n")
	for _, l := range rep.Timeline {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	b.WriteString(Windows)
	return b.String()
}

// Windows explains, in the report, where a duplicate or an unknown outcome can still come
// from (the package documentation has the long form).
const Windows = `
Settled: done (sent, delivered, read: the provider accepted it, or the attempt is recorded as
unknown) or final (failed, expired, suppressed, rejected, canceled). Lost: no record, a record
that never settled, a record saying sent that the provider never received, or a WhatsApp send
never reported delivered whose delivery deadline (its SMS fallback) is not parked.

Where a duplicate can still come from, and how small the window is:
  - worker killed after the provider accepted a message and before Redis recorded it: the
    claim outlives the worker (ack wait + 10 s); the next delivery records 'unknown' and does
    not resend on that channel. No duplicate. The provider's status report, found by job id,
    then tells the outcome (the attempt takes its state), and the delivery deadline
    (HERALD_FALLBACK_AFTER, 1 h in this run) sends the next channel if no report says
    delivered, so a message that never went out is not lost; what stays 'unknown' here had no
    report within the run.
  - Redis losing acknowledged writes: closed here by appendfsync always (fsync before the
    reply); with everysec a Redis crash may forget up to 1 s of claims, and a redelivered job
    without its record would be sent again. A failover to an asynchronous replica re-opens it.
  - publish retried across a NATS node restart: dropped by JetStream's duplicate window
    (Nats-Msg-Id = job id), and past it by the record in Redis (HERALD_STATUS_TTL).
  - a provider call outlasting the claim's lease (ack wait + 10 s) while another delivery
    claims the job: ruled out while HERALD_SEND_TIMEOUT is shorter than the lease.
`

// countRecords counts the status records in Redis (SCAN, herald:n:*).
func countRecords(ctx context.Context, rdb redis.UniversalClient) int64 {
	var n int64
	it := rdb.Scan(ctx, 0, "herald:n:*", 1000).Iterator()
	for it.Next(ctx) {
		n++
	}
	return n
}
