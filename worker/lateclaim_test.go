package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/white"
	"github.com/herald-notify/herald/producer"
	"github.com/herald-notify/herald/worker"
)

// slowClaims is the Redis store with its first claims slowed down (a Redis or a worker
// starved of CPU), and a log of what the worker asked of it. At each claim it also notes
// whether the record held a claim already: a job waiting for a slot must not.
type slowClaims struct {
	*status.Store
	slow        int           // how many first Begin calls are slowed
	delay       time.Duration // by how much
	failRelease int           // how many first claim releases fail (Redis not answering)

	mu  sync.Mutex
	ops []string
}

func (s *slowClaims) log(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, op)
}

func (s *slowClaims) Begin(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string) (status.Admission, error) {
	if rec, err := s.Get(ctx, j.ID); err == nil && rec.Claim != nil {
		s.log("begin-while-claimed")
	} else {
		s.log("begin")
	}
	s.mu.Lock()
	slow := s.slow > 0
	s.slow--
	s.mu.Unlock()
	adm, err := s.Store.Begin(ctx, j, owner, lease, channels)
	if slow {
		// The answer comes back late: the slot paced before the claim is behind by then.
		t := time.NewTimer(s.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return adm, err
}

func (s *slowClaims) Settle(ctx context.Context, j *job.Job, owner, state, reason string, channels []string) (string, *status.Record, error) {
	if state == "" {
		s.mu.Lock()
		fail := s.failRelease > 0
		s.failRelease--
		s.mu.Unlock()
		if fail {
			s.log("release-failed")
			return "", nil, errors.New("redis: i/o timeout")
		}
		s.log("release")
	} else {
		s.log("settle-" + state)
	}
	return s.Store.Settle(ctx, j, owner, state, reason, channels)
}

func (s *slowClaims) Attempt(ctx context.Context, id, owner string, o status.Outcome) (string, *status.Record, error) {
	s.log("attempt-" + string(o.Mode))
	return s.Store.Attempt(ctx, id, owner, o)
}

// loggedLimiter is the Redis limiter, logging each reservation into the store's log, so the
// order of slots and claims shows.
type loggedLimiter struct {
	*ratelimit.Limiter
	s *slowClaims
}

func (l loggedLimiter) Reserve(ctx context.Context, r ratelimit.Request) (ratelimit.Decision, error) {
	l.s.log("reserve")
	return l.Limiter.Reserve(ctx, r)
}

func (s *slowClaims) record() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ops)
}

