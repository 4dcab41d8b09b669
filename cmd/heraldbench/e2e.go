package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/benchenv"
	"github.com/herald-notify/herald/producer"
)

// e2eOpts sizes the end-to-end section.
type e2eOpts struct {
	jobs, workers, concurrency int
	backlog                    int           // jobs waiting for the backlog RSS figure
	backlogRun                 time.Duration // how long the worker runs against the backlog
	profile                    string        // write each worker's CPU profile of round 1 here
	peer                       peerOpts
}

// e2eRound is one round of the end-to-end section.
type e2eRound struct {
	raw          float64 // JetStream alone, msgs/s
	floor        floorRound
	herald       float64 // first publish → last arrival, notifications/s
	steady       float64 // between the 10th and 90th percentile arrival
	publish      float64 // producer publish rate while the workers consumed, jobs/s
	p50, p99     time.Duration
	workerRSS    int64 // the largest worker VmHWM, bytes
	elapsed      time.Duration
	cpu          map[string]float64
	deliveries   float64 // consumer deliveries per job
	simArrivals  int
	duplicateIDs int
	peer         *peerRound // nil: not run (-no-peer)
	// heraldBody is the request body Herald sent for job sampleJob (the peer's must match).
	heraldBody json.RawMessage
}

// e2eBacklog is the worker's memory with a large backlog waiting.
type e2eBacklog struct {
	jobs      int
	publish   float64
	run       time.Duration
	sent      int64
	workerRSS int64
}

// workerEnvThroughput lifts every limit that is not under test, so the run measures the
// pipeline: no pacing, no pair interval, no quiet hours.
func workerEnvThroughput(conc int) []string {
	return []string{"HERALD_WHITE_MPS=1000000", "HERALD_GREY_MPS=1000000", "HERALD_PAIR_INTERVAL=0",
		"HERALD_QUIET_HOURS=off", "HERALD_WORKER_CONCURRENCY=" + strconv.Itoa(conc)}
}

// e2eJob is job i of a throughput run: the sample order_ready template, one recipient each.
func e2eJob(prefix string) func(i int) *producer.Job {
	return func(i int) *producer.Job {
		return orderJob(prefix+strconv.Itoa(i), fmt.Sprintf("+7900%07d", i%10_000_000), "", i)
	}
}

// orderJob is job id to the recipient to, with the sample order_ready template and the
// parameters and button of order i; priority "" is the default (transactional).
func orderJob(id, to, priority string, i int) *producer.Job {
	return &producer.Job{ID: id, To: to, Priority: priority, Template: "order_ready",
		Params:  map[string]string{"order": strconv.Itoa(i), "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
		Buttons: map[string]string{"0": strconv.Itoa(i)}}
}

// simArgsQuiet runs the simulator without status webhooks: nobody would receive them (no
// `herald api` in this section), and on a 2-core machine their traffic would be measured
// instead of Herald's send path.
var simArgsQuiet = []string{}

func runE2ERound(ctx context.Context, dir string, b bins, o e2eOpts, round int) (e2eRound, error) {
	return withStack(ctx, dir, b, append(slices.Clone(simArgsQuiet), "-max-messages", strconv.Itoa(o.jobs+1000)),
		func(s *stack) (e2eRound, error) { return e2eRoundOn(ctx, s, o, round) })
}

// e2eRoundOn is round round of the end-to-end section on the fresh stack s.
func e2eRoundOn(ctx context.Context, s *stack, o e2eOpts, round int) (res e2eRound, err error) {
	label := fmt.Sprintf("e2e round %d", round)

	fmt.Fprintf(os.Stderr, "%s: raw JetStream publish+consume of %d messages\n", label, o.jobs)
	if res.raw, err = rawPubConsume(ctx, s.js, o.jobs); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "  raw: %.0f msgs/s\n", res.raw)
	if res.floor, err = floorDispatch(ctx, s, o.jobs, o.workers*o.concurrency, o.workers); err != nil {
		return res, err
	}
	if o.peer.off {
		return res, heraldRun(ctx, s, o, round, label, &res)
	}
	// Herald and the peer take turns going first, so that neither always meets the servers
	// (and the shared machine) in the state the other left.
	runs := []func() error{
		func() error { return heraldRun(ctx, s, o, round, label, &res) },
		func() error { return peerRun(ctx, s, o.jobs, o.peer, label, &res) },
	}
	if round%2 == 0 {
		runs[0], runs[1] = runs[1], runs[0]
	}
	for _, run := range runs {
		if err := run(); err != nil {
			return res, err
		}
	}
	// Both sent job sampleJob: the same request but for the job id, or the peer does less.
	if err := sameBody(res.heraldBody, res.peer.body); err != nil {
		return res, fmt.Errorf("peer: its Cloud API body of job %d is not Herald's: %w", sampleJob, err)
	}
	return res, nil
}

