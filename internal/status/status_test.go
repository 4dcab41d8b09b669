package status_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

const ttl = time.Hour

var cascade = []string{"white", "sms"}

// env is one redis-server shared by the subtests of a test function; subtests keep apart by
// using distinct job ids and phone numbers.
type env struct {
	store *status.Store
	rdb   *redis.Client
}

func newEnv(t *testing.T) env {
	t.Helper()
	r := testutil.StartRedis(t)
	c := r.Client(t)
	return env{store: status.NewStore(c, ttl, nil), rdb: c}
}

// newJob returns a valid, normalised job; n picks a distinct recipient so subtests sharing a
// Redis never see each other's suppression or window keys.
func newJob(id string, n int) *job.Job {
	return &job.Job{
		ID: id, To: fmt.Sprintf("+7900%07d", n), Template: "order_ready", Language: "ru",
		Priority: job.PriorityTransactional, Campaign: "c1", Tenant: "shop",
		Metadata: map[string]string{"order_id": "123456"},
	}
}

func (e env) begin(t *testing.T, j *job.Job, owner string, lease time.Duration) status.Admission {
	t.Helper()
	adm, err := e.store.Begin(t.Context(), j, owner, lease, cascade)
	if err != nil {
		t.Fatalf("Begin(%s, %s): %v", j.ID, owner, err)
	}
	return adm
}

// ref is the store key of a test job's id: every test job belongs to tenant shop.
func ref(id string) string { return job.Ref("shop", id) }

func (e env) attempt(t *testing.T, id, owner string, o status.Outcome) (string, *status.Record) {
	t.Helper()
	old, rec, err := e.store.Attempt(t.Context(), ref(id), owner, o)
	if err != nil {
		t.Fatalf("Attempt(%s, %s): %v", id, o.Mode, err)
	}
	return old, rec
}

func (e env) get(t *testing.T, id string) *status.Record {
	t.Helper()
	rec, err := e.store.Get(t.Context(), ref(id))
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return rec
}

// sent claims j and records a sent attempt on white with message id msg.
func (e env) sent(t *testing.T, j *job.Job, msg string) *status.Record {
	t.Helper()
	if adm := e.begin(t, j, "w1", time.Minute); adm.Verdict != status.Claimed {
		t.Fatalf("Begin = %s, want claimed", adm.Verdict)
	}
	_, rec := e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: msg})
	return rec
}

