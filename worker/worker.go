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
//     from sending again, so a job id is sent at most once whoever publishes it and however
//     often JetStream redelivers it;
//   - a job that can never be sent goes to the HERALD_DLQ stream with its reason before it is
//     terminated, so nothing is lost.
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
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/quiet"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
)

// Config is the worker's configuration. Zero values take the documented defaults.
type Config struct {
	// Channels is the default cascade (HERALD_CHANNELS); default white, sms.
	Channels []string
	// TenantChannels overrides the cascade per tenant.
	TenantChannels map[string][]string
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
	Jobs job.Options
	// Logger receives structured logs (default slog.Default()); phone numbers are masked.
	Logger *slog.Logger
	// Metrics records the worker's instruments (nil: none).
	Metrics *telemetry.Metrics
	// AnnounceStop, when set, is called when this worker stops a channel after an
	// account-level error, so that the rest of the fleet stops it too (each calls
	// StopSender); nil keeps the stop in this worker.
	AnnounceStop func(ctx context.Context, s SenderStop)
	// FallbackAfter is the delivery deadline (HERALD_FALLBACK_AFTER): a white or grey
	// message not delivered by then goes out on the next channel. 0 turns it off.
	FallbackAfter time.Duration
	// QuietHours holds bulk jobs (and jobs asking for it) outside the recipient's allowed
	// local hours; the zero value never holds.
	QuietHours quiet.Hours
	// Campaigns tells which campaigns an operator canceled (nil: none are).
	Campaigns interface{ Canceled(name string) bool }
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
	Job *job.Job
	// Template is the job's catalogue definition (nil for a text job).
	Template *templates.Definition
	// WindowOpen tells whether the recipient's 24-hour customer-service window is open.
	WindowOpen bool
}

// Sender sends a job on one channel. Errors should be *provider.Error values (any other
// error is treated as a passing failure and retried).
type Sender interface {
	Send(ctx context.Context, m Message) (Result, error)
}

// Store is the part of the status store the worker uses.
type Store interface {
	Begin(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string) (status.Admission, error)
	BeginReplay(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string) (status.Admission, error)
	BeginCheck(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string, c status.Check) (status.Admission, error)
	Attempt(ctx context.Context, id, owner string, o status.Outcome) (string, *status.Record, error)
	Settle(ctx context.Context, j *job.Job, owner, state, reason string, channels []string) (string, *status.Record, error)
	Ping(ctx context.Context) error
	Window(ctx context.Context, business, to string) (open bool, until time.Time, err error)
}

var _ Store = (*status.Store)(nil)

// Templates looks templates up: Lookup only approved ones (WhatsApp), Definition any
// (grey and SMS need no approval).
type Templates interface {
	Lookup(name, language string) (*templates.Definition, error)
	Definition(name, language string) (*templates.Definition, error)
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
	return &Worker{
		js: js, store: store, templates: tpl, senders: senders, cfg: cfg, log: cfg.Logger,
		owner:    hex.EncodeToString(b[:]),
		tracer:   otel.Tracer("github.com/herald-notify/herald/worker"),
		events:   &events{js: js, log: cfg.Logger, metrics: cfg.Metrics},
		stopping: make(chan struct{}),
		parking:  make(chan struct{}, 4*cfg.Concurrency),
		pool:     newGopool(10 * time.Second),
	}
}

// NewRedisStore returns the Redis status store for workers and the API; ttl bounds how long
// records (and so the idempotency of a job id) are kept, and phoneNumberID is the WhatsApp
// business number (Cloud API phone number id) whose 24-hour windows with customers it reads.
func NewRedisStore(rdb redis.UniversalClient, ttl time.Duration, phoneNumberID string) *status.Store {
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
		for _, l := range w.cfg.Limits {
			m.SenderRate.Record(ctx, l.Rate, telemetry.Attrs("sender", l.Sender))
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
			_ = msg.Nak()
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
		_ = msg.Nak()
	}
}

