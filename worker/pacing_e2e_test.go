package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/producer"
)

// pacingJob is a template job to to; bulk sets its priority.
func pacingJob(id, to string, bulk bool) *producer.Job {
	j := &producer.Job{
		ID: id, To: to, Template: "order_ready",
		Params:  map[string]string{"order": "100500", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
		Buttons: map[string]string{"0": "100500"},
	}
	if bulk {
		j.Priority = "bulk"
	}
	return j
}

// publishAll publishes jobs as one batch and fails on any error or duplicate.
func publishAll(t *testing.T, h *harness.Herald, jobs []*producer.Job) {
	t.Helper()
	res, err := h.Producer.PublishBatch(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.Duplicate {
			t.Fatalf("publish %s: err=%v duplicate=%v", r.ID, r.Err, r.Duplicate)
		}
	}
}

// acceptedWhite returns the simulator's accepted white sends, in arrival order.
func acceptedWhite(h *harness.Herald) []sim.Message {
	var out []sim.Message
	for _, m := range h.Sim.Messages() {
		if m.Channel == "white" && m.ErrorCode == 0 && m.HTTPStatus < 300 {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b sim.Message) int { return a.At.Compare(b.At) })
	return out
}

// maxInWindow is the largest number of arrivals inside any half-open window [t, t+w),
// sliding over every arrival (not calendar seconds). ms must be sorted by At.
func maxInWindow(ms []sim.Message, w time.Duration) (most int, at time.Time) {
	j := 0
	for i := range ms {
		for ms[i].At.Sub(ms[j].At) >= w {
			j++
		}
		if n := i - j + 1; n > most {
			most, at = n, ms[j].At
		}
	}
	return most, at
}

// bulkDeliveries is the number of deliveries the bulk consumer made, redeliveries included.
func bulkDeliveries(t *testing.T, h *harness.Herald) uint64 {
	t.Helper()
	c, err := h.JS.Consumer(context.Background(), streams.JobsStream, streams.ConsumerBulk)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Delivered.Consumer
}

// pairTolerance absorbs the jitter between the limiter's slot (on Redis's clock) and the
// arrival at the simulator: the claim round trip, rendering and a loopback HTTP call, which
// take a few ms but can stretch to a hundred or more under -race on a loaded machine. A real
// violation (a second send to a recipient without a pair wait) shows as a gap of a few tens
// of ms at 50/s, far below PairInterval-pairTolerance.
const pairTolerance = 250 * time.Millisecond

// TestFleetPacing: three worker processes share one Redis and one stream and drain a bulk
// backlog. The simulator's own arrival log shows the fleet never above the throughput cap in
// any sliding second, never two messages to one recipient within the pair interval, every
// job sent exactly once, the cap used fully, and few redeliveries.
func TestFleetPacing(t *testing.T) {
	t.Parallel()
	const (
		mps      = 50
		pair     = time.Second
		n        = 400
		hot      = 100 // recipients that get two messages each
		hotEvery = 2   // every second job goes to a hot recipient
	)
	h := harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) {
		c.WhiteMPS, c.PairInterval = mps, pair
	}})
	// Hot jobs come in adjacent twos per recipient (h0 u h0 u h1 u h1 ...): the second of each
	// two must wait for the pair interval while the others fill the gap. 100 hot recipients
	// allow 100/s under the pair rule, so the rule is exercised without bounding throughput.
	// The backlog takes ~8 s to drain, twice the harness's 4 s ack wait: a small model of a
	// 100,000-job backlog against a one-minute ack wait.
	jobs := make([]*producer.Job, n)
	hotJobs := 0
	for i := range jobs {
		to := fmt.Sprintf("+7901%07d", i)
		if i%hotEvery == 0 {
			to = fmt.Sprintf("+7902%07d", (hotJobs/2)%hot)
			hotJobs++
		}
		jobs[i] = pacingJob(fmt.Sprintf("fleet-%04d", i), to, true)
	}
	publishAll(t, h, jobs)
	for range 3 {
		h.StartWorker()
	}
	testutil.Eventually(t, 40*time.Second, func() bool { return len(acceptedWhite(h)) >= n },
		"all %d jobs reach the simulator (got %v)", n, lazy(func() string { return fmt.Sprint(len(acceptedWhite(h))) }))
	sent := acceptedWhite(h)

	// Exactly once.
	perJob := map[string]int{}
	for _, m := range sent {
		perJob[m.JobID]++
	}
	for _, j := range jobs {
		if c := perJob[j.ID]; c != 1 {
			t.Errorf("job %s sent %d times", j.ID, c)
		}
	}
	if len(sent) != n {
		t.Errorf("%d accepted white sends for %d jobs", len(sent), n)
	}

	// Throughput: no calendar second above the cap. In a sliding window one more may show:
	// the limiter's slots are spaced exactly (internal/ratelimit tests that), but each send
	// reaches the provider a variable few milliseconds after its slot, and on a loaded
	// machine two neighbours can come closer than the margin Herald keeps (1 message/s here).
	perSecond := map[int64]int{}
	mostCal := 0
	for _, m := range sent {
		s := m.At.Unix()
		perSecond[s]++
		mostCal = max(mostCal, perSecond[s])
	}
	most, at := maxInWindow(sent, time.Second)
	t.Logf("highest count in a calendar second: %d; in any sliding 1 s window: %d (cap %d), window starting %s after the first send",
		mostCal, most, mps, at.Sub(sent[0].At).Round(time.Millisecond))
	// A calendar second is one sliding window: the same jitter allowance of 1 applies.
	if mostCal > mps+1 {
		t.Errorf("%d white messages in one calendar second (cap %d, jitter allowance 1)", mostCal, mps)
	}
	if most > mps+1 {
		t.Errorf("%d white messages within one sliding second (cap %d, jitter allowance 1), window starting %s after the first send",
			most, mps, at.Sub(sent[0].At).Round(time.Millisecond))
	}

	// Pair interval per recipient, on arrival times.
	last := map[string]time.Time{}
	minGap, violations := time.Duration(1<<62), 0
	for _, m := range sent {
		if prev, ok := last[m.To]; ok {
			gap := m.At.Sub(prev)
			minGap = min(minGap, gap)
			if gap < pair-pairTolerance {
				violations++
				t.Errorf("recipient …%s got two messages %s apart (pair interval %s)", m.To[len(m.To)-4:], gap, pair)
			}
		}
		last[m.To] = m.At
	}
	t.Logf("pair interval: smallest gap to one recipient %s (interval %s, tolerance %s), %d violations",
		minGap.Round(time.Millisecond), pair, pairTolerance, violations)
	if minGap > 10*pair {
		t.Fatal("no recipient got two messages: the pair rule was never exercised")
	}

	// Achieved rate over the steady part: the middle 80% of the sends, leaving out the
	// start-up and the tail of pair-delayed jobs.
	lo, hi := n/10, n*9/10
	rate := float64(hi-lo) / sent[hi].At.Sub(sent[lo].At).Seconds()
	t.Logf("achieved rate %.1f/s over the steady part = %.3f of the cap; whole run %.1f/s",
		rate, rate/mps, float64(n-1)/sent[n-1].At.Sub(sent[0].At).Seconds())
	// The benchmark measures the real figure (goal 0.97; 0.96-0.98 here when the machine is
	// quiet). Under `make test` every package runs at once with the race detector on 2 cores,
	// and a worker that wakes more than 10 ms after its slot gives the slot up rather than
	// bunch sends at the provider; so a test only guards against pacing far below the cap.
	if rate < 0.5*mps {
		t.Errorf("steady rate %.1f/s is below 0.5 of the cap %d/s", rate, mps)
	}

	// Deliveries per job: Delivered.Consumer counts every delivery, redeliveries included.
	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, j := range jobs {
			if r := h.Record(j.ID); r == nil || (r.State != status.Sent && r.State != status.Delivered) {
				return false
			}
		}
		return true
	}, "every record sent or delivered")
	d := bulkDeliveries(t, h)
	t.Logf("JetStream deliveries: %d for %d jobs = %.3f per job", d, n, float64(d)/n)
	if float64(d)/n >= 1.2 {
		t.Errorf("%.3f deliveries per job (%d for %d jobs), want < 1.2", float64(d)/n, d, n)
	}
}