func (e env) assertTTL(t *testing.T, key string) {
	t.Helper()
	d, err := e.rdb.PTTL(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 || d > ttl {
		t.Fatalf("PTTL(%s) = %s, want in (0, %s]", key, d, ttl)
	}
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	for state, want := range map[string]bool{
		status.Queued: false, status.Scheduled: false, status.Sent: false, status.Delivered: false, status.Read: false,
		status.Failed: true, status.Expired: true, status.Suppressed: true, status.Rejected: true, status.Canceled: true,
	} {
		if got := status.Terminal(state); got != want {
			t.Errorf("Terminal(%q) = %v, want %v", state, got, want)
		}
	}
}

func TestBegin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("new job is claimed", func(t *testing.T) {
		t.Parallel()
		j := newJob("begin-new", 1)
		adm := e.begin(t, j, "owner-a", time.Minute)
		if adm.Verdict != status.Claimed || adm.Wait != 0 || adm.WindowOpen {
			t.Fatalf("admission = %+v, want claimed, no wait, window closed", adm)
		}
		r := adm.Record
		if r.ID != j.ID || r.State != status.Queued || r.To != j.To || r.Template != "order_ready" ||
			r.Channel != "white" || r.ChannelIdx != 0 || len(r.Channels) != 2 || r.Metadata["order_id"] != "123456" ||
			r.Campaign != "c1" || r.Tenant != "shop" || r.CreatedAt == "" {
			t.Fatalf("record = %+v", r)
		}
		if r.Claim == nil || r.Claim.Owner != "owner-a" || r.Claim.Channel != "white" {
			t.Fatalf("claim = %+v, want owner-a on white", r.Claim)
		}
		// The lease runs on the Redis clock: until is about now + 1 minute in ms.
		if d := time.Until(time.UnixMilli(r.Claim.Until)); d < 55*time.Second || d > 65*time.Second {
			t.Fatalf("claim until is %s from now, want about 1m", d)
		}
		stored := e.get(t, j.ID)
		if stored.State != status.Queued || stored.Claim == nil || stored.Claim.Owner != "owner-a" {
			t.Fatalf("stored record = %+v", stored)
		}
		e.assertTTL(t, status.RecordKey(j.Ref()))
	})

	t.Run("live lease makes another owner busy", func(t *testing.T) {
		t.Parallel()
		j := newJob("begin-busy", 2)
		e.begin(t, j, "owner-a", 30*time.Second)
		adm := e.begin(t, j, "owner-b", 30*time.Second)
		if adm.Verdict != status.Busy {
			t.Fatalf("verdict = %s, want busy", adm.Verdict)
		}
		if adm.Wait <= 25*time.Second || adm.Wait > 30*time.Second {
			t.Fatalf("wait = %s, want the remaining lease (just under 30s)", adm.Wait)
		}
		if c := e.get(t, j.ID).Claim; c == nil || c.Owner != "owner-a" {
			t.Fatalf("claim = %+v, want owner-a's kept", c)
		}
	})

	t.Run("expired lease is ambiguous and never claims again", func(t *testing.T) {
		t.Parallel()
		j := newJob("begin-ambiguous", 3)
		e.begin(t, j, "owner-a", 50*time.Millisecond)
		adm := e.afterLease(t, j, "owner-b")
		r := adm.Record
		if r.State != status.Sent || r.Claim != nil || r.Reason == "" {
			t.Fatalf("record = %+v, want sent, unclaimed, with a reason", r)
		}
		if len(r.History) != 1 || r.History[0].State != "unknown" || r.History[0].Channel != "white" || r.History[0].At == "" {
			t.Fatalf("history = %+v, want one unknown attempt on white", r.History)
		}
		if got := e.get(t, j.ID); got.State != status.Sent || len(got.History) != 1 {
			t.Fatalf("stored record = %+v", got)
		}
		// At most once: no later delivery, not even the original owner's, claims it again.
		// While the outcome is still in doubt each one hears "ambiguous" again (so that the
		// delivery deadline is parked even if the first one died before parking it), and
		// nothing changes.
		for _, owner := range []string{"owner-c", "owner-a", "owner-b"} {
			if adm := e.begin(t, j, owner, time.Minute); adm.Verdict != status.Ambiguous || adm.Record.Claim != nil {
				t.Fatalf("Begin(%s) after ambiguous = %s (claim %+v), want ambiguous again, unclaimed", owner, adm.Verdict, adm.Record.Claim)
			}
		}
		if got := e.get(t, j.ID); len(got.History) != 1 || got.Claim != nil {
			t.Fatalf("record changed after repeated verdicts: %+v", got)
		}
	})

	t.Run("done after a sent attempt", func(t *testing.T) {
		t.Parallel()
		j := newJob("begin-after-sent", 4)
		e.sent(t, j, "wamid.begin-after-sent")
		adm := e.begin(t, j, "owner-b", time.Minute)
		if adm.Verdict != status.Done || adm.Record.State != status.Sent || adm.Record.Claim != nil {
			t.Fatalf("admission = %+v %+v, want done on the sent record", adm, adm.Record)
		}
	})

	t.Run("suppressed recipient", func(t *testing.T) {
		t.Parallel()
		j := newJob("begin-suppressed", 5)
		if err := e.rdb.SAdd(t.Context(), status.KeySuppressed, j.To).Err(); err != nil {
			t.Fatal(err)
		}
		adm := e.begin(t, j, "owner-a", time.Minute)
		if adm.Verdict != status.SuppressedVerdict || adm.Record.State != status.Suppressed || adm.Record.Claim != nil {
			t.Fatalf("admission = %s %+v, want suppressed, unclaimed", adm.Verdict, adm.Record)
		}
		if got := e.get(t, j.ID); got.State != status.Suppressed || got.Reason == "" {
			t.Fatalf("stored record = %+v, want suppressed with a reason", got)
		}
		if adm := e.begin(t, j, "owner-b", time.Minute); adm.Verdict != status.Done {
			t.Fatalf("Begin after suppressed = %s, want done", adm.Verdict)
		}
	})

	t.Run("window open", func(t *testing.T) {
		t.Parallel()
		j := newJob("begin-window", 6)
		other := newJob("begin-no-window", 7)
		if err := e.store.OpenWindow(t.Context(), "", j.To, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if adm := e.begin(t, j, "owner-a", time.Minute); !adm.WindowOpen || adm.Verdict != status.Claimed {
			t.Fatalf("admission = %+v, want claimed with the window open", adm)
		}
		if adm := e.begin(t, other, "owner-a", time.Minute); adm.WindowOpen {
			t.Fatal("window open for a recipient who never wrote")
		}
		d, err := e.rdb.PTTL(t.Context(), status.WindowKey("", j.To)).Result()
		if err != nil || d <= 23*time.Hour || d > 24*time.Hour {
			t.Fatalf("window PTTL = %s, %v; want about 24h", d, err)
		}
	})

	t.Run("same owner claims again", func(t *testing.T) {
		t.Parallel()
		// A delivery that calls Begin twice (a retry of the Redis call) keeps its claim.
		j := newJob("begin-same-owner", 8)
		e.begin(t, j, "owner-a", time.Minute)
		if adm := e.begin(t, j, "owner-a", time.Minute); adm.Verdict != status.Claimed {
			t.Fatalf("second Begin of the same owner = %s, want claimed", adm.Verdict)
		}
	})
}

// TestBeginConcurrent checks the at-most-once claim under contention: of many deliveries of
// one job racing for it, exactly one holds it.
func TestBeginConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	j := newJob("begin-race", 9)
	const n = 20
	verdicts := make([]status.Verdict, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			adm, err := e.store.Begin(t.Context(), j, fmt.Sprintf("owner-%d", i), time.Minute, cascade)
			verdicts[i], errs[i] = adm.Verdict, err
		})
	}
	close(start)
	wg.Wait()
	claimed := -1
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Begin %d: %v", i, errs[i])
		}
		switch verdicts[i] {
		case status.Claimed:
			if claimed >= 0 {
				t.Fatalf("owners %d and %d both claimed the job", claimed, i)
			}
			claimed = i
		case status.Busy:
		default:
			t.Fatalf("Begin %d = %s, want claimed or busy", i, verdicts[i])
		}
	}
	if claimed < 0 {
		t.Fatal("no owner claimed the job")
	}
	if c := e.get(t, j.ID).Claim; c == nil || c.Owner != fmt.Sprintf("owner-%d", claimed) {
		t.Fatalf("stored claim = %+v, want owner-%d", c, claimed)
	}
}

func TestAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("sent", func(t *testing.T) {
		t.Parallel()
		j := newJob("attempt-sent", 1)
		e.begin(t, j, "w1", time.Minute)
		old, rec := e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: "wamid.sent"})
		if old != status.Queued || rec.State != status.Sent || rec.ProviderMessageID != "wamid.sent" || rec.Claim != nil || rec.Attempts != 1 {
			t.Fatalf("old %q, record %+v", old, rec)
		}
		if len(rec.History) != 1 {
			t.Fatalf("history = %+v, want one attempt", rec.History)
		}
		if a := rec.History[0]; a.Channel != "white" || a.State != status.Sent || a.ProviderMessageID != "wamid.sent" || a.At == "" {
			t.Fatalf("attempt = %+v", a)
		}
		got, err := e.store.RefForMessage(t.Context(), "wamid.sent")
		if err != nil || got != j.Ref() {
			t.Fatalf("RefForMessage = %q, %v; want %q", got, err, j.Ref())
		}
		if _, err := e.store.RefForMessage(t.Context(), "wamid.other"); !errors.Is(err, status.ErrNotFound) {
			t.Fatalf("RefForMessage(unknown) err = %v, want ErrNotFound", err)
		}
		e.assertTTL(t, status.RecordKey(j.Ref()))
		e.assertTTL(t, "herald:m:{wamid.sent}")
	})

	t.Run("retry releases the claim", func(t *testing.T) {
		t.Parallel()
		j := newJob("attempt-retry", 2)
		e.begin(t, j, "w1", time.Minute)
		old, rec := e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeRetry, Channel: "white", Attempts: 2, Code: "131000", Reason: "temporary"})
		if old != status.Queued || rec.State != status.Queued || rec.Attempts != 2 || rec.Claim != nil || rec.Reason != "temporary" {
			t.Fatalf("old %q, record %+v", old, rec)
		}
		if a := rec.History[0]; len(rec.History) != 1 || a.State != "retry" || a.Code != "131000" || a.Channel != "white" {
			t.Fatalf("history = %+v", rec.History)
		}
		adm := e.begin(t, j, "w2", time.Minute)
		if adm.Verdict != status.Claimed || adm.Record.Attempts != 2 || adm.Record.ChannelIdx != 0 {
			t.Fatalf("next delivery: %s %+v, want claimed with attempts 2 on channel 0", adm.Verdict, adm.Record)
		}
	})

	t.Run("fallback advances the channel and keeps the claim", func(t *testing.T) {
		t.Parallel()
		j := newJob("attempt-fallback", 3)
		e.begin(t, j, "w1", time.Minute)
		_, rec := e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeFallback, Channel: "white", ChannelIdx: 1, Code: "131026", Reason: "undeliverable", NextChannel: "sms"})
		if rec.ChannelIdx != 1 || rec.Attempts != 0 || rec.State != status.Queued || rec.Claim == nil || rec.Claim.Owner != "w1" {
			t.Fatalf("record = %+v, claim %+v", rec, rec.Claim)
		}
		if a := rec.History[0]; len(rec.History) != 1 || a.State != status.Failed || a.Channel != "white" || a.Reason != "undeliverable" {
			t.Fatalf("history = %+v", rec.History)
		}
		if adm := e.begin(t, j, "w2", time.Minute); adm.Verdict != status.Busy {
			t.Fatalf("Begin by another owner during the fallback = %s, want busy", adm.Verdict)
		}
		_, rec = e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "sms", ChannelIdx: 1, Attempts: 1, ProviderMessageID: "sms-1"})
		if rec.State != status.Sent || rec.Channel != "sms" || len(rec.History) != 2 || rec.History[1].Channel != "sms" {
			t.Fatalf("after the SMS: %+v", rec)
		}
	})

	t.Run("failed is terminal", func(t *testing.T) {
		t.Parallel()
		j := newJob("attempt-failed", 4)
		e.begin(t, j, "w1", time.Minute)
		old, rec := e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeFailed, Channel: "sms", ChannelIdx: 1, Code: "x", Reason: "every channel failed"})
		if old != status.Queued || rec.State != status.Failed || rec.Reason != "every channel failed" || rec.Claim != nil {
			t.Fatalf("old %q, record %+v", old, rec)
		}
		if adm := e.begin(t, j, "w2", time.Minute); adm.Verdict != status.Done {
			t.Fatalf("Begin after failed = %s, want done", adm.Verdict)
		}
	})

	t.Run("missing record", func(t *testing.T) {
		t.Parallel()
		_, _, err := e.store.Attempt(t.Context(), ref("attempt-missing"), "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", ProviderMessageID: "m"})
		if !errors.Is(err, status.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}

// TestAmbiguousAfterFallbackNamesTheChannelInDoubt: a worker falls back from white to SMS
// (Attempt fallback keeps its claim) and dies during the SMS provider call. The call in doubt
// was the SMS one, so the 'unknown' attempt must name sms.
func TestAmbiguousAfterFallbackNamesTheChannelInDoubt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	j := newJob("ambiguous-after-fallback", 1)
	e.begin(t, j, "w1", 50*time.Millisecond)
	_, rec := e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeFallback, Channel: "white", ChannelIdx: 1, Reason: "undeliverable", NextChannel: "sms"})
	if rec.ChannelIdx != 1 {
		t.Fatalf("channel_idx = %d, want 1", rec.ChannelIdx)
	}
	adm := e.afterLease(t, j, "w2")
	last := adm.Record.History[len(adm.Record.History)-1]
	if last.State != "unknown" || last.Channel != "sms" {
		t.Errorf("attempt in doubt = %+v, want unknown on sms (the channel being sent when the worker died)", last)
	}
	if adm.Record.Channel != "sms" {
		t.Errorf("record channel = %q with channel_idx %d, want sms", adm.Record.Channel, adm.Record.ChannelIdx)
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	type step struct {
		state       string
		wantState   string
		wantChanged bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"forward only", []step{
			{status.Delivered, status.Delivered, true},
			{status.Read, status.Read, true},
			{status.Delivered, status.Read, false},
			{status.Sent, status.Read, false},
			{status.Read, status.Read, false},
		}},
		{"read before delivered", []step{
			{status.Read, status.Read, true},
			{status.Delivered, status.Read, false},
		}},
		{"repeated sent", []step{
			{status.Sent, status.Sent, false},
			{status.Delivered, status.Delivered, true},
			{status.Delivered, status.Delivered, false},
		}},
		// A message the customer got cannot fail: a late or replayed failed report (Meta
		// retries webhooks) neither ends the record nor releases the next channel.
		{"failed after read changes nothing", []step{
			{status.Read, status.Read, true},
			{status.Failed, status.Read, false},
		}},
		{"failed after delivered changes nothing", []step{
			{status.Delivered, status.Delivered, true},
			{status.Failed, status.Delivered, false},
			{status.Read, status.Read, true},
		}},
		{"failed is terminal for the attempt", []step{
			{status.Failed, status.Failed, true},
			{status.Delivered, status.Failed, false},
			{status.Read, status.Failed, false},
			{status.Failed, status.Failed, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := "apply-" + tc.name
			msg := "wamid." + id
			e.sent(t, newJob(sanitize(id), 1), msg)
			prev := status.Sent
			for i, s := range tc.steps {
				old, rec, changed, err := e.store.Apply(t.Context(), status.Report{MessageID: msg, State: s.state, Code: "c", Reason: "r-" + s.state})
				if err != nil {
					t.Fatalf("step %d (%s): %v", i, s.state, err)
				}
				if old != prev || rec.State != s.wantState || changed != s.wantChanged {
					t.Fatalf("step %d (%s): old %q state %q changed %v; want old %q state %q changed %v",
						i, s.state, old, rec.State, changed, prev, s.wantState, s.wantChanged)
				}
				if got := e.get(t, rec.ID); got.State != s.wantState || got.History[0].State != s.wantState {
					t.Fatalf("step %d: stored state %q, attempt %q; want %q", i, got.State, got.History[0].State, s.wantState)
				}
				prev = rec.State
			}
		})
	}

	t.Run("late failed after read does not release the next channel", func(t *testing.T) {
		t.Parallel()
		j := newJob("apply-late-failed", 3)
		e.sent(t, j, "wamid.late-failed")
		if _, _, _, err := e.store.Apply(t.Context(), status.Report{MessageID: "wamid.late-failed", State: status.Read, Channel: "white"}); err != nil {
			t.Fatal(err)
		}
		_, rec, changed, err := e.store.Apply(t.Context(), status.Report{MessageID: "wamid.late-failed", State: status.Failed,
			Code: "131026", Reason: "late", Fallback: true, Channel: "white"})
		if err != nil || changed || rec.State != status.Read || rec.Resume || rec.ChannelIdx != 0 {
			t.Fatalf("late failed: changed %v, err %v, record %+v; want read, no fallback", changed, err, rec)
		}
	})

	t.Run("failed report records code and reason", func(t *testing.T) {
		t.Parallel()
		j := newJob("apply-failed-reason", 2)
		e.sent(t, j, "wamid.failed-reason")
		_, rec, changed, err := e.store.Apply(t.Context(), status.Report{MessageID: "wamid.failed-reason", State: status.Failed, Code: "131026", Reason: "Message undeliverable"})
		if err != nil || !changed {
			t.Fatalf("changed %v, err %v", changed, err)
		}
		a := rec.History[0]
		if rec.State != status.Failed || rec.Reason != "Message undeliverable" || a.Code != "131026" || a.Reason != "Message undeliverable" || a.StatusAt == "" {
			t.Fatalf("record %+v, attempt %+v", rec, a)
		}
	})

	t.Run("matched by job id", func(t *testing.T) {
		t.Parallel()
		j := newJob("apply-by-job-id", 3)
		e.sent(t, j, "wamid.by-job-id")
		// Without the message index the report is still found by the echoed job id.
		if err := e.rdb.Del(t.Context(), "herald:m:{wamid.by-job-id}").Err(); err != nil {
			t.Fatal(err)
		}
		_, rec, changed, err := e.store.Apply(t.Context(), status.Report{JobRef: j.Ref(), MessageID: "wamid.by-job-id", State: status.Delivered})
		if err != nil || !changed || rec.State != status.Delivered || rec.ID != j.ID {
			t.Fatalf("Apply by job id: rec %+v changed %v err %v", rec, changed, err)
		}
		if _, _, _, err := e.store.Apply(t.Context(), status.Report{MessageID: "wamid.by-job-id", State: status.Read}); !errors.Is(err, status.ErrNotFound) {
			t.Fatalf("Apply by the deleted message index: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		for _, r := range []status.Report{
			{MessageID: "wamid.nobody", State: status.Delivered},
			{JobRef: ref("apply-no-such-job"), MessageID: "wamid.nobody", State: status.Delivered},
		} {
			if _, _, _, err := e.store.Apply(t.Context(), r); !errors.Is(err, status.ErrNotFound) {
				t.Fatalf("Apply(%+v) err = %v, want ErrNotFound", r, err)
			}
		}
	})

	t.Run("early reports are parked until the send is recorded", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name    string
			reports []string
			want    string
		}{
			{"delivered", []string{status.Delivered}, status.Delivered},
			{"read then delivered", []string{status.Read, status.Delivered}, status.Read},
			{"delivered then read", []string{status.Delivered, status.Read}, status.Read},
			{"failed", []string{status.Failed}, status.Failed},
			{"failed then read", []string{status.Failed, status.Read}, status.Failed},
			{"sent", []string{status.Sent}, status.Sent},
		} {
			id := sanitize("apply-early-" + tc.name)
			msg := "wamid." + id
			j := newJob(id, 4)
			e.begin(t, j, "w1", time.Minute)
			for _, st := range tc.reports {
				old, rec, changed, err := e.store.Apply(t.Context(), status.Report{JobRef: ref(id), MessageID: msg, State: st})
				if err != nil {
					t.Fatalf("%s: early %s: %v", tc.name, st, err)
				}
				if old != status.Queued || rec.State != status.Queued || changed {
					t.Fatalf("%s: early %s: old %q state %q changed %v; want parked", tc.name, st, old, rec.State, changed)
				}
				if rec.Early[msg] == "" {
					t.Fatalf("%s: early %s not parked: %+v", tc.name, st, rec.Early)
				}
			}
			_, rec := e.attempt(t, id, "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: msg})
			if rec.State != tc.want || rec.History[0].State != tc.want || len(rec.Early) != 0 {
				t.Fatalf("%s: after the send: state %q, attempt %q, early %v; want %q and nothing parked",
					tc.name, rec.State, rec.History[0].State, rec.Early, tc.want)
			}
			if got := e.get(t, id); got.State != tc.want {
				t.Fatalf("%s: stored state %q, want %q", tc.name, got.State, tc.want)
			}
		}
	})

	t.Run("late report on an earlier attempt", func(t *testing.T) {
		t.Parallel()
		j := newJob("apply-late-earlier", 5)
		e.sent(t, j, "wamid.late")
		// The white message was not delivered in time; the SMS went out.
		_, rec := e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "sms", ChannelIdx: 1, Attempts: 1, ProviderMessageID: "sms-late"})
		if len(rec.History) != 2 {
			t.Fatalf("history = %+v", rec.History)
		}
		old, rec, changed, err := e.store.Apply(t.Context(), status.Report{MessageID: "wamid.late", State: status.Delivered})
		if err != nil || !changed {
			t.Fatalf("late delivered: changed %v err %v", changed, err)
		}
		if old != status.Sent || rec.State != status.Sent {
			t.Fatalf("record state %q → %q, want it to follow the SMS (sent)", old, rec.State)
		}
		if rec.History[0].State != status.Delivered || rec.History[1].State != status.Sent {
			t.Fatalf("history = %+v, want white delivered, sms sent", rec.History)
		}
		_, rec, _, err = e.store.Apply(t.Context(), status.Report{MessageID: "wamid.late", State: status.Failed, Reason: "late failure"})
		if err != nil || rec.State != status.Sent {
			t.Fatalf("late failed on the earlier attempt moved the record: %q, %v", rec.State, err)
		}
		_, rec, _, err = e.store.Apply(t.Context(), status.Report{MessageID: "sms-late", State: status.Delivered})
		if err != nil || rec.State != status.Delivered || rec.History[1].State != status.Delivered {
			t.Fatalf("sms delivered: %+v, %v", rec, err)
		}
	})
}

