// Package workertest is a test seam below the harness: it feeds one message, through a fake
// jetstream.Msg, to the worker's executor (worker.Worker.Process) against a real Redis, a
// real JetStream and the provider simulator, and returns what happened to the message (its
// disposition), the job's status record, the DLQ letters and the schedules it left. Nothing
// is published to the job subjects and no consumer runs, so a test decides exactly which
// delivery the worker sees (a first one, a redelivery, a replay, a fallback check) and sees
// exactly one delivery's effects, in the spirit of river's rivertest.Worker.
//
// An Env is cheap enough per test (a redis-server process, an in-process nats-server), and
// safe to share between parallel subtests (each through Env.For) that use distinct job ids
// and recipients: the simulator's rules match by recipient, and every lookup here is by job
// id.
package workertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/white"
	"github.com/herald-notify/herald/worker"
)

// Credentials the simulator and the default senders agree on.
const (
	// PhoneNumberID is the Cloud API business number the white sender sends from; the
	// status store reads 24-hour windows with it.
	PhoneNumberID = "100200300"
	// Token is the Cloud API token.
	Token = "workertest-token"
)

// Options adjust an Env.
type Options struct {
	// Sim adjusts the simulator's configuration.
	Sim func(*sim.Config)
	// Verbose logs the workers to stderr (also HERALD_TEST_VERBOSE=1).
	Verbose bool
	// FeedTimeout bounds one Feed (default 30s): a delivery that never decides fails the
	// test with what it did so far, instead of hanging it until go test's own timeout.
	FeedTimeout time.Duration
}

// Env is the real infrastructure one or more workers run against in a test.
type Env struct {
	TB    testing.TB
	NATS  *testutil.NATS
	Redis *testutil.Redis
	NC    *nats.Conn
	JS    jetstream.JetStream
	RDB   *redis.Client
	// Store is the status store as the workers see it (records, claims, windows).
	Store   *status.Store
	Limiter *ratelimit.Limiter
	// Catalogue holds the sample templates of the default tenant (templates.PutSamples), the
	// tenant of jobs that name none.
	Catalogue *templates.Catalogue
	Sim       *sim.Sim
	SimURL    string
	// Clock is the workers' clock unless a worker is given its own.
	Clock *Clock
	Log   *slog.Logger

	seq         *atomic.Uint64
	feedTimeout time.Duration
}

// Start brings the parts up and registers their teardown with tb.
func Start(tb testing.TB, o Options) *Env {
	tb.Helper()
	e := &Env{TB: tb, NATS: testutil.StartNATS(tb), Redis: testutil.StartRedis(tb), Clock: &Clock{},
		seq: new(atomic.Uint64), feedTimeout: o.FeedTimeout}
	if e.feedTimeout <= 0 {
		e.feedTimeout = 30 * time.Second
	}
	e.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.Verbose || os.Getenv("HERALD_TEST_VERBOSE") != "" {
		e.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.NC, e.JS = e.NATS.Connect(tb)
	e.RDB = e.Redis.Client(tb)
	e.Store = worker.NewRedisStore(e.RDB, time.Hour, PhoneNumberID)
	e.Limiter = ratelimit.New(e.RDB)

	// No webhook URLs: the simulator reports nothing back, so a record changes only through
	// the delivery under test.
	scfg := sim.Config{PhoneNumberID: PhoneNumberID, Token: Token, Logger: e.Log}
	if o.Sim != nil {
		o.Sim(&scfg)
	}
	e.Sim = sim.New(scfg)
	srv := httptest.NewServer(e.Sim.Handler())
	tb.Cleanup(srv.Close)
	e.SimURL = srv.URL

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := streams.Ensure(ctx, e.JS, streams.Options{}); err != nil {
		tb.Fatal(err)
	}
	kv, err := e.JS.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		tb.Fatal(err)
	}
	if err := templates.PutSamples(ctx, kv); err != nil {
		tb.Fatal(err)
	}
	catCtx, stopCat := context.WithCancel(context.Background())
	tb.Cleanup(stopCat)
	e.Catalogue = templates.NewCatalogue(kv, e.Log)
	if err := e.Catalogue.Start(catCtx); err != nil {
		tb.Fatal(err)
	}
	// Stream sequences of fed messages start high, apart from those of real messages: a
	// delivery's claim owner and DLQ letter id are derived from it.
	e.seq.Store(1_000_000)
	return e
}

// For returns the Env reporting to tb, for a subtest sharing it: failures, and the checks
// run at the end, then belong to the subtest (a subtest must not fail its parent's test from
// its own goroutine).
func (e *Env) For(tb testing.TB) *Env {
	c := *e
	c.TB = tb
	return &c
}

// Clock is an injectable clock. The zero value follows the wall clock; Set freezes it.
type Clock struct {
	mu    sync.Mutex
	fixed time.Time
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed.IsZero() {
		return time.Now()
	}
	return c.fixed
}