// Process handles one delivery of a job message exactly as Run does (admit, deliver,
// dispose), in the caller's goroutine, and returns once the message's fate is settled: acked,
// nak'd, terminated or dead-lettered. It is for callers that pull messages themselves, and for
// tests that feed one message and look at what happened to it.
func (w *Worker) Process(ctx context.Context, msg jetstream.Msg) { w.handle(ctx, msg, nil) }

// handle processes one delivery. It never panics on input: a job it cannot decode goes to
// the DLQ.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, sl *slot) {
	if m := w.cfg.Metrics; m != nil {
		m.InFlight.Add(ctx, 1)
		defer m.InFlight.Add(ctx, -1)
	}
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(msg.Headers()))
	ctx, span := w.tracer.Start(ctx, "herald.process", trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	defer func() {
		if r := recover(); r != nil {
			// A bug must not take the fleet down: park the job in the DLQ and go on.
			w.log.Error("worker: panic while handling a job", "panic", fmt.Sprint(r))
			w.deadLetter(ctx, msg, "", "panic", fmt.Sprintf("worker panic: %v", r))
		}
	}()
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	if md.NumDelivered > 1 {
		w.log.Debug("redelivery", "delivered", md.NumDelivered, "stream_seq", md.Sequence.Stream)
	}
	lm := newLiveMsg(msg, w.cfg.AckWait)
	lm.slot = sl
	defer lm.close()
	msg = lm
	j, err := job.Decode(msg.Data(), w.cfg.Jobs)
	if err != nil {
		id := bestEffortID(msg.Data())
		span.SetStatus(codes.Error, "invalid job")
		w.reject(ctx, msg, id, err)
		return
	}
	span.SetAttributes(attribute.String("herald.job_id", j.ID))
	log := w.log.With("job", j.ID, "to", phone.Mask(j.To))
	cascade := w.route(j)
	owner := w.owner + ":" + strconv.FormatUint(md.Sequence.Stream, 10) + ":" + strconv.FormatUint(md.NumDelivered, 10)

	plain := true
	begin := w.store.Begin
	if msg.Headers().Get(streams.HeaderReplay) != "" {
		begin, plain = w.store.BeginReplay, false
	}
	check := checkOf(msg.Headers(), w.cfg.FallbackAfter)
	if c := check; c != nil {
		plain = false
		begin = func(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string) (status.Admission, error) {
			return w.store.BeginCheck(ctx, j, owner, lease, channels, *c)
		}
	}
	// A plain delivery waits for quiet hours and for its first channel's rate-limit slot
	// before it claims the job (see pace): a held or waiting job leaves no claim behind.
	var (
		due time.Time
		adm status.Admission
		// slot is the first channel's last reservation: one that goes unused (the claim made
		// it late) is replaced by the next, so the send is not held back by its own pair or
		// daily entries.
		slot ratelimit.Decision
	)
	paced := -1 // the cascade index whose slot was taken before the claim (-1: none)
	// A sender that is not busy gives its slot right after the claim (paceNow); a busy one
	// first, and the claim follows.
	claimFirst := plain && len(cascade) > 0 && w.idleSender(cascade[0])
	for try := 0; ; try++ {
		due = time.Time{}
		var err error
		if plain && !claimFirst && !j.Expired(w.cfg.Now()) && !w.canceled(j) {
			if w.quietApplies(j) {
				now := w.cfg.Now()
				if at := w.cfg.QuietHours.Next(now, j.To); at.After(now) {
					w.waitFor(ctx, msg, j, "", cascade, at, "quiet_hours", log)
					return
				}
			}
			if len(cascade) > 0 && w.senders[cascade[0]] != nil {
				switch due, err = w.pace(ctx, msg, cascade[0], j, w.windowForTier(ctx, cascade[0], j), "", cascade, log, false, &slot); {
				case err == nil:
				case errors.Is(err, errHeld):
					return
				case errors.Is(err, errStopping), ctx.Err() != nil:
					_ = msg.Nak()
					return
				default:
					w.retryLater(msg, log, err)
					return
				}
			}
		}
		adm, err = begin(ctx, j, owner, w.cfg.AckWait+10*time.Second, cascade)
		if err != nil {
			w.retryLater(msg, log, err)
			return
		}
		switch adm.Verdict {
		case status.Done:
			w.doneAgain(ctx, msg, j, cascade, adm.Record, check, log)
			w.count(ctx, "duplicate", "")
			return
		case status.Busy:
			_ = msg.NakWithDelay(adm.Wait + 100*time.Millisecond)
			return
		case status.Ambiguous:
			log.Warn("previous delivery died during its provider call: not resending", "channel", adm.Record.Channel)
			ev := w.events.publish(ctx, adm.Record)
			var deadline jetstream.PubAckFuture
			if adm.Record.State == status.Sent {
				// Never resent, but not given up either: if the provider does not report the
				// message delivered (a report by job id names the attempt in doubt) within
				// HERALD_FALLBACK_AFTER, the deadline moves the job to its next channel, exactly
				// as for a message whose send was recorded. A message that never left is then
				// not lost.
				deadline = w.parkDeadline(ctx, msg, j, cascade, adm.Record.ChannelIdx, log)
			}
			w.ackStored(ctx, msg, log, ev, deadline)
			w.count(ctx, "unknown", adm.Record.Channel)
			return
		case status.SuppressedVerdict:
			w.settled(ctx, msg, status.Queued, adm.Record, "suppressed")
			return
		}
		// Cancellation and expiry are decided while holding the claim, so they never race a
		// delivery that is sending the same job.
		if w.canceled(j) {
			w.settleUnsent(ctx, msg, j, owner, status.Canceled, "campaign "+j.Campaign+" canceled", cascade, log)
			return
		}
		if j.Expired(w.cfg.Now()) {
			w.settleUnsent(ctx, msg, j, owner, status.Expired, "expires_at passed before sending", cascade, log)
			return
		}
		if (!plain || claimFirst) && w.quietApplies(j) {
			// A fallback (deadline, failed report) found at night waits for the morning too,
			// and so does a plain job that claimed before it paced.
			now := w.cfg.Now()
			if at := w.cfg.QuietHours.Next(now, j.To); at.After(now) {
				w.waitFor(ctx, msg, j, owner, cascade, at, "quiet_hours", log)
				return
			}
		}
		if claimFirst {
			if adm.Record.ChannelIdx != 0 || w.senders[cascade[0]] == nil {
				break
			}
			ok, err := w.paceNow(ctx, msg, cascade[0], j, adm.WindowOpen, &slot)
			if err != nil {
				if ctx.Err() != nil { // stopping hard
					w.giveBack(msg, j, owner, cascade)
					return
				}
				// The limiter's store is failing: give the claim back and let the job come
				// again later, as one that paces first would.
				if w.release(ctx, msg, j, owner, cascade, log) {
					w.retryLater(msg, log, err)
				}
				return
			}
			if ok {
				paced = 0
				break
			}
			// The sender is busy (or this recipient must wait): give the claim back and pace
			// first, as for a busy sender.
			claimFirst = false
			if !w.release(ctx, msg, j, owner, cascade, log) {
				return
			}
			continue
		}
		// The slot holds if the job is still on that channel and the claim did not make the send
		// late (it would bunch with the next slots at the provider). A plain delivery whose
		// slot the claim made late gives the claim back and paces again: waiting for a slot
		// under a claim would turn a kill of this worker into an outcome in doubt for a job
		// that never reached the provider. After maxRepace tries it paces under the claim.
		if due.IsZero() || adm.Record.ChannelIdx != 0 {
			break
		}
		if time.Since(due) <= w.lateSlot(cascade[0]) {
			paced = 0
			break
		}
		if !plain || try >= maxRepace {
			break
		}
		w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", w.cfg.Limits[cascade[0]].Sender, "reason", "late_claim")
		if !w.release(ctx, msg, j, owner, cascade, log) {
			return
		}
	}
	w.deliver(ctx, msg, j, cascade, owner, adm, paced, &slot, log)
}