// sanitize turns a subtest name into a valid job id.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == ' ' {
			b[i] = '-'
		}
	}
	return string(b)
}

func TestSettle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	for i, state := range []string{status.Expired, status.Rejected, status.Canceled} {
		t.Run(state, func(t *testing.T) {
			t.Parallel()
			j := newJob("settle-"+state, 10+i)
			e.begin(t, j, "w1", time.Minute)
			old, rec, err := e.store.Settle(t.Context(), j, "w1", state, "because", cascade)
			if err != nil {
				t.Fatal(err)
			}
			if state == status.Rejected {
				// A malformed message reusing a known job's id never ends that job: the
				// record, claim and all, is left as it was.
				if old != status.Queued || rec.State != status.Queued || rec.Claim == nil || rec.Claim.Owner != "w1" {
					t.Fatalf("rejected settle of a known job: old %q, record %+v", old, rec)
				}
			} else {
				// A claimed record is settled and its claim dropped.
				if old != status.Queued || rec.State != state || rec.Reason != "because" || rec.Claim != nil {
					t.Fatalf("old %q, record %+v", old, rec)
				}
				if got := e.get(t, j.ID); got.State != state {
					t.Fatalf("stored state %q, want %q", got.State, state)
				}
				if adm := e.begin(t, j, "w2", time.Minute); adm.Verdict != status.Done {
					t.Fatalf("Begin after %s = %s, want done", state, adm.Verdict)
				}
			}

			// A job with no record yet gets one in the final state.
			fresh := newJob("settle-fresh-"+state, 20+i)
			old, rec, err = e.store.Settle(t.Context(), fresh, "", state, "r", cascade)
			if err != nil || old != status.Queued || rec.State != state || rec.CreatedAt == "" || rec.To != fresh.To {
				t.Fatalf("settle of a missing record: old %q, %+v, %v", old, rec, err)
			}
			if got := e.get(t, fresh.ID); got.State != state {
				t.Fatalf("stored state %q, want %q", got.State, state)
			}
			e.assertTTL(t, status.RecordKey(fresh.Ref()))

			// A sent record is never settled.
			sent := newJob("settle-sent-"+state, 30+i)
			e.sent(t, sent, "wamid.settle-sent-"+state)
			old, rec, err = e.store.Settle(t.Context(), sent, "w9", state, "too late", cascade)
			if err != nil || old != status.Sent || rec.State != status.Sent || rec.Reason == "too late" {
				t.Fatalf("settle of a sent record: old %q, %+v, %v", old, rec, err)
			}
		})
	}

	t.Run("release only the owner's claim", func(t *testing.T) {
		t.Parallel()
		j := newJob("settle-release", 40)
		e.begin(t, j, "w1", time.Minute)
		if _, rec, err := e.store.Settle(t.Context(), j, "w2", "", "", cascade); err != nil || rec.Claim == nil || rec.Claim.Owner != "w1" {
			t.Fatalf("release by another owner: %+v, %v; want w1's claim kept", rec, err)
		}
		if c := e.get(t, j.ID).Claim; c == nil || c.Owner != "w1" {
			t.Fatalf("stored claim = %+v, want w1's kept", c)
		}
		old, rec, err := e.store.Settle(t.Context(), j, "w1", "", "", cascade)
		if err != nil || old != status.Queued || rec.State != status.Queued || rec.Claim != nil {
			t.Fatalf("release by the owner: old %q, %+v, %v", old, rec, err)
		}
		if adm := e.begin(t, j, "w3", time.Minute); adm.Verdict != status.Claimed {
			t.Fatalf("Begin after release = %s, want claimed", adm.Verdict)
		}
	})

	t.Run("release of a missing record stores nothing", func(t *testing.T) {
		t.Parallel()
		j := newJob("settle-release-missing", 41)
		if _, _, err := e.store.Settle(t.Context(), j, "w1", "", "", cascade); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Get(t.Context(), j.Ref()); !errors.Is(err, status.ErrNotFound) {
			t.Fatalf("Get after releasing a missing record: %v, want ErrNotFound", err)
		}
	})
}

