package workertest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/quiet"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/workertest"
	"github.com/herald-notify/herald/worker"
)

// The executor's table tests. One Env serves them all: every case has its own job ids and
// recipients (the simulator's rules match by recipient), and a case that changes a worker's
// configuration, or reads its metrics, builds its own worker on the Env.

var lastRecipient atomic.Int64

// recipient returns a distinct Russian mobile number per case (Moscow time for quiet hours).
func recipient() string { return fmt.Sprintf("+7900%07d", 1000+lastRecipient.Add(1)) }

// digits is a recipient as the simulator records it.
func digits(to string) string { return strings.TrimPrefix(to, "+") }

// TestExecutor is the parent of every table: it starts the Env its subtests share and
// tears it down after all of them, parallel ones included.
func TestExecutor(t *testing.T) {
	env := workertest.Start(t, workertest.Options{})
	def := env.NewWorker(workertest.WorkerOptions{})
	t.Run("retry", func(t *testing.T) { t.Parallel(); testRetry(t, env, def) })
	t.Run("fallback", func(t *testing.T) { t.Parallel(); testFallback(t, env, def) })
	t.Run("ambiguous", func(t *testing.T) { t.Parallel(); testAmbiguous(t, env, def) })
	t.Run("quiet hours", func(t *testing.T) { t.Parallel(); testQuietHours(t, env) })
	t.Run("late slot", func(t *testing.T) { t.Parallel(); testLateSlot(t, env) })
	t.Run("duplicate", func(t *testing.T) { t.Parallel(); testDuplicate(t, env, def) })
	t.Run("dead letter", func(t *testing.T) { t.Parallel(); testDeadLetter(t, env, def) })
	t.Run("stopped mid-call", func(t *testing.T) { testStoppedMidCall(t, env) })
	t.Run("malformed message reusing a known id", func(t *testing.T) {
		t.Parallel()
		env := env.For(t)
		// A valid job waits for its retry; a malformed message with its id must not end it.
		to := recipient()
		env.Sim.AddRule(sim.Rule{To: to, HTTPStatus: 503, Times: 1})
		r := env.Feed(t.Context(), def, workertest.Data(t, workertest.OrderReady("victim-1", to)))
		one(t, r, workertest.NakWithDelay)
		bad := env.Feed(t.Context(), def, []byte(`{"id":"victim-1","to":"nope"}`))
		one(t, bad, workertest.TermWithReason)
		if len(bad.Letters) != 1 {
			t.Fatalf("letters %+v, want the malformed message's one", bad.Letters)
		}
		rec := must(t, bad)
		if rec.State != status.Queued || len(rec.History) != 1 {
			t.Fatalf("the valid job's record after the malformed message: %+v, want it waiting for its retry", rec)
		}
		again := env.Feed(t.Context(), def, workertest.Data(t, workertest.OrderReady("victim-1", to)), workertest.RedeliveryOf(r.Msg))
		one(t, again, workertest.Ack)
		if rec := must(t, again); rec.State != status.Sent {
			t.Fatalf("the valid job's redelivery: %+v, want sent", rec)
		}
	})
	t.Run("no metadata", func(t *testing.T) {
		t.Parallel()
		env := env.For(t)
		// Not a JetStream message: it cannot come again, so it is dead-lettered with its
		// data (never dropped without a trace), and nothing is sent.
		data := workertest.Data(t, workertest.OrderReady("no-metadata", recipient()))
		r := env.Feed(t.Context(), def, data, workertest.MetadataError(errors.New("no reply subject")))
		one(t, r, workertest.TermWithReason)
		if r.Record != nil || len(r.Letters) != 1 || len(env.Calls(r.ID)) != 0 {
			t.Fatalf("record %+v, letters %+v, calls %v: want one letter, no record, no call", r.Record, r.Letters, calls(env, r.ID))
		}
	})
}

// one fails the test unless the delivery got exactly one final call of kind want.
func one(t *testing.T, r workertest.Result, want workertest.Kind) {
	t.Helper()
	if err := r.Msg.CheckOne(want); err != nil {
		t.Fatal(err)
	}
}