// release gives back this delivery's claim on a job it has not sent, before it waits for a
// slot. Until Redis has answered the claim may or may not be held, and neither waiting under
// it (a kill would leave the job in doubt) nor sending without it is safe, so it is retried
// (the message kept alive) until Redis answers. False: the worker is stopping hard; the
// delivery is left to JetStream.
func (w *Worker) release(ctx context.Context, msg jetstream.Msg, j *job.Job, owner string, cascade []string, log *slog.Logger) bool {
	delay := 200 * time.Millisecond
	for failed := false; ; failed = true {
		_, _, err := w.store.Settle(ctx, j, owner, "", "", cascade)
		if err == nil {
			if failed && w.storeDown.CompareAndSwap(true, false) {
				log.Info("state store reachable again: resuming")
			}
			return true
		}
		if w.storeDown.CompareAndSwap(false, true) {
			log.Warn("state store unavailable: retrying to give a claim back", "err", err)
		}
		if err := w.sleep(ctx, msg, delay, false); err != nil {
			return false
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// maxRepace is how many times a plain delivery gives its claim back because the claim made
// its slot late, before it waits for a new slot under the claim: a CPU-starved worker must
// still make progress.
const maxRepace = 2

// windowForTier tells, before the claim, whether the customer's 24-hour window is open, when
// it matters to the first channel's slot: with a messaging tier configured, a template to a
// customer in the window is not business-initiated and must not count against it. Without a
// tier nothing asks Redis (the claim reads the window anyway). An error counts as closed: the
// tier is then over-counted, never exceeded.
func (w *Worker) windowForTier(ctx context.Context, ch string, j *job.Job) bool {
	if ch != job.ChannelWhite || j.Template == "" || w.cfg.Limits[ch].UniqueDailyMax <= 0 {
		return false
	}
	open, _, err := w.store.Window(ctx, "", j.To)
	return err == nil && open
}

// deliver walks the cascade from the record's current channel.
// paced is the cascade index whose rate-limit slot was taken before the claim (-1: none);
// slot is the first channel's last reservation (see handle), replaced if it went unused.
func (w *Worker) deliver(ctx context.Context, msg jetstream.Msg, j *job.Job, cascade []string, owner string, adm status.Admission, paced int, slot *ratelimit.Decision, log *slog.Logger) {
	rec := adm.Record
	idx, attempts := rec.ChannelIdx, rec.Attempts
	var lastErr *provider.Error
	for ; idx < len(cascade); idx++ {
		ch := cascade[idx]
		if idx > rec.ChannelIdx {
			_ = msg.InProgress()
		}
		if _, ok := w.senders[ch]; ok && idx != paced {
			var last *ratelimit.Decision
			if idx == 0 {
				last = slot
			}
			switch _, err := w.pace(ctx, msg, ch, j, adm.WindowOpen, owner, cascade, log, true, last); {
			case errors.Is(err, errHeld):
				return
			case err != nil: // stopping
				w.giveBack(msg, j, owner, cascade)
				return
			}
		}
		// A wait for a slot can be long: an operator may have canceled the campaign meanwhile.
		if w.canceled(j) {
			w.settleUnsent(ctx, msg, j, owner, status.Canceled, "campaign "+j.Campaign+" canceled", cascade, log)
			return
		}
		res, err := w.send(ctx, ch, j, adm.WindowOpen)
		if err == nil {
			old, rec, err := w.record(ctx, msg, j, owner, status.Outcome{
				Mode: status.ModeSent, Channel: ch, ChannelIdx: idx, Attempts: attempts + 1, ProviderMessageID: res.MessageID,
				Segments: res.Segments}, log)
			if err != nil {
				// Stopping with the send still unrecorded: keep the claim (it expires into
				// 'unknown', never a second send) and let JetStream redeliver.
				log.Error("sent, but recording failed", "channel", ch, "err", err)
				_ = msg.NakWithDelay(w.cfg.AckWait)
				return
			}
			var ev jetstream.PubAckFuture
			if old != rec.State {
				ev = w.events.publish(ctx, rec)
			}
			if rec.Resume && rec.ChannelIdx == idx+1 {
				// The provider reported the message failed before the send was recorded: go
				// on to the next channel now, under a fresh claim. If that claim cannot be
				// taken, the parked deadline carries the fallback.
				if adm2, err := w.store.BeginCheck(ctx, j, owner, w.cfg.AckWait+10*time.Second, cascade, status.Check{Idx: idx}); err == nil && adm2.Verdict == status.Claimed {
					log.Info("failed report came before the record: falling back", "from", ch, "to", cascade[idx+1])
					attempts = 0
					continue
				}
			}
			w.ackStored(ctx, msg, log, ev, w.parkDeadline(ctx, msg, j, cascade, idx, log))
			w.count(ctx, "sent", ch)
			log.Debug("sent", "channel", ch, "provider_message_id", res.MessageID)
			return
		}
		if ctx.Err() != nil {
			// Hard stop during the call: the outcome is unknown; the claim stays and expires
			// into 'unknown' rather than risking a second send.
			return
		}
		pe := provider.Classify(err)
		lastErr = pe
		w.sendMetric(ctx, ch, pe)
		w.feedback(ctx, ch, j, pe.Code, log)
		switch pe.Kind {
		case provider.Retry:
			attempts++
			if attempts < w.cfg.RetryMaxAttempts {
				if _, _, err := w.record(ctx, msg, j, owner, status.Outcome{Mode: status.ModeRetry, Channel: ch,
					ChannelIdx: idx, Attempts: attempts, Code: pe.Code, Reason: pe.Reason}, log); err != nil {
					w.retryLater(msg, log, err)
					return
				}
				delay := w.backoff(attempts, pe.After)
				log.Info("send failed, retrying later", "channel", ch, "code", pe.Code, "attempt", attempts, "delay", delay)
				w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Retries }, "channel", ch, "code", pe.Code)
				_ = msg.NakWithDelay(delay)
				return
			}
			pe = &provider.Error{Kind: provider.Channel, Code: pe.Code, Reason: fmt.Sprintf("%d attempts failed, last: %s", attempts, pe.Reason)}
			fallthrough
		case provider.Channel, provider.Sender:
			// The grey adapter has its own circuit breaker (with probes); the others stop here.
			if pe.Kind == provider.Sender && ch != job.ChannelGrey {
				w.stopSender(ctx, ch, pe, log)
			}
			if idx == len(cascade)-1 {
				break
			}
			if _, _, err := w.record(ctx, msg, j, owner, status.Outcome{Mode: status.ModeFallback, Channel: ch,
				ChannelIdx: idx + 1, Attempts: 0, Code: pe.Code, Reason: pe.Reason, NextChannel: cascade[idx+1]}, log); err != nil {
				w.retryLater(msg, log, err)
				return
			}
			log.Info("falling back", "from", ch, "to", cascade[idx+1], "code", pe.Code, "reason", pe.Reason)
			w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Fallbacks }, "channel", ch, "reason", pe.Kind.String())
			attempts = 0
			continue
		case provider.Job:
			w.fail(ctx, msg, j, owner, ch, idx, attempts, pe, "rejected", log)
			return
		}
	}
	if lastErr == nil {
		lastErr = &provider.Error{Kind: provider.Channel, Reason: "no channel in the cascade"}
	}
	last := ""
	if len(cascade) > 0 {
		last = cascade[len(cascade)-1]
	}
	lastErr = &provider.Error{Kind: provider.Channel, Code: lastErr.Code, Reason: "every channel failed, last: " + lastErr.Reason}
	w.fail(ctx, msg, j, owner, last, len(cascade)-1, attempts, lastErr, "exhausted", log)
}