// TestSettleRespectsLiveClaim: delivery A holds a live claim and is inside its provider call
// when a redelivery B finds the job past expires_at and settles it expired. A then records
// its send. A terminal state must stay terminal, so Settle must not expire a job another
// delivery is sending.
//
// Settle answers ErrBusy and changes nothing while another owner's claim is live.
func TestSettleRespectsLiveClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	j := newJob("settle-live-claim", 1)
	e.begin(t, j, "owner-a", time.Minute)
	_, rec, err := e.store.Settle(t.Context(), j, "owner-b", status.Expired, "expires_at passed", cascade)
	if !errors.Is(err, status.ErrBusy) {
		t.Fatalf("Settle during another owner's live claim: err %v, want ErrBusy", err)
	}
	if rec.State == status.Expired || rec.Claim == nil || rec.Claim.Owner != "owner-a" {
		t.Errorf("Settle(expired) by owner-b during owner-a's live claim: state %q, claim %+v; want owner-a's claim kept and no terminal state",
			rec.State, rec.Claim)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

	t.Run("create once", func(t *testing.T) {
		t.Parallel()
		rec := status.NewRecord(newJob("create-once", 1), status.Queued, cascade, now)
		created, got, err := e.store.Create(t.Context(), rec)
		if err != nil || !created || got.ID != rec.ID {
			t.Fatalf("first Create: created %v, %+v, %v", created, got, err)
		}
		e.assertTTL(t, status.RecordKey(rec.Ref()))
		again := status.NewRecord(newJob("create-once", 1), status.Scheduled, []string{"sms"}, now.Add(time.Hour))
		created, got, err = e.store.Create(t.Context(), again)
		if err != nil || created {
			t.Fatalf("repeated Create: created %v, err %v", created, err)
		}
		if got.State != status.Queued || got.Channel != "white" || got.CreatedAt != "2026-11-25T09:00:00Z" {
			t.Fatalf("repeated Create returned %+v, want the existing record", got)
		}
	})

	t.Run("create many", func(t *testing.T) {
		t.Parallel()
		pre := status.NewRecord(newJob("many-0", 2), status.Sent, cascade, now)
		if created, _, err := e.store.Create(t.Context(), pre); err != nil || !created {
			t.Fatal(created, err)
		}
		var recs []*status.Record
		for i := range 3 {
			recs = append(recs, status.NewRecord(newJob(fmt.Sprintf("many-%d", i), 2), status.Queued, cascade, now))
		}
		if err := e.store.CreateMany(t.Context(), recs); err != nil {
			t.Fatal(err)
		}
		for i, want := range []string{status.Sent, status.Queued, status.Queued} {
			id := fmt.Sprintf("many-%d", i)
			if got := e.get(t, id); got.State != want {
				t.Fatalf("%s: state %q, want %q", id, got.State, want)
			}
			e.assertTTL(t, status.RecordKey(ref(id)))
		}
		if err := e.store.CreateMany(t.Context(), nil); err != nil {
			t.Fatalf("CreateMany(nil) = %v", err)
		}
	})

	t.Run("get missing", func(t *testing.T) {
		t.Parallel()
		if _, err := e.store.Get(t.Context(), ref("never-created")); !errors.Is(err, status.ErrNotFound) {
			t.Fatalf("Get = %v, want ErrNotFound", err)
		}
	})

	t.Run("scheduled record keeps send_at", func(t *testing.T) {
		t.Parallel()
		j := newJob("create-scheduled", 3)
		at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.FixedZone("MSK", 3*3600))
		j.SendAt = &at
		rec := status.NewRecord(j, status.Scheduled, cascade, now)
		if _, _, err := e.store.Create(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		if got := e.get(t, j.ID); got.SendAt != "2026-11-25T06:00:00Z" || got.State != status.Scheduled {
			t.Fatalf("record = %+v", got)
		}
		// A scheduled job that comes due is claimed like a queued one.
		if adm := e.begin(t, j, "w1", time.Minute); adm.Verdict != status.Claimed || adm.Record.State != status.Scheduled {
			t.Fatalf("Begin = %s %+v", adm.Verdict, adm.Record)
		}
	})
}