// heraldRun is Herald's run of an e2e round on the stack s: o.workers `herald worker`
// processes consume o.jobs jobs that the producer publishes meanwhile. The workers are stopped
// afterwards, so that what runs next on the stack runs alone.
func heraldRun(ctx context.Context, s *stack, o e2eOpts, round int, label string, res *e2eRound) error {
	if err := s.markSent(ctx); err != nil {
		return err
	}
	var workers []*benchenv.Proc
	defer func() {
		for _, w := range workers {
			w.Stop(15 * time.Second)
		}
	}()
	var urls []string
	for range o.workers {
		w, url, err := s.startHerald(ctx, "worker", workerEnvThroughput(o.concurrency)...)
		if err != nil {
			return err
		}
		workers, urls = append(workers, w), append(urls, url)
	}
	if o.profile != "" && round == 1 {
		for i, url := range urls {
			go func() {
				saveProfile(ctx, url+"/debug/pprof/profile?seconds=15", filepath.Join(o.profile, fmt.Sprintf("worker-%d.pprof", i+1)))
				saveProfile(ctx, url+"/debug/pprof/allocs", filepath.Join(o.profile, fmt.Sprintf("worker-%d.allocs.pprof", i+1)))
			}()
		}
	}
	before := s.cpu()
	start := time.Now()
	type pubResult struct {
		times []time.Time
		err   error
		el    time.Duration
	}
	pubc := make(chan pubResult, 1)
	// A failed publish ends the wait for sends that will never come.
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t, err := publishTimed(wctx, s.js, label+" publish", o.jobs, e2eJob("e2e-"))
		if err != nil {
			cancel(fmt.Errorf("publish: %w", err))
		}
		pubc <- pubResult{t, err, time.Since(start)}
	}()
	if err := s.waitSent(wctx, label+" sent", int64(o.jobs), start, 15*time.Minute); err != nil {
		if cause := context.Cause(wctx); cause != nil {
			return cause
		}
		return err
	}
	res.elapsed = time.Since(start)
	res.cpu = cpuShare(before, s.cpu(), res.elapsed)
	pub := <-pubc
	if pub.err != nil {
		return pub.err
	}
	res.publish = float64(o.jobs) / pub.el.Seconds()
	for _, w := range workers {
		rss, err := w.PeakRSS()
		if err != nil {
			return err
		}
		res.workerRSS = max(res.workerRSS, rss)
	}
	if d, err := consumerDeliveries(ctx, s.js); err == nil {
		res.deliveries = float64(d) / float64(o.jobs)
	}

	if o.profile != "" && round == 1 {
		saveRedisStats(ctx, s.redis.URL, filepath.Join(o.profile, "redis-commandstats.txt"))
	}
	arr, err := s.arrivals(ctx)
	if err != nil {
		return err
	}
	res.simArrivals = len(arr)
	lat := make([]time.Duration, 0, len(arr))
	seen := make([]bool, o.jobs)
	// The log also holds the sends of what ran before on this stack (the floor's, the
	// peer's): only Herald's e2e jobs count.
	var mine []arrival
	for _, a := range arr {
		rest, ok := strings.CutPrefix(a.JobID, "e2e-")
		k, err := strconv.Atoi(rest)
		if !ok || err != nil || k < 0 || k >= o.jobs {
			continue
		}
		if seen[k] {
			res.duplicateIDs++
			continue
		}
		seen[k] = true
		mine = append(mine, a)
		lat = append(lat, a.At.Sub(pub.times[k]))
	}
	if len(lat) != o.jobs {
		return fmt.Errorf("simulator log holds %d distinct jobs of %d", len(lat), o.jobs)
	}
	slices.Sort(lat)
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	res.herald = float64(o.jobs) / mine[len(mine)-1].At.Sub(start).Seconds()
	res.steady = steadyRate(mine)
	res.heraldBody, err = s.sentBody(ctx, "e2e-"+strconv.Itoa(sampleJob), sampleJob)
	return err
}