// record records the outcome of a provider call (sent, retry, fallback, failed). If Redis
// does not answer it keeps trying (the message kept alive with InProgress) until it does or
// the worker stops hard: giving up would leave the claim to expire into 'unknown' although
// the outcome is known.
func (w *Worker) record(ctx context.Context, msg jetstream.Msg, j *job.Job, owner string, o status.Outcome, log *slog.Logger) (string, *status.Record, error) {
	delay := 200 * time.Millisecond
	for {
		old, rec, err := w.store.Attempt(ctx, j.ID, owner, o)
		if err == nil {
			return old, rec, nil
		}
		if errors.Is(err, status.ErrNotFound) {
			// Redis came back without its data (no persistence): write the record again,
			// under this delivery's claim, so the send is known and never repeated.
			if _, berr := w.store.Begin(ctx, j, owner, w.cfg.AckWait+10*time.Second, w.route(j)); berr == nil {
				continue
			}
		}
		if w.storeDown.CompareAndSwap(false, true) {
			log.Warn("state store unavailable: retrying the record of the provider's answer", "mode", string(o.Mode), "err", err)
		}
		if err := w.sleep(ctx, msg, delay, false); err != nil {
			return "", nil, err
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// fail records the job as failed, dead-letters it and terminates the message.
func (w *Worker) fail(ctx context.Context, msg jetstream.Msg, j *job.Job, owner, ch string, idx, attempts int, pe *provider.Error, reason string, log *slog.Logger) {
	old, rec, err := w.record(ctx, msg, j, owner, status.Outcome{Mode: status.ModeFailed, Channel: ch,
		ChannelIdx: max(idx, 0), Attempts: attempts, Code: pe.Code, Reason: pe.Reason, DeadLetter: reason}, log)
	if err != nil {
		w.retryLater(msg, log, err)
		return
	}
	log.Warn("job failed", "reason", reason, "code", pe.Code, "detail", pe.Reason)
	// The event goes out before the letter, so it is on its way when the message is
	// terminated; a redelivery after a failed letter publishes both again (doneAgain).
	if old != rec.State {
		w.events.publish(ctx, rec)
	}
	if !w.deadLetterAs(ctx, msg, j.ID, reason, pe.Reason, failedLetterID(rec)) {
		return
	}
	w.count(ctx, "failed", ch)
}

// failedLetterID is the Nats-Msg-Id of a failed job's DLQ letter: one per failure of the job
// (a replayed job that fails again has a longer history), the same for every delivery that
// writes it (see doneAgain).
func failedLetterID(rec *status.Record) string {
	return "dlq:" + rec.ID + ":" + strconv.Itoa(len(rec.History))
}

// reject handles a job that cannot be decoded or validated: state rejected (when it has a
// usable id) and the DLQ.
func (w *Worker) reject(ctx context.Context, msg jetstream.Msg, id string, verr error) {
	w.log.Warn("invalid job", "job", id, "err", verr.Error())
	if !w.deadLetter(ctx, msg, id, "invalid", verr.Error()) {
		return
	}
	if id != "" {
		j := &job.Job{ID: id}
		if old, rec, err := w.store.Settle(ctx, j, "", status.Rejected, verr.Error(), nil); err == nil && old != rec.State {
			w.events.publish(ctx, rec)
		}
	}
	w.count(ctx, "rejected", "")
}

// settleUnsent ends a claimed job that will not be sent (state canceled or expired, with
// reason) and acks it; if Redis does not answer, the job is delivered again later.
func (w *Worker) settleUnsent(ctx context.Context, msg jetstream.Msg, j *job.Job, owner, state, reason string, cascade []string, log *slog.Logger) {
	old, rec, err := w.store.Settle(ctx, j, owner, state, reason, cascade)
	if err != nil {
		w.retryLater(msg, log, err)
		return
	}
	w.settled(ctx, msg, old, rec, state)
}

// settled acks a job that reached a final state without a send and reports it.
func (w *Worker) settled(ctx context.Context, msg jetstream.Msg, old string, rec *status.Record, outcome string) {
	var ev jetstream.PubAckFuture
	if old != rec.State {
		ev = w.events.publish(ctx, rec)
	}
	w.ackStored(ctx, msg, w.log, ev, nil)
	w.count(ctx, outcome, "")
}

// deadLetter publishes the original job to herald.dlq.<reason> and terminates the message.
// It reports false when the DLQ did not take it (the message is then redelivered later).
func (w *Worker) deadLetter(ctx context.Context, msg jetstream.Msg, id, reason, detail string) bool {
	seq := "0"
	if md, _ := msg.Metadata(); md != nil {
		seq = strconv.FormatUint(md.Sequence.Stream, 10)
	}
	return w.deadLetterAs(ctx, msg, id, reason, detail, "dlq:"+seq+":"+id)
}

// deadLetterAs is deadLetter with the letter's Nats-Msg-Id.
func (w *Worker) deadLetterAs(ctx context.Context, msg jetstream.Msg, id, reason, detail, msgID string) bool {
	md, _ := msg.Metadata()
	var attempts uint64
	if md != nil {
		attempts = md.NumDelivered
	}
	dl := &nats.Msg{Subject: streams.DLQSubject(reason), Data: msg.Data(), Header: nats.Header{}}
	dl.Header.Set(streams.HeaderReason, reason)
	dl.Header.Set(streams.HeaderError, truncate(detail, 1000))
	dl.Header.Set(streams.HeaderAttempts, strconv.FormatUint(attempts, 10))
	dl.Header.Set(streams.HeaderSubject, msg.Subject())
	if id != "" {
		dl.Header.Set(streams.HeaderJobID, id)
	}
	dl.Header.Set(streams.HeaderMsgID, msgID)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, dl); err != nil {
		w.log.Error("DLQ publish failed; job will be redelivered", "job", id, "err", err)
		_ = msg.NakWithDelay(5 * time.Second)
		return false
	}
	_ = msg.TermWithReason(reason)
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.DeadLetts }, "reason", reason)
	return true
}