// Set freezes the clock at t (the zero time: back to the wall clock).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.fixed = t
	c.mu.Unlock()
}

// Advance moves a frozen clock by d (a running one is frozen at now+d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	if c.fixed.IsZero() {
		c.fixed = time.Now()
	}
	c.fixed = c.fixed.Add(d)
	c.mu.Unlock()
}

// WorkerOptions adjust one worker.
type WorkerOptions struct {
	// Config adjusts the configuration after the Env's defaults are in.
	Config func(*worker.Config)
	// Store wraps the status store (slow claims, failing releases, a call log).
	Store func(worker.Store) worker.Store
	// Senders replace or add channel senders; a nil value removes the channel's sender.
	Senders map[string]worker.Sender
}

// Worker is a worker built by NewWorker, with the metrics it recorded.
type Worker struct {
	*worker.Worker
	// Config is the configuration given to worker.New (before its own defaults).
	Config worker.Config
	reader *sdkmetric.ManualReader
}

// Processor is what Feed drives: worker.Worker.Process.
type Processor interface {
	Process(ctx context.Context, msg jetstream.Msg)
}

// NewWorker returns a worker on the Env, never started (Feed drives it). Defaults: the
// cascade white, sms with white on the simulator's Cloud API and sms on its Kannel; ack wait
// 30s; at most 3 attempts per channel with a backoff of 100ms to 2s; no quiet hours; the
// Env's limiter without limits (no pacing); the Env's clock.
func (e *Env) NewWorker(o WorkerOptions) *Worker {
	e.TB.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	e.TB.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	metrics, err := telemetry.NewMetrics(mp.Meter("workertest"))
	if err != nil {
		e.TB.Fatal(err)
	}
	cfg := worker.Config{
		Channels:         []string{job.ChannelWhite, job.ChannelSMS},
		SendTimeout:      5 * time.Second,
		AckWait:          30 * time.Second,
		RetryMaxAttempts: 3,
		RetryBaseDelay:   100 * time.Millisecond,
		RetryMaxDelay:    2 * time.Second,
		Logger:           e.Log,
		Metrics:          metrics,
		Limiter:          e.Limiter,
		Now:              e.Clock.Now,
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	senders := map[string]worker.Sender{
		job.ChannelWhite: worker.White{Client: white.New(white.Config{BaseURL: e.SimURL, PhoneNumberID: PhoneNumberID, Token: Token}, nil)},
		// A dlr-url makes the simulator record the job id of each SMS; it is never called
		// (the simulator is not started).
		job.ChannelSMS: worker.SMS{Client: sms.NewKannel(sms.KannelConfig{URL: e.SimURL + "/cgi-bin/sendsms",
			DLRURL: "http://127.0.0.1:9/webhooks/sms"}, nil)},
	}
	for ch, s := range o.Senders {
		if s == nil {
			delete(senders, ch)
		} else {
			senders[ch] = s
		}
	}
	var store worker.Store = e.Store
	if o.Store != nil {
		store = o.Store(store)
	}
	return &Worker{Worker: worker.New(e.JS, store, e.Catalogue, senders, cfg), Config: cfg, reader: reader}
}

// Count sums the worker's counter name (herald_jobs, herald_limiter_waits, ...) over the
// data points carrying every given attribute (key, value pairs).
func (w *Worker) Count(name string, kv ...string) int64 {
	var rm metricdata.ResourceMetrics
	if err := w.reader.Collect(context.Background(), &rm); err != nil {
		return -1
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
		points:
			for _, dp := range sum.DataPoints {
				for i := 0; i+1 < len(kv); i += 2 {
					if v, ok := dp.Attributes.Value(attribute.Key(kv[i])); !ok || v.AsString() != kv[i+1] {
						continue points
					}
				}
				n += dp.Value
			}
		}
	}
	return n
}

// Result is what one delivery did.
type Result struct {
	// Msg is the delivery, with every call made on it.
	Msg *Msg
	// Disposition is the delivery's first final call (None: left to redelivery).
	Disposition Disposition
	// Finals counts the final calls; exactly one is expected (zero with None).
	Finals int
	// InProgress counts the heartbeats.
	InProgress int
	// ID is the job id read from the data ("" when it has none), Ref its tenant-qualified
	// id (job.Ref), which keys its record and schedules.
	ID, Ref string
	// Record is the job's status record after the delivery (nil: none).
	Record *status.Record
	// Letters are the DLQ letters this delivery wrote (those carrying its data).
	Letters []Letter
	// Took is how long Process ran.
	Took time.Duration
}