// TestTransactionalNotStuckBehindBulk: while a bulk backlog uses the number's whole
// throughput, transactional jobs still reach the provider within a second of their publish.
func TestTransactionalNotStuckBehindBulk(t *testing.T) {
	t.Parallel()
	const (
		mps   = 40
		nBulk = 400
		nTx   = 10
	)
	h := harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) { c.WhiteMPS = mps }})
	bulk := make([]*producer.Job, nBulk)
	for i := range bulk {
		bulk[i] = pacingJob(fmt.Sprintf("lane-bulk-%04d", i), fmt.Sprintf("+7903%07d", i), true)
	}
	publishAll(t, h, bulk)
	h.StartWorker()
	// Saturated: a full second's worth of bulk has gone out.
	testutil.Eventually(t, 20*time.Second, func() bool { return len(acceptedWhite(h)) >= mps }, "bulk flowing")

	published := map[string]time.Time{}
	for i := range nTx {
		j := pacingJob(fmt.Sprintf("lane-tx-%02d", i), fmt.Sprintf("+7904%07d", i), false)
		published[j.ID] = time.Now()
		if _, err := h.Producer.Publish(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	arrived := func() map[string]sim.Message {
		out := map[string]sim.Message{}
		for _, m := range acceptedWhite(h) {
			if _, ok := published[m.JobID]; ok {
				out[m.JobID] = m
			}
		}
		return out
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return len(arrived()) == nTx }, "transactional jobs sent")
	got := arrived()
	var lat []time.Duration
	var lastTx time.Time
	for id, m := range got {
		lat = append(lat, m.At.Sub(published[id]))
		if m.At.After(lastTx) {
			lastTx = m.At
		}
	}
	slices.Sort(lat)
	bulkBefore := 0
	for _, m := range acceptedWhite(h) {
		if strings.HasPrefix(m.JobID, "lane-bulk-") && !m.At.After(lastTx) {
			bulkBefore++
		}
	}
	t.Logf("transactional publish→provider: p50 %s, max %s; %d of %d bulk sent when the last one arrived",
		lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), bulkBefore, nBulk)
	if bulkBefore >= nBulk {
		t.Fatal("the bulk backlog was drained before the transactional jobs went: the test proves nothing")
	}
	for id, m := range got {
		// Stuck behind the bulk backlog would mean about 9 s; 3 s leaves room for a loaded
		// machine (250 ms of bulk booked ahead, the transactional jobs' own pacing, late slots).
		if d := m.At.Sub(published[id]); d > 3*time.Second {
			t.Errorf("transactional %s reached the provider %s after its publish, behind bulk", id, d.Round(time.Millisecond))
		}
	}
}

