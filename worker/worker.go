// Package worker is Herald's worker runtime: it pulls notification jobs from JetStream,
// admits them (expiry, opt-out, idempotency claim), routes them along their channel cascade,
// renders the template for each channel, sends through the provider adapters, records every
// attempt and publishes status events.
//
// A worker keeps nothing that matters in memory; any number of them may run against the
// same NATS and Redis, and any may die at any moment:
//
//   - a job is acknowledged only after its outcome is recorded in Redis;
//   - a claim in Redis (one per job, leased, owned by one delivery) stops a redelivered copy
//     from sending again, so a job id is sent at most once, per tenant (a job is known by its
//     ref, "<tenant>/<id>"), whoever publishes it and however often JetStream redelivers it;
//   - a job that can never be sent goes to the HERALD_DLQ stream with its reason before it is
//     terminated, so nothing is lost.
//
// One delivery goes through four steps, each returning the outcome that ends it: open
// (decode), admit (quiet hours, slot, claim, verdict, cancellation, expiry), deliver (per
// channel: pace, render, send, record) and dispose, the only step that acknowledges, naks,
// terminates or dead-letters the message. Process runs them for one message.
//
// Stopping: when the context given to Run is cancelled the worker stops pulling, hands the
// messages it had buffered back to JetStream (Nak), lets in-flight jobs finish (their
// provider calls are not cancelled), and returns. If they have not finished within
// ShutdownTimeout their provider calls are cancelled and Run returns; their messages are
// redelivered after the ack wait and their claims keep any of them from being sent twice.
// The caller closes the NATS and Redis connections after Run returns.
package worker

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
)

// Config is the worker's configuration. Zero values take the documented defaults.
type Config struct {
	// Channels is the default cascade (HERALD_CHANNELS); default white, sms.
	Channels []string
	// TenantChannels overrides the cascade per tenant (a fleet file's tenants' channels).
	TenantChannels map[string][]string
	// Routes are the fleet's senders (a fleet file's, see internal/fleet) and Pools the ids
	// of each tenant's, in order of preference: a job goes, on each channel of its cascade,
	// through one sender of its tenant's pool of that kind (see pick), and a tenant without
	// a pool sends nothing. Without Routes, New's senders map gives one sender per channel,
	// paced by Limits and shared by every tenant.
	Routes []Route
	Pools  map[string][]string
	// Health, when set, takes senders out of the pools while their provider says they must
	// not send (quality, restrictions, grey states) and is told of account refusals, so
	// that every worker leaves the sender alone.
	Health SenderHealth
	// Affinity, when set, keeps customers on the number whose window with them is open, or
	// that last messaged them (sticky); without it a pool routes by capacity alone.
	Affinity Affinity
	// Concurrency is the number of jobs handled at once (default 256). Bulk jobs may use at
	// most three quarters of it, so transactional jobs always find a free slot.
	Concurrency int
	// SendTimeout bounds one provider call (default 15s).
	SendTimeout time.Duration
	// ShutdownTimeout bounds the drain after Run's context is cancelled (default 30s).
	ShutdownTimeout time.Duration
	// AckWait must equal the consumers' ack wait; the claim lease follows it (default 1m).
	AckWait time.Duration
	// RetryMaxAttempts is the number of send attempts per channel before falling back
	// (default 5); RetryBaseDelay and RetryMaxDelay shape the exponential backoff with full
	// jitter (defaults 1s and 5m).
	RetryMaxAttempts int
	RetryBaseDelay   time.Duration
	RetryMaxDelay    time.Duration
	// Jobs are the job validation defaults (region, language).
	Jobs JobOptions
	// Logger receives structured logs (default slog.Default()); phone numbers are masked.
	Logger *slog.Logger
	// Metrics records the worker's instruments (nil: none).
	Metrics *Metrics
	// AnnounceStop, when set, is called when this worker stops a channel after an
	// account-level error, so that the rest of the fleet stops it too (each calls
	// StopSender); nil keeps the stop in this worker.
	AnnounceStop func(ctx context.Context, s SenderStop)
	// FallbackAfter is the delivery deadline (HERALD_FALLBACK_AFTER): a white or grey
	// message not delivered by then goes out on the next channel. 0 turns it off.
	FallbackAfter time.Duration
	// QuietHours holds bulk jobs (and jobs asking for it) outside the recipient's allowed
	// local hours; the zero value never holds.
	QuietHours QuietHours
	// TenantQuietHours override QuietHours per tenant (a fleet file's quiet_hours).
	TenantQuietHours map[string]QuietHours
	// Campaigns tells which campaigns were canceled (nil: none are). Campaigns are per
	// tenant: it is asked with the job's tenant ("default" for a job naming none) and the
	// campaign's name, for every job of a campaign, so it must answer from memory.
	Campaigns interface {
		Canceled(tenant, name string) bool
	}
	// Limiter paces sends fleet-wide; Limits says how per channel (a channel without an
	// entry is not paced). nil Limiter: no pacing.
	Limiter Limiter
	Limits  map[string]ChannelLimit
	// Now is the clock (default time.Now), for expiry and quiet hours.
	Now func() time.Time
}