// Feed hands data to w as one delivery (a first delivery unless opts say otherwise, on a
// stream sequence of its own), waits for Process to return and reports what happened. It
// publishes nothing itself. A Process that has not returned within the Env's FeedTimeout is
// cancelled and fails the test.
func (e *Env) Feed(ctx context.Context, w Processor, data []byte, opts ...MsgOption) Result {
	e.TB.Helper()
	// The Env's own reads outlive a caller that cancels ctx to stop the delivery.
	rctx := context.WithoutCancel(ctx)
	before := e.dlqLastSeq(rctx)
	m := NewMsg(data, append([]MsgOption{StreamSeq(e.seq.Add(1))}, opts...)...)
	r := Result{Msg: m, ID: job.PeekID(data)}
	if r.ID != "" {
		r.Ref = job.Ref(peekString(data, "tenant"), r.ID)
	}
	start := time.Now()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); w.Process(pctx, m) }()
	timer := time.NewTimer(e.feedTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		cancel() // a worker told to stop gives up its waits
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		e.TB.Fatalf("%s: Process did not return within %s; calls on the message %v, record %+v, provider calls %d",
			r.ID, e.feedTimeout, m.Calls(), e.RecordRef(r.Ref), len(e.Calls(r.ID)))
	}
	r.Took = time.Since(start)
	m.Returned()
	// A call after Process returned is a goroutine the executor left behind: it may come
	// after this Result was taken, so the end of the test looks again.
	e.TB.Cleanup(func() {
		for _, c := range m.Calls() {
			if c.AfterReturn {
				e.TB.Errorf("%s: %v called after Process returned", r.ID, c.Kind)
			}
		}
	})
	r.Disposition, r.Finals, r.InProgress = m.Disposition(), m.Finals(), m.InProgressCalls()
	if r.Ref != "" {
		r.Record = e.RecordRef(r.Ref)
	}
	for _, l := range e.lettersAfter(rctx, before) {
		if bytes.Equal(l.Data, data) {
			r.Letters = append(r.Letters, l)
		}
	}
	return r
}

// RedeliveryOf makes the message JetStream's next delivery of prev: the same stream
// sequence, subject and headers, NumDelivered one more.
func RedeliveryOf(prev *Msg) MsgOption {
	return func(m *Msg) {
		m.md.Sequence.Stream = prev.md.Sequence.Stream
		m.md.NumDelivered = prev.md.NumDelivered + 1
		m.subject = prev.subject
		m.headers = nats.Header(http.Header(prev.headers).Clone())
		if m.headers == nil {
			m.headers = nats.Header{}
		}
	}
}

// Record returns the status record of a job of the default tenant (nil if none).
func (e *Env) Record(id string) *status.Record { return e.RecordRef(job.Ref("", id)) }

// RecordRef returns the status record of a job ref (job.Ref; nil if none).
func (e *Env) RecordRef(ref string) *status.Record {
	if ref == "" {
		return nil
	}
	rec, err := e.Store.Get(context.Background(), ref)
	if err != nil {
		if !errors.Is(err, status.ErrNotFound) {
			e.TB.Errorf("record %s: %v", ref, err)
		}
		return nil
	}
	return rec
}

// ClaimLapsed tells whether the record of a job of the default tenant holds a claim whose
// lease ran out on the Redis clock (the one the claim scripts read): the mark of a
// delivery that died.
func (e *Env) ClaimLapsed(ctx context.Context, id string) bool {
	rec := e.Record(id)
	if rec == nil || rec.Claim == nil {
		return false
	}
	now, err := e.RDB.Time(ctx).Result()
	return err == nil && now.UnixMilli() >= rec.Claim.Until
}

// Letter is one message of the HERALD_DLQ stream.
type Letter struct {
	Seq     uint64
	Subject string
	// Reason, Error, Attempts, JobID, Tenant, Origin (the job's subject) and MsgID are its
	// headers.
	Reason   string
	Error    string
	Attempts string
	JobID    string
	Tenant   string
	Origin   string
	MsgID    string
	Data     []byte
}

// Letters returns the DLQ letters naming the job id.
func (e *Env) Letters(id string) []Letter {
	var out []Letter
	for _, l := range e.lettersAfter(context.Background(), 0) {
		if l.JobID == id {
			out = append(out, l)
		}
	}
	return out
}

func (e *Env) dlqLastSeq(ctx context.Context) uint64 {
	st, err := e.JS.Stream(ctx, streams.DLQStream)
	if err != nil {
		e.TB.Fatalf("DLQ stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.TB.Fatalf("DLQ stream info: %v", err)
	}
	return info.State.LastSeq
}

// lettersAfter reads the DLQ from sequence after+1 to its end.
func (e *Env) lettersAfter(ctx context.Context, after uint64) []Letter {
	st, err := e.JS.Stream(ctx, streams.DLQStream)
	if err != nil {
		e.TB.Fatalf("DLQ stream: %v", err)
	}
	last := e.dlqLastSeq(ctx)
	var out []Letter
	for seq := after + 1; seq <= last; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.TB.Fatalf("DLQ letter %d: %v", seq, err)
		}
		out = append(out, Letter{
			Seq: seq, Subject: m.Subject, Data: m.Data,
			Reason: m.Header.Get(streams.HeaderReason), Error: m.Header.Get(streams.HeaderError),
			Attempts: m.Header.Get(streams.HeaderAttempts), JobID: m.Header.Get(streams.HeaderJobID),
			Tenant: m.Header.Get(streams.HeaderTenant),
			Origin: m.Header.Get(streams.HeaderSubject), MsgID: m.Header.Get(streams.HeaderMsgID),
		})
	}
	return out
}