func TestPing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.store.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRecordJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     status.Record
	}{
		{
			name: "cjson empty tables",
			in:   `{"id":"a","state":"queued","channel_idx":0,"attempts":0,"history":{},"channels":{},"early":{},"metadata":{}}`,
			want: status.Record{ID: "a", State: "queued"},
		},
		{
			name: "empty arrays and null",
			in:   `{"id":"a","state":"queued","history":[],"channels":[],"early":null,"metadata":null}`,
			want: status.Record{ID: "a", State: "queued"},
		},
		{
			name: "full",
			in: `{"id":"b","state":"sent","channels":["white","sms"],"channel_idx":1,"attempts":2,
				"history":[{"channel":"white","state":"failed","at":"t1"},{"channel":"sms","provider_message_id":"m","state":"sent","at":"t2"}],
				"metadata":{"k":"v"},"early":{"m2":"delivered"},"claim":{"owner":"w","until":1761234567890,"channel":"sms"},"send_at":"2026-11-25T06:00:00Z"}`,
			want: status.Record{
				ID: "b", State: "sent", Channels: []string{"white", "sms"}, ChannelIdx: 1, Attempts: 2,
				History:  []status.Attempt{{Channel: "white", State: "failed", At: "t1"}, {Channel: "sms", ProviderMessageID: "m", State: "sent", At: "t2"}},
				Metadata: map[string]string{"k": "v"}, Early: map[string]string{"m2": "delivered"},
				Claim:  &status.Claim{Owner: "w", Until: 1761234567890, Channel: "sms"},
				SendAt: "2026-11-25T06:00:00Z",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got status.Record
			if err := json.Unmarshal([]byte(tc.in), &got); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(tc.want)
			if string(gb) != string(wb) {
				t.Fatalf("decoded\n %s\nwant\n %s", gb, wb)
			}
		})
	}

	t.Run("bad array is an error", func(t *testing.T) {
		t.Parallel()
		var r status.Record
		if err := json.Unmarshal([]byte(`{"id":"a","history":"nope"}`), &r); err == nil {
			t.Fatal("want an error for a history that is a string")
		}
	})

	// Through Lua: a record whose arrays are empty comes back from cjson as {} and still decodes.
	t.Run("round trip through a script", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		j := newJob("cjson-empty", 1)
		raw := `{"id":"cjson-empty","state":"queued","to":"` + j.To + `","channels":[],"history":[],"metadata":{},"channel_idx":0,"attempts":0}`
		if err := e.rdb.Set(t.Context(), status.RecordKey(j.Ref()), raw, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		adm := e.begin(t, j, "w1", time.Minute)
		if adm.Verdict != status.Claimed || adm.Record.Claim == nil || len(adm.Record.History) != 0 || len(adm.Record.Channels) != 0 {
			t.Fatalf("admission %s %+v", adm.Verdict, adm.Record)
		}
		stored, err := e.rdb.Get(t.Context(), status.RecordKey(j.Ref())).Result()
		if err != nil {
			t.Fatal(err)
		}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal([]byte(stored), &probe); err != nil {
			t.Fatal(err)
		}
		if string(probe["history"]) != "{}" || string(probe["channels"]) != "{}" {
			t.Fatalf("cjson wrote history %s, channels %s; this test expects {} (the case UnmarshalJSON tolerates)", probe["history"], probe["channels"])
		}
		if got := e.get(t, j.ID); got.Claim == nil || got.Claim.Owner != "w1" {
			t.Fatalf("Get = %+v", got)
		}
	})
}