// TestRedisOutageNothingLost: Redis stops in the middle of a run. While it is down nothing
// new reaches the provider (fail closed) and /readyz says 503; once it is back the workers
// resume by themselves and every job is sent exactly once.
//
// Redis runs with an append-only file synced on every write (as production should) and is
// killed (kill -9), then started again with its data.
func TestRedisOutageNothingLost(t *testing.T) {
	t.Parallel()
	const (
		mps   = 100
		n     = 500
		grace = time.Second
		down  = 3 * time.Second
	)
	h := harness.Start(t, harness.Options{NoWorker: true, PersistentRedis: true, Config: func(c *config.Config) { c.WhiteMPS = mps }})
	jobs := make([]*producer.Job, n)
	for i := range jobs {
		// Both lanes: transactional jobs reserve slots far ahead, bulk ones wait their turn.
		jobs[i] = pacingJob(fmt.Sprintf("outage-%04d", i), fmt.Sprintf("+7905%07d", i), i%2 == 0)
	}
	publishAll(t, h, jobs)
	h.StartWorker()
	h.StartWorker()
	testutil.Eventually(t, 20*time.Second, func() bool { return len(acceptedWhite(h)) >= n/3 }, "a third sent")

	before := acceptedWhite(h)[0].JobID
	testutil.Eventually(t, 5*time.Second, func() bool { return h.Record(before) != nil }, "record of %s", before)
	stoppedAt := time.Now()
	h.Redis.Stop() // kill -9
	sentAtStop := len(acceptedWhite(h))
	readyz := func() int {
		resp, err := http.Get(h.APIURL + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return readyz() == http.StatusServiceUnavailable }, "/readyz 503 while Redis is down")
	testutil.Eventually(t, 10*time.Second, func() bool {
		return time.Since(stoppedAt) > down && readyz() == http.StatusServiceUnavailable
	}, "Redis down for %s", down)
	restartedAt := time.Now()
	h.Redis.Start(t)
	if h.Record(before) == nil {
		t.Fatalf("Redis came back without the record of %s: the restart lost data", before)
	}

	var during []sim.Message
	for _, m := range h.Sim.Messages() {
		if m.At.After(stoppedAt.Add(grace)) && m.At.Before(restartedAt) {
			during = append(during, m)
		}
	}
	t.Logf("Redis down %s after %d of %d sends; %d sends in the %s grace, %d after it",
		restartedAt.Sub(stoppedAt).Round(time.Millisecond), sentAtStop, n,
		countBetween(h, stoppedAt, stoppedAt.Add(grace)), grace, len(during))
	if len(during) > 0 {
		t.Errorf("%d messages reached the provider while Redis was down (first: job %s, %s after the stop)",
			len(during), during[0].JobID, during[0].At.Sub(stoppedAt).Round(time.Millisecond))
	}
	if sentAtStop >= n {
		t.Fatal("everything was sent before Redis stopped: the test proves nothing")
	}

	testutil.Eventually(t, 30*time.Second, func() bool { return len(acceptedWhite(h)) >= n }, "every job sent after Redis is back (got %v)", lazy(func() string { return fmt.Sprint(len(acceptedWhite(h))) }))
	testutil.Eventually(t, 10*time.Second, func() bool { return readyz() == http.StatusOK }, "/readyz 200 again")
	perJob := map[string]int{}
	for _, m := range h.Sim.Messages() {
		perJob[m.Channel+":"+m.JobID]++
	}
	for _, j := range jobs {
		if perJob["white:"+j.ID] != 1 || perJob["sms:"+j.ID] != 0 {
			t.Errorf("job %s: %d white and %d SMS sends, want exactly one white", j.ID, perJob["white:"+j.ID], perJob["sms:"+j.ID])
		}
	}
	// The simulator gives up a status webhook after ~0.75 s of retries (Meta retries for
	// days): a message sent just before the stop may never be reported delivered. Such a
	// record must still be sent, and there may be no more of them than dropped statuses.
	var notDelivered []string
	states := func() string {
		var b strings.Builder
		for _, id := range notDelivered {
			if r := h.Record(id); r != nil {
				fmt.Fprintf(&b, "%s: %s %q; ", id, r.State, r.Reason)
			} else {
				fmt.Fprintf(&b, "%s: no record; ", id)
			}
		}
		return b.String()
	}
	testutil.Eventually(t, 15*time.Second, func() bool {
		notDelivered = notDelivered[:0]
		for _, j := range jobs {
			r := h.Record(j.ID)
			if r == nil || r.State != status.Delivered {
				notDelivered = append(notDelivered, j.ID)
			}
		}
		return int64(len(notDelivered)) <= h.Sim.Stats().Webhooks.Dropped
	}, "every record delivered, but for dropped webhooks: %v", lazy(func() string {
		return fmt.Sprintf("%d not delivered, %d statuses dropped: %s", len(notDelivered), h.Sim.Stats().Webhooks.Dropped, states())
	}))
	for _, id := range notDelivered {
		if r := h.Record(id); r == nil || (r.State != status.Sent && r.State != status.Delivered) {
			t.Errorf("job %s: record %+v, want sent (its delivered webhook was dropped) or delivered", id, r)
		}
	}
	t.Logf("%d records delivered, %d left sent (simulator dropped %d statuses during the outage); bulk deliveries %d for %d bulk jobs",
		n-len(notDelivered), len(notDelivered), h.Sim.Stats().Webhooks.Dropped, bulkDeliveries(t, h), n/2)
}