// must returns the delivery's record, failing the test when the job has none.
func must(t *testing.T, r workertest.Result) *status.Record {
	t.Helper()
	if r.Record == nil {
		t.Fatalf("no record for %q after %v", r.ID, r.Disposition)
	}
	return r.Record
}

// states is a record's history as channel:state:code, for comparing in one line.
func states(rec *status.Record) []string {
	if rec == nil {
		return nil
	}
	out := make([]string, len(rec.History))
	for i, a := range rec.History {
		out[i] = a.Channel + ":" + a.State
		if a.Code != "" {
			out[i] += ":" + a.Code
		}
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// calls lists what the simulator received for a job as channel:http status.
func calls(env *workertest.Env, id string) []string {
	var out []string
	for _, m := range env.Calls(id) {
		out = append(out, fmt.Sprintf("%s:%d", m.Channel, m.HTTPStatus))
	}
	return out
}

// testRetry: a passing provider error is recorded as a retry and the delivery is given back
// with the backoff (never shorter than what the provider asked for); the redelivery
// continues from the recorded attempts, and the last allowed attempt falls back.
func testRetry(t *testing.T, env *workertest.Env, w *workertest.Worker) {
	base, maxDelay := w.Config.RetryBaseDelay, w.Config.RetryMaxDelay
	tests := []struct {
		name string
		rule sim.Rule // To is filled in
		// deliveries that end in a retry before the one that settles the job
		retries int
		// atLeast is the provider's own delay (0: the backoff decides)
		atLeast time.Duration
		// want: the last delivery's history and calls
		history []string
		calls   []string
	}{
		{"HTTP 503", sim.Rule{HTTPStatus: 503, Times: 1}, 1, 0,
			[]string{"white:retry:http_503", "white:sent"}, []string{"white:503", "white:200"}},
		{"131000 something went wrong", sim.Rule{Code: 131000, Times: 1}, 1, 0,
			[]string{"white:retry:131000", "white:sent"}, []string{"white:500", "white:200"}},
		{"130429 throughput: the provider's delay wins", sim.Rule{Code: 130429, Times: 1}, 1, 5 * time.Second,
			[]string{"white:retry:130429", "white:sent"}, []string{"white:400", "white:200"}},
		// RetryMaxAttempts is 3: the third failure moves the job to SMS in that delivery.
		{"retries exhausted: SMS", sim.Rule{HTTPStatus: 503}, 2, 0,
			[]string{"white:retry:http_503", "white:retry:http_503", "white:failed:http_503", "sms:sent"},
			[]string{"white:503", "white:503", "white:503", "sms:202"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := env.For(t)
			ctx := t.Context()
			to := recipient()
			rule := tt.rule
			rule.To = to
			env.Sim.AddRule(rule)
			data := workertest.Data(t, workertest.OrderReady(fmt.Sprintf("retry-%d", i), to))

			var prev *workertest.Msg
			for n := 1; n <= tt.retries; n++ {
				var opts []workertest.MsgOption
				if prev != nil {
					opts = append(opts, workertest.RedeliveryOf(prev))
				}
				r := env.Feed(ctx, w, data, opts...)
				one(t, r, workertest.NakWithDelay)
				// Exponential with full jitter: within [d/2, d] for d = base·2^(n-1), capped.
				d := min(base<<(n-1), maxDelay)
				lo, hi := d/2, d
				if tt.atLeast > 0 {
					lo, hi = tt.atLeast, max(tt.atLeast, maxDelay)
				}
				if got := r.Disposition.Delay; got < lo || got > hi {
					t.Fatalf("delivery %d: retry delay %s, want within [%s, %s]", n, got, lo, hi)
				}
				if r.Record == nil || r.Record.Attempts != n || r.Record.Claim != nil || r.Record.State != status.Queued {
					t.Fatalf("delivery %d: record %+v, want queued with %d attempts and no claim", n, r.Record, n)
				}
				if got := len(env.Calls(r.ID)); got != n {
					t.Fatalf("delivery %d: %d provider calls, want %d", n, got, n)
				}
				prev = r.Msg
			}
			r := env.Feed(ctx, w, data, workertest.RedeliveryOf(prev))
			one(t, r, workertest.Ack)
			if must(t, r).State != status.Sent || !equal(states(r.Record), tt.history) {
				t.Fatalf("record %s %v, want sent %v", r.Record.State, states(r.Record), tt.history)
			}
			if got := calls(env, r.ID); !equal(got, tt.calls) {
				t.Fatalf("provider calls %v, want %v", got, tt.calls)
			}
		})
	}
}

// testFallback: a permanent error on white moves the job to SMS in the same delivery.
func testFallback(t *testing.T, env *workertest.Env, def *workertest.Worker) {
	tests := []struct {
		name string
		rule *sim.Rule // on white, To filled in; nil: none
		opts workertest.WorkerOptions
		// second feeds another job to the same worker afterwards and wants these calls
		second  []string
		history []string
		calls   []string
	}{
		{name: "131026 not on WhatsApp", rule: &sim.Rule{Code: 131026},
			history: []string{"white:failed:131026", "sms:sent"}, calls: []string{"white:400", "sms:202"}},
		{name: "131047 re-engagement window", rule: &sim.Rule{Code: 131047},
			history: []string{"white:failed:131047", "sms:sent"}, calls: []string{"white:400", "sms:202"}},
		// An account error stops white in this worker: the next job does not even try it.
		{name: "131031 account locked stops the sender", rule: &sim.Rule{Code: 131031},
			history: []string{"white:failed:131031", "sms:sent"}, calls: []string{"white:403", "sms:202"},
			second: []string{"sms:202"}},
		{name: "no white sender configured",
			opts:    workertest.WorkerOptions{Senders: map[string]worker.Sender{job.ChannelWhite: nil}},
			history: []string{"white:failed:not_configured", "sms:sent"}, calls: []string{"sms:202"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := env.For(t)
			ctx := t.Context()
			w := def
			if tt.opts.Senders != nil || tt.second != nil {
				w = env.NewWorker(tt.opts)
			}
			to := recipient()
			if tt.rule != nil {
				rule := *tt.rule
				rule.To = to
				env.Sim.AddRule(rule)
			}
			r := env.Feed(ctx, w, workertest.Data(t, workertest.OrderReady(fmt.Sprintf("fallback-%d", i), to)))
			one(t, r, workertest.Ack)
			if rec := must(t, r); rec.State != status.Sent || rec.Channel != job.ChannelSMS || rec.ChannelIdx != 1 || !equal(states(rec), tt.history) {
				t.Fatalf("record %s on %s[%d] %v, want sent on sms[1] %v", rec.State, rec.Channel, rec.ChannelIdx, states(rec), tt.history)
			}
			if got := calls(env, r.ID); !equal(got, tt.calls) {
				t.Fatalf("provider calls %v, want %v", got, tt.calls)
			}
			// The move to the next channel renews the ack wait.
			if r.InProgress < 1 {
				t.Fatalf("no heartbeat before the next channel: %v", r.Msg.Calls())
			}
			// SMS reports no delivery the worker waits for: no deadline.
			if s := env.DeadlineSchedule(r.ID); s != nil {
				t.Fatalf("deadline parked after the last channel: %+v", s)
			}
			if tt.second == nil {
				return
			}
			if n := w.Count("herald_fallbacks", "channel", "white", "reason", "sender"); n != 1 {
				t.Fatalf("herald_fallbacks{reason=sender} = %d, want 1", n)
			}
			r = env.Feed(ctx, w, workertest.Data(t, workertest.OrderReady(fmt.Sprintf("fallback-%d-next", i), recipient())))
			one(t, r, workertest.Ack)
			if got := calls(env, r.ID); !equal(got, tt.second) {
				t.Fatalf("next job's provider calls %v, want %v", got, tt.second)
			}
			if h := states(must(t, r)); !equal(h, []string{"white:failed:sender_stopped", "sms:sent"}) {
				t.Fatalf("next job's history %v", h)
			}
		})
	}
}

// testAmbiguous: a delivery that died during its provider call left its claim; once the
// lease has run out, the redelivery records the attempt as unknown, never resends, and
// parks the delivery deadline when the channel reports delivery. A live claim makes the
// redelivery wait for it instead.
func testAmbiguous(t *testing.T, env *workertest.Env, w *workertest.Worker) {
	tests := []struct {
		name     string
		channels []string
		lease    time.Duration
		lapse    bool // wait for the lease to run out first
		want     workertest.Kind
		history  []string
		deadline bool
	}{
		{"white: unknown, deadline parked", nil, 200 * time.Millisecond, true, workertest.Ack, []string{"white:unknown"}, true},
		{"sms only: unknown, nothing to wait for", []string{"sms"}, 200 * time.Millisecond, true, workertest.Ack, []string{"sms:unknown"}, false},
		{"claim still live: busy", nil, time.Minute, false, workertest.NakWithDelay, nil, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := env.For(t)
			ctx := t.Context()
			j := workertest.OrderReady(fmt.Sprintf("ambiguous-%d", i), recipient())
			j.Channels = tt.channels
			data := workertest.Data(t, j)
			cascade := tt.channels
			if cascade == nil {
				cascade = w.Config.Channels
			}
			adm, err := env.Store.Begin(ctx, workertest.Decode(t, data), "dead-worker:1:1", tt.lease, cascade)
			if err != nil || adm.Verdict != status.Claimed {
				t.Fatalf("the dead delivery's claim: %+v %v", adm, err)
			}
			if tt.lapse {
				testutil.Eventually(t, 5*time.Second, func() bool { return env.ClaimLapsed(ctx, j.ID) }, "the dead delivery's lease runs out")
			}
			r := env.Feed(ctx, w, data, workertest.Delivered(2))
			one(t, r, tt.want)
			if n := len(env.Calls(j.ID)); n != 0 {
				t.Fatalf("the provider got %d calls for a job in doubt: %v", n, calls(env, j.ID))
			}
			if tt.want == workertest.NakWithDelay {
				// Busy: back when the lease ends, the claim left alone.
				if d := r.Disposition.Delay; d <= 0 || d > tt.lease+time.Second {
					t.Fatalf("busy delay %s, want within the lease %s", d, tt.lease)
				}
				if must(t, r).Claim == nil || r.Record.Claim.Owner != "dead-worker:1:1" || len(r.Record.History) != 0 {
					t.Fatalf("record after a busy verdict: %+v", r.Record)
				}
				return
			}
			if rec := must(t, r); rec.State != status.Sent || rec.Claim != nil || !equal(states(rec), tt.history) {
				t.Fatalf("record %s %v claim %+v, want sent %v without a claim", rec.State, states(rec), rec.Claim, tt.history)
			}
			s := env.DeadlineSchedule(j.ID)
			if (s != nil) != tt.deadline {
				t.Fatalf("deadline schedule %+v, want parked: %v", s, tt.deadline)
			}
			if s != nil && (s.Check != "0" || s.Target != streams.SubjectTransactional) {
				t.Fatalf("deadline schedule %+v, want a check of attempt 0 back to the transactional lane", s)
			}
		})
	}
}

// hangingSender is a provider call that never answers until its caller gives up: the
// simulator's latency applies to every send, so this one outcome is scripted.
type hangingSender struct{ called chan struct{} }

// Send blocks until the worker gives up on the call.
func (s hangingSender) Send(ctx context.Context, _ worker.Message) (worker.Result, error) {
	close(s.called)
	<-ctx.Done()
	return worker.Result{}, ctx.Err()
}

// testStoppedMidCall: the caller stops the delivery during the provider call. The outcome is
// unknown, so the delivery is left to JetStream (no disposition) and its claim stays, to
// expire into 'unknown' rather than a second send; a redelivery meanwhile waits for it.
func testStoppedMidCall(t *testing.T, env *workertest.Env) {
	t.Parallel()
	env = env.For(t)
	hang := hangingSender{called: make(chan struct{})}
	w := env.NewWorker(workertest.WorkerOptions{Senders: map[string]worker.Sender{job.ChannelWhite: hang}})
	data := workertest.Data(t, workertest.OrderReady("stopped-mid-call", recipient()))
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-hang.called; cancel() }()
	r := env.Feed(ctx, w, data)
	one(t, r, workertest.None)
	if rec := r.Record; rec == nil || rec.Claim == nil || rec.State != status.Queued || len(rec.History) != 0 {
		t.Fatalf("record %+v: want queued under the stopped delivery's claim, no attempt", rec)
	}
	again := env.Feed(t.Context(), w, data, workertest.RedeliveryOf(r.Msg))
	one(t, again, workertest.NakWithDelay)
	if d := again.Disposition.Delay; d <= 0 || d > w.Config.AckWait+11*time.Second {
		t.Fatalf("busy delay %s, want within the claim's lease", d)
	}
	if must(t, again).Claim == nil || again.Record.Claim.Owner != r.Record.Claim.Owner {
		t.Fatalf("the redelivery touched the claim: %+v", again.Record.Claim)
	}
}