// TestUnknownResolvedByReport: an attempt whose worker died during the provider call is
// 'unknown'; the provider's report, found by job id, tells what became of it, whether it
// comes after the claim ran out or came before (parked) and is picked up when it runs out.
func TestUnknownResolvedByReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name        string
		channel     string // the reported message's channel (the attempt in doubt is on white)
		early       string // a report parked while the claim was live ("" none)
		report      string // a report after the claim ran out ("" none)
		wantUnknown bool   // the attempt stays unknown after the ambiguous verdict
		wantState   string // the record's state at the end
		wantIdx     int    // the record's channel index at the end
		adopted     bool   // the attempt in doubt takes the report's message id
	}{
		{"delivered after", "white", "", status.Delivered, true, status.Delivered, 0, true},
		{"sent after", "white", "", status.Sent, true, status.Sent, 0, true},
		{"failed after falls back", "white", "", status.Failed, true, status.Sent, 1, true},
		{"delivered before", "white", status.Delivered, "", false, status.Delivered, 0, true},
		{"failed before stays parked", "white", status.Failed, "", true, status.Sent, 0, false},
		{"no report", "white", "", "", true, status.Sent, 0, false},
		// Another channel's report never speaks for the attempt in doubt.
		{"sms report after", "sms", "", status.Failed, true, status.Sent, 0, false},
		{"grey report before", "grey", status.Delivered, "", true, status.Sent, 0, false},
		{"report of no channel", "", "", status.Delivered, true, status.Sent, 0, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := newJob("unknown-"+strings.ReplaceAll(tt.name, " ", "-"), 40+i)
			e.begin(t, j, "w1", 50*time.Millisecond)
			wamid := "wamid.unknown-" + strconv.Itoa(i)
			if tt.early != "" {
				if _, _, _, err := e.store.Apply(t.Context(), status.Report{JobRef: j.Ref(), MessageID: wamid, State: tt.early, Fallback: true, Channel: tt.channel}); err != nil {
					t.Fatal(err)
				}
			}
			adm := e.afterLease(t, j, "w2")
			last := adm.Record.History[len(adm.Record.History)-1]
			if (last.State == "unknown") != tt.wantUnknown {
				t.Fatalf("attempt after the verdict = %+v", last)
			}
			if tt.report != "" {
				if _, _, _, err := e.store.Apply(t.Context(), status.Report{JobRef: j.Ref(), MessageID: wamid, State: tt.report, Code: "131026", Fallback: true, Channel: tt.channel}); err != nil {
					t.Fatal(err)
				}
			}
			r := e.get(t, j.ID)
			if r.State != tt.wantState || r.ChannelIdx != tt.wantIdx {
				t.Fatalf("record state %s channel_idx %d, want %s %d (history %+v)", r.State, r.ChannelIdx, tt.wantState, tt.wantIdx, r.History)
			}
			a := r.History[0]
			if tt.adopted != (a.ProviderMessageID == wamid) {
				t.Fatalf("attempt %+v: provider message id adopted = %v, want %v", a, a.ProviderMessageID == wamid, tt.adopted)
			}
		})
	}
}