func (c *Config) defaults() {
	if len(c.Channels) == 0 {
		c.Channels = []string{job.ChannelWhite, job.ChannelSMS}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 15 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.AckWait <= 0 {
		c.AckWait = time.Minute
	}
	if c.RetryMaxAttempts <= 0 {
		c.RetryMaxAttempts = 5
	}
	if c.RetryBaseDelay <= 0 {
		c.RetryBaseDelay = time.Second
	}
	if c.RetryMaxDelay <= 0 {
		c.RetryMaxDelay = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	// Every job derives a logger with its id and number; most log nothing (see Lazy).
	c.Logger = slog.New(telemetry.Lazy(c.Logger.Handler()))
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Result is a successful send's outcome (the provider message id, SMS segments).
type Result = provider.Result

// Message is what a Sender is asked to send: the job and its rendering for the channel.
type Message struct {
	Job *Job
	// Template is the job's catalogue definition (nil for a text job).
	Template *Definition
	// WindowOpen tells whether the recipient's 24-hour customer-service window is open.
	WindowOpen bool
}

// Sender sends a job on one channel. Errors should be *ProviderError values (any other
// error is treated as a passing failure and retried).
type Sender interface {
	Send(ctx context.Context, m Message) (Result, error)
}

// Store is the part of the status store the worker uses. Records are per tenant: Begin,
// BeginReplay, BeginCheck and Settle find a job's record by its ref (Job.Ref), and Attempt
// is given that ref.
type Store interface {
	Begin(ctx context.Context, j *Job, owner string, lease time.Duration, channels []string) (Admission, error)
	BeginReplay(ctx context.Context, j *Job, owner string, lease time.Duration, channels []string) (Admission, error)
	BeginCheck(ctx context.Context, j *Job, owner string, lease time.Duration, channels []string, c Check) (Admission, error)
	Attempt(ctx context.Context, ref, owner string, o Outcome) (string, *Record, error)
	Settle(ctx context.Context, j *Job, owner, state, reason string, channels []string) (string, *Record, error)
	Ping(ctx context.Context) error
	Window(ctx context.Context, business, to string) (open bool, until time.Time, err error)
}

var _ Store = (*status.Store)(nil)

// Templates looks templates up in a tenant's catalogue (tenant is never "": the worker
// passes the default tenant's name for a job without one): Lookup only approved ones
// (WhatsApp), Definition any (grey and SMS need no approval). Each tenant has its own
// templates: a template of another tenant must not be found.
//
// LookupIn judges approval in one WhatsApp Business Account (waba "": in any), since the
// numbers of a pool may belong to several.
type Templates interface {
	LookupIn(tenant, name, language, waba string) (*Definition, error)
	Definition(tenant, name, language string) (*Definition, error)
}

var _ Templates = (*templates.Catalogue)(nil)

// JetStream is the part of jetstream.JetStream the worker uses.
type JetStream interface {
	Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error)
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
	PublishAsyncComplete() <-chan struct{}
}

var _ JetStream = (jetstream.JetStream)(nil)

// Worker consumes and sends jobs. Create it with New and start it with Run.
type Worker struct {
	js        JetStream
	store     Store
	templates Templates
	senders   map[string]Sender
	cfg       Config
	log       *slog.Logger
	owner     string
	tracer    trace.Tracer
	events    *events
	pacers    pacers
	pools     *pools
	// stopping is closed when Run's context is cancelled: jobs waiting for a rate-limit slot
	// give their message back instead of holding up the drain.
	stopping chan struct{}
	// parking bounds the jobs that wait for one recipient (pair interval, a hold) without a
	// concurrency slot: such a wait takes no CPU, and holding a slot through it would starve
	// the number's throughput when a backlog repeats recipients.
	parking chan struct{}
	// senderDown maps a channel to the time until which this worker does not call it: the
	// provider said the sender itself is unusable (account locked, token revoked, ...).
	senderDown sync.Map
	// storeDown is set while Redis is unreachable: the lanes stop pulling (fail closed)
	// until it answers again.
	storeDown atomic.Bool
	// pool runs the jobs on goroutines that are reused (see gopool).
	pool *gopool
}

// New returns a worker. senders maps channel names (white, grey, sms) to their adapters; a
// channel in a cascade without a sender is skipped (recorded as a fallback).
func New(js JetStream, store Store, tpl Templates, senders map[string]Sender, cfg Config) *Worker {
	cfg.defaults()
	var b [6]byte
	_, _ = crand.Read(b[:])
	w := &Worker{
		js: js, store: store, templates: tpl, senders: senders, cfg: cfg, log: cfg.Logger,
		owner:    hex.EncodeToString(b[:]),
		tracer:   otel.Tracer("github.com/herald-notify/herald/worker"),
		events:   &events{js: js, log: cfg.Logger, metrics: cfg.Metrics},
		stopping: make(chan struct{}),
		parking:  make(chan struct{}, 4*cfg.Concurrency),
		pool:     newGopool(10 * time.Second),
	}
	w.pools = newPools(senders, &w.cfg, &w.pacers)
	return w
}

// NewRedisStore returns the Redis status store for workers and the API; ttl bounds how long
// records (and so the idempotency of a job id) are kept, and phoneNumberID is the WhatsApp
// business number (Cloud API phone number id) whose 24-hour windows with customers it reads.
func NewRedisStore(rdb redis.UniversalClient, ttl time.Duration, phoneNumberID string) *RedisStore {
	return status.NewStore(rdb, ttl, nil).ForBusiness(phoneNumberID)
}

// Run consumes both priority lanes until ctx is cancelled, then drains (see the package
// documentation) and returns. It returns an error only when it cannot start.
func (w *Worker) Run(ctx context.Context) error {
	trans, err := w.js.Consumer(ctx, streams.JobsStream, streams.ConsumerTransactional)
	if err != nil {
		return fmt.Errorf("worker: consumer %s: %w", streams.ConsumerTransactional, err)
	}
	bulk, err := w.js.Consumer(ctx, streams.JobsStream, streams.ConsumerBulk)
	if err != nil {
		return fmt.Errorf("worker: consumer %s: %w", streams.ConsumerBulk, err)
	}
	// hard is cancelled when the drain takes longer than ShutdownTimeout: it is the parent of
	// every job's context, so in-flight provider calls survive the first cancellation.
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()

	slots := make(chan struct{}, w.cfg.Concurrency)
	bulkSlots := make(chan struct{}, max(1, w.cfg.Concurrency*3/4))
	var jobs sync.WaitGroup
	var lanes sync.WaitGroup
	for _, l := range []struct {
		name  string
		c     jetstream.Consumer
		extra chan struct{} // the lane's own share of the slots (nil: no cap)
	}{{"transactional", trans, nil}, {"bulk", bulk, bulkSlots}} {
		lanes.Add(1)
		go func() {
			defer lanes.Done()
			w.lane(ctx, hard, l.name, l.c, slots, l.extra, &jobs)
		}()
	}
	w.log.Info("worker started", "owner", w.owner, "concurrency", w.cfg.Concurrency, "channels", w.cfg.Channels)
	if m := w.cfg.Metrics; m != nil {
		for _, r := range w.pools.byID {
			if r.Limit.Rate > 0 {
				m.SenderRate.Record(ctx, r.Limit.Rate, telemetry.Attrs("sender", r.ID))
			}
		}
	}
	<-ctx.Done()
	close(w.stopping)
	lanes.Wait()
	w.log.Info("worker draining", "timeout", w.cfg.ShutdownTimeout)
	done := make(chan struct{})
	go func() { jobs.Wait(); close(done) }()
	select {
	case <-done:
		w.log.Info("worker drained")
	case <-time.After(w.cfg.ShutdownTimeout):
		w.log.Warn("worker drain timed out: cancelling in-flight sends; their jobs will be redelivered")
		hardCancel()
		<-done
	}
	// Status events and delivery deadlines are published without waiting: let the last
	// ones be acknowledged before the caller closes the connection (bounded).
	select {
	case <-w.js.PublishAsyncComplete():
	case <-time.After(5 * time.Second):
		w.log.Warn("some status events or delivery deadlines were not acknowledged before stopping")
	}
	return nil
}

// pullHeartbeat is the idle heartbeat a lane asks the server for; two missed ones make the
// pull start again.
const pullHeartbeat = time.Second

// lane pulls one consumer. A slot is taken before a message is pulled, so no message waits
// in this process for a free slot while its ack wait runs.
func (w *Worker) lane(ctx, hard context.Context, name string, c jetstream.Consumer, slots, extra chan struct{}, jobs *sync.WaitGroup) {
	// The iterator's buffer holds messages no slot has taken yet: their ack wait runs while
	// they wait (a job in a slot keeps its message alive), so it is kept small next to the
	// slots, and smallest for bulk, whose slots drain at the paced rate.
	buffer := max(8, min(w.cfg.Concurrency/4, 64))
	if extra != nil {
		buffer = max(4, min(w.cfg.Concurrency/16, 16))
	}
	// A short heartbeat bounds a stalled pull: now and then the server holds no pull request
	// while the client counts one as pending (nats-io/nats.go#1622, seen in make bench), and
	// only two missed heartbeats make the iterator pull again.
	it, err := c.Messages(jetstream.PullMaxMessages(buffer), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		w.log.Error("worker: cannot pull", "lane", name, "err", err)
		return
	}
	stop := context.AfterFunc(ctx, func() { it.Drain() })
	defer stop()
	// A slot of the process, and for bulk also one of its share; false when stopping.
	acquire := func() bool {
		if extra != nil {
			select {
			case extra <- struct{}{}:
			case <-ctx.Done():
				return false
			}
		}
		select {
		case slots <- struct{}{}:
			return true
		case <-ctx.Done():
			if extra != nil {
				<-extra
			}
			return false
		}
	}
	release := func() {
		<-slots
		if extra != nil {
			<-extra
		}
	}
	for {
		if !acquire() {
			w.handBack(it)
			return
		}
		if !w.waitStore(ctx) {
			release()
			w.handBack(it)
			return
		}
		msg, err := it.Next()
		if err != nil {
			release()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			w.log.Info("pull interrupted; pulling again", "lane", name, "err", err)
			continue
		}
		if ctx.Err() != nil { // drained after stop: give it back at once
			w.dispose(hard, msg, w.log, nak())
			release()
			continue
		}
		jobs.Add(1)
		sl := &slot{held: true, acquire: acquire, release: release, parking: w.parking}
		w.pool.Go(func() {
			defer jobs.Done()
			defer sl.done()
			w.handle(hard, msg, sl)
		})
	}
}

// waitStore blocks while Redis is unreachable (fail closed: no claim, no send), probing it
// every half second; false when stopping.
func (w *Worker) waitStore(ctx context.Context) bool {
	for w.storeDown.Load() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := w.store.Ping(pctx)
		cancel()
		if err == nil && w.storeDown.CompareAndSwap(true, false) {
			w.log.Info("state store reachable again: resuming")
		}
	}
	return true
}

// handBack returns buffered, unstarted messages to JetStream so other workers take them now
// instead of after the ack wait.
func (w *Worker) handBack(it jetstream.MessagesContext) {
	it.Drain()
	for {
		msg, err := it.Next()
		if err != nil {
			return
		}
		w.dispose(context.Background(), msg, w.log, nak())
	}
}

// Process handles one delivery of a job message exactly as Run does (admit, deliver,
// dispose), in the caller's goroutine, and returns once the message's fate is settled: acked,
// nak'd, terminated or dead-lettered. It is for callers that pull messages themselves, and for
// tests that feed one message and look at what happened to it.
func (w *Worker) Process(ctx context.Context, msg jetstream.Msg) { w.handle(ctx, msg, nil) }