// testQuietHours: a bulk job (or one asking for quiet hours) at 03:00 Moscow time is parked
// until 09:00 in a wait schedule and acked, without reaching the provider; a transactional
// job, a bulk job that opts out, and a bulk job in the morning go at once.
func testQuietHours(t *testing.T, env *workertest.Env) {
	msk := time.FixedZone("MSK", 3*3600)
	night := time.Date(2026, 11, 25, 3, 0, 0, 0, msk)
	yes, no := true, false
	tests := []struct {
		name     string
		at       time.Time
		priority string
		quiet    *bool
		held     bool
	}{
		{"bulk at night: held", night, job.PriorityBulk, nil, true},
		{"transactional asking for quiet hours: held", night, "", &yes, true},
		{"transactional at night: sent", night, "", nil, false},
		{"bulk opting out: sent", night, job.PriorityBulk, &no, false},
		{"bulk in the morning: sent", night.Add(6*time.Hour + time.Minute), job.PriorityBulk, nil, false},
	}
	hours, err := quiet.Parse("21:00-09:00")
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := env.For(t)
			clock := &workertest.Clock{}
			clock.Set(tt.at)
			w := env.NewWorker(workertest.WorkerOptions{Config: func(c *worker.Config) { c.QuietHours = hours; c.Now = clock.Now }})
			j := workertest.OrderReady(fmt.Sprintf("quiet-%d", i), recipient())
			j.Priority, j.QuietHours = tt.priority, tt.quiet
			start := time.Now()
			r := env.Feed(t.Context(), w, workertest.Data(t, j))
			one(t, r, workertest.Ack)
			if !tt.held {
				if must(t, r).State != status.Sent || env.Accepted(j.ID, job.ChannelWhite) != 1 {
					t.Fatalf("record %s, calls %v: want sent once", r.Record.State, calls(env, j.ID))
				}
				if s := env.WaitSchedule(j.ID); s != nil {
					t.Fatalf("a job that went has a wait schedule: %+v", s)
				}
				return
			}
			if n := len(env.Calls(j.ID)); n != 0 {
				t.Fatalf("held job reached the provider: %v", calls(env, j.ID))
			}
			morning := time.Date(2026, 11, 25, 9, 0, 0, 0, msk)
			rec := must(t, r)
			if rec.State != status.Scheduled || !strings.Contains(rec.Reason, "quiet_hours") ||
				!strings.Contains(rec.Reason, morning.UTC().Format(time.RFC3339)) || rec.Claim != nil || len(rec.History) != 0 {
				t.Fatalf("record %s %q claim %+v history %v: want scheduled for quiet_hours until 09:00 MSK, no claim, no attempt",
					rec.State, rec.Reason, rec.Claim, states(rec))
			}
			s := env.WaitSchedule(j.ID)
			if s == nil {
				t.Fatal("no wait schedule for the held job")
			}
			// The schedule runs on the server's clock: six hours from now, rounded up to a second.
			if wantAt := start.Add(morning.Sub(tt.at)); s.At.Before(wantAt.Truncate(time.Second)) || s.At.After(time.Now().Add(morning.Sub(tt.at)+2*time.Second)) {
				t.Fatalf("released at %s, want about %s", s.At, wantAt)
			}
			if s.Wait != "quiet_hours" || s.Target != streams.SubjectFor(tt.priority) || string(s.Data) != string(r.Msg.Data()) {
				t.Fatalf("wait schedule %+v: want the job's data for %s, reason quiet_hours", s, streams.SubjectFor(tt.priority))
			}
		})
	}
}