// afterLease waits until j's claim has run out and begins it as owner, which must find the
// outcome ambiguous (the first owner died during its provider call).
func (e *env) afterLease(t *testing.T, j *job.Job, owner string) status.Admission {
	t.Helper()
	var adm status.Admission
	testutil.Eventually(t, 5*time.Second, func() bool {
		adm = e.begin(t, j, owner, time.Minute)
		return adm.Verdict != status.Busy
	}, "the first claim's lease never ran out")
	if adm.Verdict != status.Ambiguous {
		t.Fatalf("verdict after the lease ran out = %s, want ambiguous", adm.Verdict)
	}
	return adm
}

// TestAttemptRecordedTwice: a client that records the same outcome again (its first reply
// was lost, or a batch was retried) changes nothing and hears what the first call heard, so
// the worker still publishes the change; another outcome of the same delivery is recorded.
func TestAttemptRecordedTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	j := newJob("attempt-twice", 7)
	e.begin(t, j, "w1", time.Minute)
	sent := status.Outcome{Mode: status.ModeSent, Channel: "white", ChannelIdx: 0, Attempts: 1, ProviderMessageID: "wamid.twice"}
	old1, rec1 := e.attempt(t, j.ID, "w1", sent)
	old2, rec2 := e.attempt(t, j.ID, "w1", sent)
	if old1 != status.Queued || old2 != old1 || rec2.State != rec1.State {
		t.Fatalf("old states %q then %q, states %q then %q", old1, old2, rec1.State, rec2.State)
	}
	if got := e.get(t, j.ID); len(got.History) != 1 {
		t.Fatalf("history after recording twice: %+v", got.History)
	}
	// A different delivery's outcome is not a repeat.
	j2 := newJob("attempt-twice-2", 8)
	e.begin(t, j2, "w1", time.Minute)
	e.attempt(t, j2.ID, "w1", status.Outcome{Mode: status.ModeFallback, Channel: "white", ChannelIdx: 1, Reason: "131026", NextChannel: "sms"})
	e.attempt(t, j2.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "sms", ChannelIdx: 1, Attempts: 1, ProviderMessageID: "kannel:x"})
	if got := e.get(t, j2.ID); len(got.History) != 2 || got.Channel != "sms" {
		t.Fatalf("fallback then send: %+v", got)
	}
}