// saveProfile saves the profile at url (a herald process's /debug/pprof/...) into file, for
// `go tool pprof`; a failure is reported and otherwise ignored (the figures do not need it).
func saveProfile(ctx context.Context, url, file string) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	err := benchenv.Get(ctx, url, func(r io.Reader) error {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	fmt.Fprintln(os.Stderr, "profile: wrote", file)
}

// saveRedisStats saves redis-server's INFO commandstats (calls and µs per command and per
// script) into file: the Redis side of the profile. A failure is reported and ignored.
func saveRedisStats(ctx context.Context, url, file string) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err == nil {
		err = os.WriteFile(file, []byte(info), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	fmt.Fprintln(os.Stderr, "profile: wrote", file)
}

// steadyRate is the send rate between the 10th and the 90th percentile arrival: the pipeline
// full, without the start-up and the tail.
func steadyRate(sorted []arrival) float64 {
	if len(sorted) < 10 {
		return 0
	}
	lo, hi := len(sorted)/10, len(sorted)*9/10
	d := sorted[hi].At.Sub(sorted[lo].At)
	if d <= 0 {
		return 0
	}
	return float64(hi-lo) / d.Seconds()
}

// runBacklog publishes o.backlog jobs with no worker running, then runs one worker, paced so
// that it cannot drain them, for o.backlogRun and reads its peak RSS.
func runBacklog(ctx context.Context, dir string, b bins, o e2eOpts) (e2eBacklog, error) {
	return withStack(ctx, dir, b, append(slices.Clone(simArgsQuiet), "-max-messages", "100000"),
		func(s *stack) (e2eBacklog, error) { return backlogOn(ctx, s, o) })
}

// backlogOn is the backlog measurement on the fresh stack s.
func backlogOn(ctx context.Context, s *stack, o e2eOpts) (res e2eBacklog, err error) {
	res.jobs, res.run = o.backlog, o.backlogRun
	fmt.Fprintf(os.Stderr, "backlog: publishing %d jobs with no worker running\n", o.backlog)
	start := time.Now()
	if _, err := publishTimed(ctx, s.js, "backlog publish", o.backlog, e2eJob("backlog-")); err != nil {
		return res, err
	}
	res.publish = float64(o.backlog) / time.Since(start).Seconds()
	w, _, err := s.startHerald(ctx, "worker", "HERALD_WHITE_MPS=200", "HERALD_PAIR_INTERVAL=0", "HERALD_QUIET_HOURS=off",
		"HERALD_WORKER_CONCURRENCY="+strconv.Itoa(o.concurrency))
	if err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "backlog: one worker (HERALD_WHITE_MPS=200) running for %s\n", o.backlogRun)
	t := time.NewTimer(o.backlogRun)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-t.C:
	}
	if err := s.checkAlive(); err != nil {
		return res, err
	}
	if res.workerRSS, err = w.PeakRSS(); err != nil {
		return res, err
	}
	res.sent, err = s.accepted(ctx)
	fmt.Fprintf(os.Stderr, "  backlog: worker peak RSS %d MiB, %d sent\n", res.workerRSS>>20, res.sent)
	return res, err
}

// rawPubConsume measures JetStream alone on the same server: async publishes of job-sized
// messages to a work-queue file stream while a pull consumer acks them, until all are
// consumed.
func rawPubConsume(ctx context.Context, js jetstream.JetStream, n int) (float64, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), "BENCH_RAW") }()
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
	if err != nil {
		return 0, err
	}
	payload := []byte(`{"id":"order-000000-ready","to":"+79000000000","template":"order_ready","language":"ru","params":{"address":"ул. Текстильщиков, д. 20","order":"100000","until":"21.02.2027"},"buttons":{"0":"100000"},"priority":"transactional"}`)
	var got atomic.Int64
	done := make(chan struct{})
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	go func() {
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				// A missed heartbeat on a busy machine: the iterator goes on pulling (a run
				// once stalled at 181,440 of 200,000 when this gave up).
				continue
			}
			_ = m.Ack()
			if got.Add(1) == int64(n) {
				close(done)
				return
			}
		}
	}()
	start := time.Now()
	for range n {
		if _, err := js.PublishAsync("bench.raw", payload); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("raw publishes not acknowledged")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("raw: consumed %d of %d", got.Load(), n)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