// slowBegins delays the answer of the first claims (a Redis or a worker starved of CPU), so
// that the slot a delivery reserved before its claim has passed when the claim comes back.
// It counts the claims.
type slowBegins struct {
	worker.Store
	delay time.Duration
	slow  atomic.Int64
	calls atomic.Int64
}

// Begin claims, then answers late while slow claims are left.
func (s *slowBegins) Begin(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string) (status.Admission, error) {
	s.calls.Add(1)
	adm, err := s.Store.Begin(ctx, j, owner, lease, channels)
	if s.slow.Add(-1) >= 0 {
		// Simulated slowness, not synchronisation: the answer arrives late.
		t := time.NewTimer(s.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return adm, err
}

// claimWatch is the limiter, noting each reservation taken while the job holds a claim: a
// delivery must not wait for a slot under its claim while it can give the claim back (a
// kill would leave a job that never reached the provider in doubt).
type claimWatch struct {
	*ratelimit.Limiter
	env     *workertest.Env
	underID string
	under   atomic.Int64
}

// Reserve notes whether the job holds a claim, then reserves.
func (l *claimWatch) Reserve(ctx context.Context, r ratelimit.Request) (ratelimit.Decision, error) {
	if rec := l.env.Record(l.underID); rec != nil && rec.Claim != nil {
		l.under.Add(1)
	}
	return l.Limiter.Reserve(ctx, r)
}

// testLateSlot: on a paced channel, a delivery whose claim comes back after the slot it
// reserved has passed gives the claim back and reserves again (worker/lateclaim_test.go
// through the harness; here through the seam). However often that happens, the job is sent
// exactly once and is not held back by its own unused reservation's pair entry, and the
// pair interval still holds the next job to the same recipient.
func testLateSlot(t *testing.T, env *workertest.Env) {
	tests := []struct {
		name string
		slow int64 // late claims
		// maxUnder is how many reservations may be taken under the claim: after a few
		// late claims a starved worker paces under its claim to make progress.
		maxUnder int64
	}{
		{"one late claim", 1, 0},
		{"late every time", 10, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := env.For(t)
			ctx := t.Context()
			to := recipient()
			j := workertest.OrderReady(fmt.Sprintf("late-%d", i), to)
			// 3/s is paced at 2/s: a slot may be 167 ms late, far more than a claim takes
			// even on a loaded machine; the slow claims come back 400 ms after the slot.
			store := &slowBegins{delay: 400 * time.Millisecond}
			store.slow.Store(tt.slow)
			lim := &claimWatch{Limiter: env.Limiter, env: env, underID: j.ID}
			sender := fmt.Sprintf("white:late-%d", i)
			w := env.NewWorker(workertest.WorkerOptions{
				Store: func(s worker.Store) worker.Store { store.Store = s; return store },
				Config: func(c *worker.Config) {
					c.Limiter = lim
					c.Limits = map[string]worker.ChannelLimit{job.ChannelWhite: {Sender: sender, Rate: 3, PairInterval: time.Minute}}
				},
			})
			r := env.Feed(ctx, w, workertest.Data(t, j))
			one(t, r, workertest.Ack)
			if must(t, r).State != status.Sent || !equal(states(r.Record), []string{"white:sent"}) {
				t.Fatalf("record %s %v, want sent once on white (not held by its own reservation)", r.Record.State, states(r.Record))
			}
			if got := calls(env, j.ID); !equal(got, []string{"white:200"}) {
				t.Fatalf("provider calls %v, want one send", got)
			}
			if n := w.Count("herald_limiter_waits", "sender", "default-white", "reason", "late_claim"); n < 1 {
				t.Fatalf("herald_limiter_waits{reason=late_claim} = %d: the claim never made the slot late, the case proves nothing", n)
			}
			if n := store.calls.Load(); n < 2 {
				t.Fatalf("%d claims: the late one was not given back and taken again", n)
			}
			if n := lim.under.Load(); n > tt.maxUnder {
				t.Fatalf("%d reservations under the claim, want at most %d", n, tt.maxUnder)
			}

			// The pair interval holds: the next job to the same recipient waits for it, in a
			// schedule (a minute is longer than a delivery may wait in the worker).
			next := workertest.OrderReady(fmt.Sprintf("late-%d-next", i), to)
			r = env.Feed(ctx, w, workertest.Data(t, next))
			one(t, r, workertest.Ack)
			if n := len(env.Calls(next.ID)); n != 0 {
				t.Fatalf("the next job to %s went %v inside the pair interval", digits(to), calls(env, next.ID))
			}
			if must(t, r).State != status.Scheduled || !strings.Contains(r.Record.Reason, string(ratelimit.ReasonPair)) {
				t.Fatalf("next job %s %q, want scheduled for the pair interval", r.Record.State, r.Record.Reason)
			}
			if s := env.WaitSchedule(next.ID); s == nil || s.Wait != string(ratelimit.ReasonPair) {
				t.Fatalf("next job's wait schedule %+v, want one for %s", s, ratelimit.ReasonPair)
			}
		})
	}
}

// testDuplicate: a job already handled is not sent again, whichever copy comes: a duplicate
// publish (a first delivery of another message) is acked at once; a redelivery (the ack was
// lost) stores again what the first one published (the deadline, the DLQ letter) under the
// same ids, so nothing is doubled.
func testDuplicate(t *testing.T, env *workertest.Env, w *workertest.Worker) {
	tests := []struct {
		name       string
		rule       *sim.Rule // on white for the first delivery
		redelivery bool
		first      workertest.Kind
		again      workertest.Kind
		reason     string // of the second TermWithReason
		history    []string
	}{
		{"sent, published again", nil, false, workertest.Ack, workertest.Ack, "", []string{"white:sent"}},
		{"sent, redelivered", nil, true, workertest.Ack, workertest.Ack, "", []string{"white:sent"}},
		{"failed, redelivered: one letter", &sim.Rule{Code: 131050}, true, workertest.TermWithReason, workertest.TermWithReason,
			"rejected", []string{"white:failed:131050"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := env.For(t)
			ctx := t.Context()
			to := recipient()
			if tt.rule != nil {
				rule := *tt.rule
				rule.To = to
				env.Sim.AddRule(rule)
			}
			data := workertest.Data(t, workertest.OrderReady(fmt.Sprintf("duplicate-%d", i), to))
			first := env.Feed(ctx, w, data)
			one(t, first, tt.first)
			callsBefore := calls(env, first.ID)
			var opts []workertest.MsgOption
			if tt.redelivery {
				opts = append(opts, workertest.RedeliveryOf(first.Msg))
			}
			r := env.Feed(ctx, w, data, opts...)
			one(t, r, tt.again)
			if r.Disposition.Reason != tt.reason {
				t.Fatalf("disposition %v, want reason %q", r.Disposition, tt.reason)
			}
			if got := calls(env, r.ID); !equal(got, callsBefore) {
				t.Fatalf("provider calls %v after the copy, want still %v", got, callsBefore)
			}
			if !equal(states(must(t, r)), tt.history) || r.Record.State != must(t, first).State {
				t.Fatalf("record %s %v after the copy, want %s %v", r.Record.State, states(r.Record), first.Record.State, tt.history)
			}
			if n := len(env.Letters(r.ID)); (tt.rule != nil) != (n == 1) || n > 1 {
				t.Fatalf("%d DLQ letters for the job: %+v", n, env.Letters(r.ID))
			}
			if tt.rule == nil && env.DeadlineSchedule(r.ID) == nil {
				t.Fatal("the sent job's delivery deadline is not parked")
			}
		})
	}
}

// testDeadLetter: what can never be sent is terminated with its reason after a DLQ letter
// carrying the original data; a job with a usable id has its record say why.
func testDeadLetter(t *testing.T, env *workertest.Env, w *workertest.Worker) {
	tests := []struct {
		name    string
		data    func(to string) []byte
		rule    *sim.Rule // on white, To filled in
		want    workertest.Kind
		reason  string // the TermWithReason and the letter's
		state   string // "": no record
		history []string
		calls   []string
	}{
		{name: "invalid job with an id", data: func(to string) []byte {
			return []byte(`{"id":"dead-invalid-1","to":"not a number","template":"order_ready"}`)
		}, want: workertest.TermWithReason, reason: "invalid", state: status.Rejected},
		{name: "not JSON", data: func(string) []byte { return []byte(`{"id":"dead-not-json",`) },
			want: workertest.TermWithReason, reason: "invalid"},
		{name: "unusable id", data: func(to string) []byte { return []byte(`{"id":"has spaces in it","to":"` + to + `"}`) },
			want: workertest.TermWithReason, reason: "invalid"},
		{name: "131050 user stopped marketing: no channel will do", rule: &sim.Rule{Code: 131050},
			want: workertest.TermWithReason, reason: "rejected", state: status.Failed,
			history: []string{"white:failed:131050"}, calls: []string{"white:400"}},
		{name: "every channel failed", data: func(to string) []byte {
			j := workertest.OrderReady("dead-exhausted", to)
			j.Channels = []string{job.ChannelWhite}
			return workertest.Data(t, j)
		}, rule: &sim.Rule{Code: 131026}, want: workertest.TermWithReason, reason: "exhausted", state: status.Failed,
			history: []string{"white:failed:131026"}, calls: []string{"white:400"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := env.For(t)
			to := recipient()
			if tt.rule != nil {
				rule := *tt.rule
				rule.To = to
				env.Sim.AddRule(rule)
			}
			data := workertest.Data(t, workertest.OrderReady(fmt.Sprintf("dead-%d", i), to))
			if tt.data != nil {
				data = tt.data(to)
			}
			r := env.Feed(t.Context(), w, data)
			one(t, r, tt.want)
			if r.Disposition.Reason != tt.reason {
				t.Fatalf("disposition %v, want reason %q", r.Disposition, tt.reason)
			}
			if len(r.Letters) != 1 {
				t.Fatalf("%d DLQ letters, want one: %+v", len(r.Letters), r.Letters)
			}
			l := r.Letters[0]
			if l.Subject != streams.DLQSubject(tt.reason) || l.Reason != tt.reason || l.Error == "" || l.Attempts != "1" ||
				l.Origin != streams.SubjectTransactional {
				t.Fatalf("letter %+v, want %s with an error", l, streams.DLQSubject(tt.reason))
			}
			if tt.state == "" {
				if r.Record != nil || l.JobID != "" {
					t.Fatalf("a job without a usable id got record %+v, letter job id %q", r.Record, l.JobID)
				}
				return
			}
			if l.JobID != r.ID {
				t.Fatalf("letter names job %q, want %q", l.JobID, r.ID)
			}
			if r.Record == nil || r.Record.State != tt.state || r.Record.Reason == "" || !equal(states(r.Record), tt.history) {
				t.Fatalf("record %+v, want %s with a reason and history %v", r.Record, tt.state, tt.history)
			}
			if got := calls(env, r.ID); !equal(got, tt.calls) {
				t.Fatalf("provider calls %v, want %v", got, tt.calls)
			}
		})
	}
}