// retryLater puts a message back after an infrastructure error (Redis unreachable): fail
// closed, never send without a claim. The lanes stop pulling until Redis answers, so an
// outage does not turn into a redelivery storm.
func (w *Worker) retryLater(msg jetstream.Msg, log *slog.Logger, err error) {
	if w.storeDown.CompareAndSwap(false, true) {
		log.Warn("state store unavailable: pausing until it answers; job delayed", "err", err)
	}
	_ = msg.NakWithDelay(2*time.Second + rand.N(time.Second))
}

// giveBack releases this delivery's claim on a job it did not send (a wait interrupted by a
// stop or an outage), so the redelivered copy is not taken for a crash mid-send, and hands
// the message back.
func (w *Worker) giveBack(msg jetstream.Msg, j *job.Job, owner string, cascade []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, _ = w.store.Settle(ctx, j, owner, "", "", cascade)
	_ = msg.Nak()
}

func (w *Worker) canceled(j *job.Job) bool {
	return j.Campaign != "" && w.cfg.Campaigns != nil && w.cfg.Campaigns.Canceled(j.Campaign)
}

// quietApplies: bulk jobs respect quiet hours, transactional ones do not, unless the job says
// otherwise.
func (w *Worker) quietApplies(j *job.Job) bool {
	if !w.cfg.QuietHours.On() {
		return false
	}
	if j.QuietHours != nil {
		return *j.QuietHours
	}
	return j.Priority == job.PriorityBulk
}

