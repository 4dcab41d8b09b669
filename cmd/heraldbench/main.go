// Command heraldbench measures Herald end to end and writes BENCHMARKS.md (`make bench`).
//
// Each round runs, side by side on the same servers:
//   - raw: JetStream alone, async publish of N messages while a pull consumer acks them;
//   - herald: N jobs through the producer → JetStream → a `herald worker` process (real
//     Redis, the simulator over HTTP on loopback), until the simulator has them all.
//
// It reports medians over the rounds, the ratio herald/raw, publish-to-provider-call
// latency (p50/p99, from the simulator's arrival times) and the worker's peak RSS.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/embedded"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/producer"
)

func main() {
	n := flag.Int("n", 20000, "jobs (and raw messages) per round")
	rounds := flag.Int("rounds", 3, "rounds; medians are reported")
	bin := flag.String("bin", "bin/herald", "the herald binary (make build)")
	out := flag.String("out", "", "write the report to this file (BENCHMARKS.md)")
	conc := flag.Int("concurrency", 512, "HERALD_WORKER_CONCURRENCY of the worker process")
	flag.Parse()
	if err := run(*n, *rounds, *bin, *out, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "heraldbench:", err)
		os.Exit(1)
	}
}

type round struct {
	raw, herald float64 // per second
	p50, p99    time.Duration
	peakRSSKiB  int64
}

func run(n, rounds int, bin, out string, conc int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "heraldbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var results []round
	for r := 1; r <= rounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r, rounds)
		res, err := oneRound(ctx, filepath.Join(dir, strconv.Itoa(r)), n, bin, conc)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "  raw %.0f msg/s, herald %.0f notifications/s (ratio %.2f), p50 %s p99 %s, worker peak RSS %d MiB\n",
			res.raw, res.herald, res.herald/res.raw, res.p50, res.p99, res.peakRSSKiB/1024)
		results = append(results, res)
	}
	report := render(results, n, rounds, conc)
	fmt.Print(report)
	if out != "" {
		return os.WriteFile(out, []byte(report), 0o644)
	}
	return nil
}