// lazy formats late: a failure message built when the test fails, not when it is set up.
type lazy func() string

func (l lazy) String() string { return l() }

// countBetween counts the simulator's requests that arrived in [from, to).
func countBetween(h *harness.Herald, from, to time.Time) int {
	c := 0
	for _, m := range h.Sim.Messages() {
		if !m.At.Before(from) && m.At.Before(to) {
			c++
		}
	}
	return c
}

// TestTierLimitHoldsBulk: with a messaging tier of 5 unique recipients a day, 5 of 8 bulk
// template jobs to distinct recipients go; the other 3 wait, scheduled, saying why, and are
// neither failed nor lost.
func TestTierLimitHoldsBulk(t *testing.T) {
	t.Parallel()
	const tier, n = 5, 8
	h := harness.Start(t, harness.Options{Config: func(c *config.Config) { c.WhiteDailyUnique = tier }})
	jobs := make([]*producer.Job, n)
	for i := range jobs {
		jobs[i] = pacingJob(fmt.Sprintf("tier-%02d", i), fmt.Sprintf("+7906%07d", i), true)
	}
	publishAll(t, h, jobs)
	var held []string
	testutil.Eventually(t, 20*time.Second, func() bool {
		sent, scheduled := 0, 0
		held = held[:0]
		for _, j := range jobs {
			r := h.Record(j.ID)
			switch {
			case r == nil:
			case r.State == status.Sent || r.State == status.Delivered:
				sent++
			case r.State == status.Scheduled:
				scheduled++
				held = append(held, j.ID)
			}
		}
		return sent == tier && scheduled == n-tier
	}, "%d sent and %d scheduled", tier, n-tier)
	ctx := context.Background()
	st, err := h.JS.Stream(ctx, streams.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range held {
		r := h.Record(id)
		if !strings.Contains(r.Reason, "tier") {
			t.Errorf("job %s held with reason %q, which does not name the tier", id, r.Reason)
		}
		// Not lost: the job is parked in a JetStream schedule that will release it.
		if _, err := st.GetLastMsgForSubject(ctx, streams.WaitSubject(job.Ref("", id))); err != nil {
			t.Errorf("job %s: no parked schedule: %v", id, err)
		}
		if n := h.SentPerJob()["white:"+id]; n != 0 {
			t.Errorf("held job %s was sent %d times", id, n)
		}
	}
	if got := len(acceptedWhite(h)); got != tier {
		t.Errorf("%d white sends, want %d (the tier)", got, tier)
	}
	if info, err := h.JS.Stream(ctx, streams.DLQStream); err == nil {
		if i, _ := info.Info(ctx); i.State.Msgs != 0 {
			t.Errorf("%d dead letters, want none", i.State.Msgs)
		}
	}
	t.Logf("held by the tier: %v, reason %q", held, h.Record(held[0]).Reason)
}

// TestProviderRateFeedback: WhatsApp answers 130429 (throughput reached) three times. The
// jobs are retried, not failed; the sender is slowed fleet-wide (the limiter's slow key) and
// later sends are spaced at the slowed rate.
func TestProviderRateFeedback(t *testing.T) {
	t.Parallel()
	const (
		mps = 20
		n   = 6
	)
	h := harness.Start(t, harness.Options{Config: func(c *config.Config) { c.WhiteMPS = mps }})
	h.Sim.AddRule(sim.Rule{Code: 130429, Times: 3})
	first := make([]*producer.Job, n)
	for i := range first {
		first[i] = pacingJob(fmt.Sprintf("feedback-%02d", i), fmt.Sprintf("+7907%07d", i), false)
	}
	publishAll(t, h, first)
	testutil.Eventually(t, 30*time.Second, func() bool { return len(acceptedWhite(h)) >= n }, "every job sent in the end")
	rejected := map[string]bool{}
	for _, m := range h.Sim.Messages() {
		if m.ErrorCode == 130429 {
			rejected[m.JobID] = true
		}
	}
	if len(rejected) == 0 {
		t.Fatal("the simulator rejected nothing: the rule did not fire")
	}
	for _, j := range first {
		r := waitState(t, h, j.ID, 10*time.Second, func(r *status.Record) bool { return r.State == status.Delivered }, "delivered")
		if n := h.SentPerJob()["white:"+j.ID]; n != 1 || r.Channel != "white" {
			t.Errorf("job %s: %d accepted white sends, channel %s", j.ID, n, r.Channel)
		}
	}
	key := "herald:rl:{white:" + h.Cfg.WhitePhoneNumberID + "}:slow"
	ctx := context.Background()
	factor, err := h.RDB.Get(ctx, key).Float64()
	if err != nil {
		t.Fatalf("slow key %s: %v", key, err)
	}
	ttl := h.RDB.PTTL(ctx, key).Val()
	t.Logf("%d jobs got 130429; slow factor %v for another %s", len(rejected), factor, ttl.Round(time.Second))
	if factor >= 1 || ttl <= 0 {
		t.Errorf("sender not slowed: factor %v, ttl %s", factor, ttl)
	}

	// Sends reserved after the penalty are spaced at the slowed rate.
	later := make([]*producer.Job, 9)
	for i := range later {
		later[i] = pacingJob(fmt.Sprintf("feedback-later-%02d", i), fmt.Sprintf("+7908%07d", i), false)
	}
	publishAll(t, h, later)
	testutil.Eventually(t, 20*time.Second, func() bool { return len(acceptedWhite(h)) >= n+len(later) }, "later jobs sent")
	var at []time.Time
	for _, m := range acceptedWhite(h) {
		if strings.HasPrefix(m.JobID, "feedback-later-") {
			at = append(at, m.At)
		}
	}
	// The mean gap, not the smallest: under load one send's slot-to-arrival delay can eat
	// most of a single gap, while the span of eight gaps stays within one such delay.
	want := time.Duration(float64(time.Second) / (mps * factor))
	mean := at[len(at)-1].Sub(at[0]) / time.Duration(len(at)-1)
	t.Logf("later sends: mean gap %s, slowed interval %s (normal %s)", mean.Round(time.Millisecond), want, time.Second/mps)
	if mean < want*3/4 {
		t.Errorf("sends %s apart on average after a 130429, want about %s (the slowed rate), not %s", mean, want, time.Second/mps)
	}
}

// TestTierSparesOpenWindow: the messaging tier counts business-initiated conversations only:
// with the tier used up, a template to a customer whose 24-hour window is open still goes out
// at once, while one to a customer outside it waits.
func TestTierSparesOpenWindow(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{Config: func(c *config.Config) { c.WhiteDailyUnique = 1 }})
	first := pacingJob("tier-open-0", "+79070000000", true)
	publishAll(t, h, []*producer.Job{first})
	testutil.Eventually(t, 20*time.Second, func() bool { return h.SentPerJob()["white:"+first.ID] == 1 }, "the first job uses the tier")
	if err := h.Store.OpenWindow(context.Background(), "", "+79070000001", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	inWindow, outside := pacingJob("tier-open-1", "+79070000001", true), pacingJob("tier-open-2", "+79070000002", true)
	publishAll(t, h, []*producer.Job{inWindow, outside})
	testutil.Eventually(t, 20*time.Second, func() bool {
		r := h.Record(outside.ID)
		return h.SentPerJob()["white:"+inWindow.ID] == 1 && r != nil && r.State == status.Scheduled
	}, "the job in the window sent, the other held for the tier")
}