// route returns the job's cascade: its own channels, else its tenant's, else the default.
func (w *Worker) route(j *job.Job) []string {
	if len(j.Channels) > 0 {
		return j.Channels
	}
	if chs, ok := w.cfg.TenantChannels[j.Tenant]; ok && j.Tenant != "" {
		return chs
	}
	return w.cfg.Channels
}

// send renders and sends j on one channel.
func (w *Worker) send(ctx context.Context, ch string, j *job.Job, windowOpen bool) (Result, error) {
	s, ok := w.senders[ch]
	if !ok || s == nil {
		return Result{}, &provider.Error{Kind: provider.Channel, Code: "not_configured", Reason: ch + " channel is not configured"}
	}
	if until, ok := w.senderDown.Load(ch); ok && time.Now().Before(until.(time.Time)) {
		return Result{}, &provider.Error{Kind: provider.Channel, Code: "sender_stopped",
			Reason: ch + " sender stopped after an account error; retried from " + until.(time.Time).UTC().Format(time.RFC3339)}
	}
	m := Message{Job: j, WindowOpen: windowOpen}
	if j.Template != "" {
		lookup := w.templates.Lookup
		if ch != job.ChannelWhite {
			lookup = w.templates.Definition
		}
		def, err := lookup(j.Template, j.Language)
		if err != nil {
			return Result{}, templateError(ch, err)
		}
		m.Template = def
	}
	sctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.Send(sctx, m)
	if mt := w.cfg.Metrics; mt != nil {
		mt.SendTime.Record(ctx, time.Since(start).Seconds(), telemetry.Attrs("channel", ch))
	}
	if err == nil {
		w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Sends }, "channel", ch, "outcome", "ok", "code", "")
	}
	return res, err
}