func oneRound(ctx context.Context, dir string, n int, bin string, conc int) (round, error) {
	var res round
	ns, err := embedded.StartNATS(filepath.Join(dir, "nats"), "127.0.0.1", -1)
	if err != nil {
		return res, err
	}
	defer ns.Shutdown()
	rd, err := testutil.StartRedisProcess(dir)
	if err != nil {
		return res, err
	}
	defer rd.Stop()
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return res, err
	}

	if res.raw, err = rawRate(ctx, js, n); err != nil {
		return res, err
	}

	// Herald: simulator in this process, worker as its own process.
	s := sim.New(sim.Config{MaxMessages: n + 1000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	sctx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	s.Start(sctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: s.Handler()}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	simURL := "http://" + ln.Addr().String()

	cfg := config.Defaults()
	cfg.SendTimeout = 15 * time.Second
	if err := streams.Ensure(ctx, js, app.StreamOptions(&cfg)); err != nil {
		return res, err
	}
	kv, err := js.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		return res, err
	}
	for _, d := range templates.SampleDefinitions() {
		if _, err := templates.Put(ctx, kv, d); err != nil {
			return res, err
		}
	}
	worker := exec.Command(bin, "worker")
	worker.Env = append(os.Environ(),
		"HERALD_NATS_URL="+ns.URL, "HERALD_REDIS_URL="+rd.URL, "HERALD_HTTP_ADDR=127.0.0.1:0",
		"HERALD_WHITE_BASE_URL="+simURL, "HERALD_WHITE_PHONE_NUMBER_ID=100200300", "HERALD_WHITE_TOKEN=bench",
		"HERALD_SMS_URL="+simURL+"/cgi-bin/sendsms", "HERALD_LOG_LEVEL=warn",
		"HERALD_WORKER_CONCURRENCY="+strconv.Itoa(conc))
	worker.Stdout, worker.Stderr = os.Stderr, os.Stderr
	if err := worker.Start(); err != nil {
		return res, fmt.Errorf("start %s worker (run make build first): %w", bin, err)
	}
	defer func() { _ = worker.Process.Signal(os.Interrupt); _ = worker.Wait() }()
	var peak atomic.Int64
	stopRSS := make(chan struct{})
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-t.C:
				if v := rssKiB(worker.Process.Pid); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	defer close(stopRSS)

	p := producer.New(js, producer.WithMaxInFlight(4096))
	published := make([]time.Time, n)
	start := time.Now()
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		jobs := make([]*producer.Job, 0, chunk)
		for k := i; k < min(i+chunk, n); k++ {
			jobs = append(jobs, &producer.Job{ID: "bench-" + strconv.Itoa(k), To: fmt.Sprintf("+7900%07d", k),
				Template: "order_ready", Params: map[string]string{"order": strconv.Itoa(k), "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
				Buttons: map[string]string{"0": strconv.Itoa(k)}})
		}
		now := time.Now()
		for k := range jobs {
			published[i+k] = now
		}
		rs, err := p.PublishBatch(ctx, jobs)
		if err != nil {
			return res, err
		}
		for _, r := range rs {
			if r.Err != nil {
				return res, r.Err
			}
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	last := 0
	for s.Count() < n {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("only %d of %d jobs reached the simulator", s.Count(), n)
		}
		if c := s.Count(); c/5000 != last/5000 {
			fmt.Fprintf(os.Stderr, "  %d/%d sent\n", c, n)
			last = c
		}
		time.Sleep(20 * time.Millisecond)
	}
	msgs := s.Messages()
	var end time.Time
	lat := make([]time.Duration, 0, len(msgs))
	for _, m := range msgs {
		if m.At.After(end) {
			end = m.At
		}
		if k, err := strconv.Atoi(strings.TrimPrefix(m.JobID, "bench-")); err == nil && k < n {
			lat = append(lat, m.At.Sub(published[k]))
		}
	}
	res.herald = float64(n) / end.Sub(start).Seconds()
	slices.Sort(lat)
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	res.peakRSSKiB = peak.Load()
	if len(msgs) != n {
		return res, fmt.Errorf("simulator saw %d sends for %d jobs", len(msgs), n)
	}
	return res, nil
}

// rawRate measures JetStream alone: async publishes of ~job-sized messages to a work-queue
// stream while a pull consumer acks them, until all are consumed.
func rawRate(ctx context.Context, js jetstream.JetStream, n int) (float64, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteStream(ctx, "BENCH_RAW") }()
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
	go func() {
		for {
			m, err := it.Next()
			if err != nil {
				return
			}
			_ = m.Ack()
			if got.Add(1) == int64(n) {
				close(done)
				return
			}
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := js.PublishAsync("bench.raw", payload); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("raw publishes not acknowledged")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("raw: consumed %d of %d", got.Load(), n)
	}
	el := time.Since(start)
	it.Stop()
	return float64(n) / el.Seconds(), nil
}

func rssKiB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return v
		}
	}
	return 0
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func render(rs []round, n, rounds, conc int) string {
	col := func(f func(round) float64) []float64 {
		var out []float64
		for _, r := range rs {
			out = append(out, f(r))
		}
		return out
	}
	raw := median(col(func(r round) float64 { return r.raw }))
	her := median(col(func(r round) float64 { return r.herald }))
	ratio := median(col(func(r round) float64 { return r.herald / r.raw }))
	p50 := time.Duration(median(col(func(r round) float64 { return float64(r.p50) })))
	p99 := time.Duration(median(col(func(r round) float64 { return float64(r.p99) })))
	rss := median(col(func(r round) float64 { return float64(r.peakRSSKiB) }))
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` (`go run ./cmd/heraldbench -out BENCHMARKS.md`) on %s.\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "Machine: %s, %d cores (`nproc`), %s, %s/%s. The machine is shared and noisy: figures are medians of %d rounds,\n", cpuModel(), runtime.NumCPU(), memTotal(), runtime.GOOS, runtime.GOARCH, rounds)
	fmt.Fprintf(&b, "and each ratio compares two measurements taken side by side in the same round on the same servers.\n\n")
	fmt.Fprintf(&b, "## End to end (issue 2)\n\n%d jobs per round: producer (async publish) → JetStream (in-process nats-server, file storage) →\n", n)
	fmt.Fprintf(&b, "one `herald worker` process (HERALD_WORKER_CONCURRENCY=%d, real redis-server) → simulator over HTTP on loopback.\n", conc)
	fmt.Fprintf(&b, "Raw is JetStream alone: async publish of job-sized messages to a work-queue stream while a pull consumer acks them.\n\n")
	fmt.Fprintf(&b, "| figure | median |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| Herald notifications/s (publish of the first job → last provider call) | %.0f |\n", her)
	fmt.Fprintf(&b, "| raw JetStream publish+consume msgs/s | %.0f |\n", raw)
	fmt.Fprintf(&b, "| ratio Herald / raw | %.2f |\n", ratio)
	fmt.Fprintf(&b, "| publish → provider call latency p50 | %s |\n", p50.Round(time.Millisecond))
	fmt.Fprintf(&b, "| publish → provider call latency p99 | %s |\n", p99.Round(time.Millisecond))
	fmt.Fprintf(&b, "| worker peak RSS (VmHWM) | %.0f MiB |\n\n", rss/1024)
	fmt.Fprintf(&b, "Latency here includes the time a job waits in the backlog: every job is published at once, so p99 is\n")
	fmt.Fprintf(&b, "close to the drain time of the whole batch, not the latency of a lone job.\n\n")
	fmt.Fprintf(&b, "Rounds:\n\n| round | Herald/s | raw/s | ratio | p50 | p99 | RSS MiB |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for i, r := range rs {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.2f | %s | %s | %d |\n", i+1, r.herald, r.raw, r.herald/r.raw, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.peakRSSKiB/1024)
	}
	return b.String()
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return fmt.Sprintf("%d GiB RAM", kb>>20)
		}
	}
	return ""
}