// TestLateClaimGivesClaimBack: the order of slot and claim. A plain delivery paces first when
// the sender is busy; if its claim then came back after the slot had passed (later than the
// pacing margin allows) it gives the claim back and paces again before it claims anew, so it
// never waits for a slot while holding a claim (a kill then would leave the job in doubt
// although it never reached the provider). After maxRepace tries it goes on under the claim:
// a starved worker still makes progress. When the sender's slots are free at once it claims
// first and takes the slot right after. Either way each message goes out exactly once.
func TestLateClaimGivesClaimBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		rate        float64
		pair        time.Duration
		jobs        int // the last job's store calls are checked
		slow        int
		failRelease int
		want        []string
	}{
		{"fast claim", 2.1, 0, 1, 0, 0, []string{"reserve", "begin", "attempt-sent"}},
		{"one late claim", 2.1, 0, 1, 1, 0, []string{"reserve", "begin", "release", "reserve", "begin", "attempt-sent"}},
		{"late every time: paced under the claim after two tries", 2.1, 0, 1, 10, 0,
			[]string{"reserve", "begin", "release", "reserve", "begin", "release", "reserve", "begin", "reserve", "attempt-sent"}},
		// Giving the claim back fails once: it is retried until Redis answers, before the
		// job waits for a slot or sends (the claim's state must be known).
		{"late claim, release fails once", 2.1, 0, 1, 1, 1, []string{"reserve", "begin", "release-failed", "release", "reserve", "begin", "attempt-sent"}},
		// A pair interval: the unused reservation replaced by the next does not hold the send
		// back for the interval (an extra, refused reservation would show), however often.
		{"late claims with a pair interval", 2.1, time.Minute, 1, 1, 0, []string{"reserve", "begin", "release", "reserve", "begin", "attempt-sent"}},
		{"late every time with a pair interval", 2.1, time.Minute, 1, 10, 0,
			[]string{"reserve", "begin", "release", "reserve", "begin", "release", "reserve", "begin", "reserve", "attempt-sent"}},
		// The first job found the sender's slots free at once: the next one claims first and
		// takes its slot right before the call, so the claim cannot make it late.
		{"idle sender: claim, then slot", 1000, 0, 2, 0, 0, []string{"begin", "reserve", "attempt-sent"}},
		// The sender is busy (2.1/s: the next slot is 625 ms away, far more than the 119 ms a
		// slot may be late after a claim): the claim is given back and the job paces first.
		// (At 1.5/s the late allowance is 7.5 ms, which a loaded machine's Redis call can
		// exceed: the second claim would be late too, correctly, but not this case's point.)
		{"busy sender: claim given back", 2.1, 0, 2, 0, 0, []string{"begin", "reserve", "release", "reserve", "begin", "attempt-sent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			_, js := testutil.StartNATS(t).Connect(t)
			rdb := testutil.StartRedis(t).Client(t)
			if err := streams.Ensure(ctx, js, streams.Options{}); err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(ctx, streams.TemplatesKV)
			if err != nil {
				t.Fatal(err)
			}
			if err := templates.PutSamples(ctx, kv); err != nil {
				t.Fatal(err)
			}
			cat := templates.NewCatalogue(kv, slog.New(slog.DiscardHandler))
			if err := cat.Start(ctx); err != nil {
				t.Fatal(err)
			}
			provider := sim.New(sim.Config{Logger: slog.New(slog.DiscardHandler)})
			srv := httptest.NewServer(provider.Handler())
			t.Cleanup(srv.Close)

			// 2.1/s: slots are reserved at 1.6/s, so a slot may be 119 ms late (far more than a
			// claim takes on a loaded machine); the slow claims come back 600 ms after it.
			store := &slowClaims{Store: worker.NewRedisStore(rdb, time.Hour, "1"), slow: tt.slow, delay: 600 * time.Millisecond, failRelease: tt.failRelease}
			lim := loggedLimiter{Limiter: ratelimit.New(rdb), s: store}
			w := worker.New(js, store, cat,
				map[string]worker.Sender{"white": worker.White{Client: white.New(white.Config{BaseURL: srv.URL, PhoneNumberID: "1", Token: "t"}, nil)}},
				worker.Config{Channels: []string{"white"}, Logger: slog.New(slog.DiscardHandler),
					Limiter: lim, Limits: map[string]worker.ChannelLimit{"white": {Sender: "white:1", Rate: tt.rate, PairInterval: tt.pair}}})
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- w.Run(runCtx) }()
			t.Cleanup(func() { stop(); <-done })

			var from int // where the last job's calls begin in the log
			for i := range tt.jobs {
				from = len(store.record())
				if _, err := producer.New(js).Publish(ctx, orderJob(i)); err != nil {
					t.Fatal(err)
				}
				testutil.Eventually(t, 10*time.Second, func() bool {
					ops := store.record()
					return len(ops) > from && ops[len(ops)-1] == "attempt-sent"
				}, "job %d sent and recorded", i)
			}
			if got := store.record()[from:]; !slices.Equal(got, tt.want) {
				t.Fatalf("store and limiter calls %v, want %v", got, tt.want)
			}
			if n := len(provider.Messages()); n != tt.jobs {
				t.Fatalf("provider saw %d sends, want %d", n, tt.jobs)
			}
		})
	}
}