// senderStop is how long a worker leaves a sender alone after an account-level error.
const senderStop = time.Minute

// stopSender stops calling a channel whose sender the provider refused as a whole (368
// temporarily blocked, 131031 account locked, 190 token expired...): its jobs fall back at
// once instead of failing one by one, and operators are alerted (an error log and the
// herald_fallbacks{reason="sender"} metric). It is tried again after senderStop.
func (w *Worker) stopSender(ctx context.Context, ch string, pe *provider.Error, log *slog.Logger) {
	if w.markDown(ch, senderStop) {
		log.Error("ALERT: provider refused the sender; channel stopped for a minute, jobs fall back",
			"channel", ch, "code", pe.Code, "reason", pe.Reason)
		if w.cfg.AnnounceStop != nil {
			w.cfg.AnnounceStop(ctx, SenderStop{Channel: ch, Sender: w.cfg.Limits[ch].Sender, For: senderStop, Code: pe.Code, Origin: w.owner})
		}
	}
}

// markDown stops calling ch for d, unless a longer stop runs already; true when ch was not
// stopped before (so that one stop is alerted and announced once).
func (w *Worker) markDown(ch string, d time.Duration) bool {
	now := time.Now()
	until := now.Add(d)
	for {
		prev, loaded := w.senderDown.LoadOrStore(ch, until)
		if !loaded {
			return true
		}
		p := prev.(time.Time)
		if !p.Before(until) {
			return false // a stop at least as long runs already
		}
		if w.senderDown.CompareAndSwap(ch, prev, until) {
			return !now.Before(p)
		}
	}
}