// Schedule is one of Herald's own schedules for a job in HERALD_JOBS: a wait (quiet hours,
// a daily limit) or a delivery deadline.
type Schedule struct {
	Subject string
	// At is when JetStream publishes the job again; Target is where.
	At     time.Time
	Target string
	// Wait is why a held job waits (Herald-Wait); Check and Deadline are a delivery
	// deadline's headers (Herald-Check, Herald-Deadline).
	Wait     string
	Check    string
	Deadline string
	Header   nats.Header
	Data     []byte
}

// WaitSchedule returns the schedule that releases a held job of the default tenant (nil:
// none).
func (e *Env) WaitSchedule(id string) *Schedule {
	return e.schedule(streams.WaitSubject(job.Ref("", id)))
}

// DeadlineSchedule returns the delivery-deadline schedule of a sent job of the default
// tenant (nil: none).
func (e *Env) DeadlineSchedule(id string) *Schedule {
	return e.schedule(streams.DeadlineSubject(job.Ref("", id)))
}

func (e *Env) schedule(subject string) *Schedule {
	e.TB.Helper()
	ctx := context.Background()
	st, err := e.JS.Stream(ctx, streams.JobsStream)
	if err != nil {
		e.TB.Fatalf("jobs stream: %v", err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		e.TB.Fatalf("schedule %s: %v", subject, err)
	}
	s := &Schedule{
		Subject: subject, Target: m.Header.Get(streams.HeaderScheduleTarget),
		Wait: m.Header.Get(streams.HeaderWait), Check: m.Header.Get(streams.HeaderCheck),
		Deadline: m.Header.Get(streams.HeaderDeadline), Header: m.Header, Data: m.Data,
	}
	if at, ok := strings.CutPrefix(m.Header.Get(streams.HeaderSchedule), "@at "); ok {
		if t, err := time.Parse(time.RFC3339, at); err == nil {
			s.At = t
		}
	}
	return s
}

// Calls returns the requests the simulator received for a job of the default tenant (failed
// ones included), in arrival order. A send names its job by ref (biz_opaque_callback_data,
// the dlr-url's id); a bare id is matched too.
func (e *Env) Calls(id string) []sim.Message {
	ref := job.Ref("", id)
	var out []sim.Message
	for _, m := range e.Sim.Messages() {
		if got := providerJobID(m); got == ref || got == id {
			out = append(out, m)
		}
	}
	return out
}

// providerJobID is the job a recorded request names. The simulator keeps a dlr-url's id as
// it arrives, with the "%%" the Kannel driver writes for each '%' (Kannel itself turns it
// back into one): a ref's "/" comes as "%%2F".
func providerJobID(m sim.Message) string {
	if m.Channel != job.ChannelSMS || !strings.Contains(m.JobID, "%%") {
		return m.JobID
	}
	id, err := url.QueryUnescape(strings.ReplaceAll(m.JobID, "%%", "%"))
	if err != nil {
		return m.JobID
	}
	return id
}

// Accepted counts the sends of a job the simulator accepted on channel.
func (e *Env) Accepted(id, channel string) int {
	n := 0
	for _, m := range e.Calls(id) {
		if m.Channel == channel && m.ErrorCode == 0 && m.HTTPStatus < 300 {
			n++
		}
	}
	return n
}

// OrderReady is a valid transactional job on the sample template order_ready.
func OrderReady(id, to string) *job.Job {
	return &job.Job{
		ID: id, To: to, Template: "order_ready",
		Params:  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
		Buttons: map[string]string{"0": "123456"},
	}
}

// Data encodes j as a producer publishes it.
func Data(tb testing.TB, j *job.Job) []byte {
	tb.Helper()
	b, err := json.Marshal(j)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Decode reads data as the worker does, with the default options (for writing a record the
// way an earlier delivery did).
func Decode(tb testing.TB, data []byte) *job.Job {
	tb.Helper()
	j, err := job.Decode(data, job.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return j
}

// peekString reads one string field of a job's data, "" when it has none (or the data is
// not a JSON object).
func peekString(data []byte, field string) string {
	var v map[string]any
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	s, _ := v[field].(string)
	return s
}