// SenderStop is a channel stopped by one worker after an account-level error, announced to
// the fleet (see Config.AnnounceStop).
type SenderStop struct {
	Channel string `json:"channel"`
	// Sender names the account (white:<phone number id>): a worker sending from another
	// account on the same NATS ignores the stop.
	Sender string        `json:"sender,omitempty"`
	For    time.Duration `json:"for_ns"` // from the moment it is received: no clock is shared
	Code   string        `json:"code"`
	Origin string        `json:"origin"` // the announcing worker, which ignores its own stop
}

// StopSender applies a stop another worker announced: this worker calls s.Channel no more
// for s.For, and its jobs fall back at once.
func (w *Worker) StopSender(s SenderStop) {
	if s.Origin == w.owner || s.For <= 0 || s.Sender != w.cfg.Limits[s.Channel].Sender {
		return
	}
	if w.markDown(s.Channel, min(s.For, 10*senderStop)) {
		w.log.Warn("channel stopped by another worker after an account error; jobs fall back",
			"channel", s.Channel, "code", s.Code, "for", s.For)
	}
}

// templateError classifies a catalogue error: a template that is not approved (paused,
// disabled) blocks only the channels that need approval; anything else is the job's fault.
func templateError(ch string, err error) error {
	kind := provider.Job
	if errors.Is(err, templates.ErrNotApproved) {
		kind = provider.Channel
	}
	return &provider.Error{Kind: kind, Code: "template", Reason: err.Error(), Err: err}
}

func (w *Worker) sendMetric(ctx context.Context, ch string, pe *provider.Error) {
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Sends }, "channel", ch, "outcome", pe.Kind.String(), "code", pe.Code)
}

func (w *Worker) count(ctx context.Context, outcome, ch string) {
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Jobs }, "outcome", outcome, "channel", ch)
}

// backoff is exponential with full jitter, at least what the provider asked for.
func (w *Worker) backoff(attempt int, after time.Duration) time.Duration {
	d := w.cfg.RetryBaseDelay << min(attempt-1, 20)
	if d > w.cfg.RetryMaxDelay || d <= 0 {
		d = w.cfg.RetryMaxDelay
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, after)
}

// bestEffortID is the id of an undecodable job when it is a valid id (it names the record).
func bestEffortID(data []byte) string {
	id := job.PeekID(data)
	if (&job.Job{ID: id}).ValidateID() != nil {
		return ""
	}
	return id
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
