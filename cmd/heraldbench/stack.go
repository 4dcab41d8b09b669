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
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/benchenv"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/producer"
)

// Secrets the benchmark configures on both ends.
const (
	benchToken     = "bench-token"
	benchAppSecret = "bench-app-secret"
	benchPhoneID   = "100200300"
	benchAPIKey    = "bench:bench-key-0001"
)

// bins are the binaries every section runs; peer is built for the e2e section only.
type bins struct{ nats, herald, peer string }

// stack is one fresh set of servers: nats-server, redis-server, optionally `herald sim`, and the
// benchmark's own NATS connection. Every section (and every round) gets its own, so no state
// leaks from one measurement into the next.
type stack struct {
	env    *benchenv.Env
	bins   bins
	nats   *benchenv.NATS
	redis  *benchenv.Redis
	sim    *benchenv.Proc
	simURL string
	nc     *nats.Conn
	js     jetstream.JetStream
	// sentBefore is subtracted from the simulator's count: sends of an earlier measurement
	// on this stack (the floor) that the next one must not count.
	sentBefore int64
}

// startStack starts the servers in a new directory under dir; simArgs nil means no simulator.
// On error everything started is stopped and the processes' logs are part of the error.
func startStack(ctx context.Context, dir string, b bins, simArgs []string) (_ *stack, err error) {
	env, err := benchenv.New(dir)
	if err != nil {
		return nil, err
	}
	s := &stack{env: env, bins: b}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, env.Logs(20))
			s.close()
		}
	}()
	if s.nats, err = env.StartNATS(ctx, b.nats); err != nil {
		return s, err
	}
	if s.redis, err = env.StartRedis(ctx); err != nil {
		return s, err
	}
	if s.nc, err = nats.Connect(s.nats.URL, nats.MaxReconnects(-1)); err != nil {
		return s, err
	}
	if s.js, err = jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		return s, err
	}
	cfg := config.Defaults()
	if err = streams.Ensure(ctx, s.js, app.StreamOptions(&cfg)); err != nil {
		return s, err
	}
	kv, err := s.js.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		return s, err
	}
	if err = templates.PutSamples(ctx, kv); err != nil {
		return s, err
	}
	if simArgs != nil {
		port, err := benchenv.FreePort()
		if err != nil {
			return s, err
		}
		s.simURL = "http://127.0.0.1:" + strconv.Itoa(port)
		args := append([]string{"-addr", "127.0.0.1:" + strconv.Itoa(port), "-token", benchToken}, simArgs...)
		if s.sim, err = env.StartHerald(ctx, b.herald, "sim", args, nil, s.simURL+"/sim/stats"); err != nil {
			return s, err
		}
	}
	return s, nil
}

// withStack runs f on a fresh stack (see startStack) and stops the stack afterwards: every
// section and round measures on servers of its own. An error of f comes back with the tail of
// every process's log, read while the processes still run.
func withStack[T any](ctx context.Context, dir string, b bins, simArgs []string, f func(*stack) (T, error)) (T, error) {
	s, err := startStack(ctx, dir, b, simArgs)
	if err != nil {
		var zero T
		return zero, err
	}
	defer s.close()
	res, err := f(s)
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, s.env.Logs(20))
	}
	return res, err
}

// close stops every process (clients first) and the connection.
func (s *stack) close() {
	if s.nc != nil {
		s.nc.Close()
	}
	s.env.Close(15 * time.Second)
}

// heraldEnv is the environment of a herald worker or api process on this stack, with extra
// (KEY=VALUE) appended last so that it wins.
func (s *stack) heraldEnv(httpPort int, extra ...string) []string {
	env := []string{
		"HERALD_NATS_URL=" + s.nats.URL, "HERALD_REDIS_URL=" + s.redis.URL,
		"HERALD_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(httpPort),
		"HERALD_WHITE_BASE_URL=" + s.simURL, "HERALD_WHITE_PHONE_NUMBER_ID=" + benchPhoneID,
		"HERALD_WHITE_TOKEN=" + benchToken, "HERALD_WHITE_APP_SECRET=" + benchAppSecret,
		"HERALD_SMS_URL=" + s.simURL + "/cgi-bin/sendsms", "HERALD_API_KEYS=" + benchAPIKey,
		"HERALD_SMS_DLR_SECRET=bench-dlr-secret-0123456789abcdef",
		// -profile reads the workers' /debug/pprof/ (off unless asked for).
		"HERALD_PPROF=true",
		"HERALD_LOG_LEVEL=warn", "HERALD_LOG_FORMAT=json",
	}
	return append(env, extra...)
}

// startHerald starts `herald <command>` (worker or api) with env and waits for /readyz.
func (s *stack) startHerald(ctx context.Context, command string, extra ...string) (*benchenv.Proc, string, error) {
	port, err := benchenv.FreePort()
	if err != nil {
		return nil, "", err
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	p, err := s.env.StartHerald(ctx, s.bins.herald, command, nil, s.heraldEnv(port, extra...), url+"/readyz")
	return p, url, err
}

// simStats is the part of GET /sim/stats the benchmark reads.
type simStats struct {
	Channels map[string]struct {
		Accepted int64 `json:"accepted"`
		Failed   int64 `json:"failed"`
	} `json:"channels"`
}

// accepted returns the simulator's accepted sends on every channel, less s.sentBefore.
func (s *stack) accepted(ctx context.Context) (int64, error) {
	var st simStats
	if err := getJSON(ctx, s.simURL+"/sim/stats", func(d *json.Decoder) error { return d.Decode(&st) }); err != nil {
		return 0, err
	}
	var n int64
	for _, c := range st.Channels {
		n += c.Accepted
	}
	return n - s.sentBefore, nil
}

// arrival is one send the simulator recorded, reduced to what the figures need.
type arrival struct {
	JobID   string    `json:"job_id"`
	To      string    `json:"to"`
	Channel string    `json:"channel"`
	At      time.Time `json:"at"`
	// PhoneNumberID is the business number a white send came from.
	PhoneNumberID string `json:"phone_number_id"`
}

// arrivals reads the simulator's log from GET /sim/messages, decoding one message at a time so
// that the raw bodies it carries are never all in this process's memory.
func (s *stack) arrivals(ctx context.Context) ([]arrival, error) {
	var out []arrival
	err := getJSON(ctx, s.simURL+"/sim/messages", func(d *json.Decoder) error {
		if _, err := d.Token(); err != nil {
			return err
		}
		for d.More() {
			var a arrival
			if err := d.Decode(&a); err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b arrival) int { return a.At.Compare(b.At) })
	return out, err
}

func getJSON(ctx context.Context, url string, decode func(*json.Decoder) error) error {
	return benchenv.Get(ctx, url, func(r io.Reader) error { return decode(json.NewDecoder(r)) })
}

// waitSent polls the simulator until it has accepted want sends, printing progress, and
// fails when deadline passes or a process in the stack has died.
func (s *stack) waitSent(ctx context.Context, label string, want int64, start time.Time, deadline time.Duration) error {
	pr := newProgress(label, want, start)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	end := time.Now().Add(deadline)
	for {
		n, err := s.accepted(ctx)
		if err != nil {
			return err
		}
		pr.update(n)
		if n >= want {
			pr.done(n)
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s: only %d of %d sends reached the simulator in %s", label, n, want, deadline)
		}
		if err := s.checkAlive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// checkAlive fails when a process of the stack has exited.
func (s *stack) checkAlive() error {
	for _, p := range s.env.Procs() {
		if exited, err := p.Exited(); exited && !p.Stopped() {
			return fmt.Errorf("%s (pid %d) exited: %v", p.Name, p.Pid(), err)
		}
	}
	return nil
}

// cpuSnapshot is the CPU time of each process (and of this one, "heraldbench") at a moment.
type cpuSnapshot map[string]time.Duration

func (s *stack) cpu() cpuSnapshot {
	snap := cpuSnapshot{}
	for _, p := range s.env.Procs() {
		if d, err := p.CPU(); err == nil {
			snap[p.Name] = d
		}
	}
	if d, err := benchenv.CPUTime(os.Getpid()); err == nil {
		snap["heraldbench"] = d
	}
	if d, err := machineBusy(); err == nil {
		snap[machineKey] = d
	}
	return snap
}

// machineKey names the whole machine's busy CPU time in a cpuSnapshot: with the processes'
// own figures it shows how much else ran on the shared machine meanwhile.
const machineKey = "~machine"

// machineBusy is the CPU time all cores spent not idle since boot (/proc/stat).
func machineBusy() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		// Fields: user nice system idle iowait irq softirq steal guest guest_nice; guest time
		// is already in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / 100, nil
}

// cpuShare is the CPU used by each process between two snapshots, as a share of one core over
// the wall time el (1.0 = one core busy all the time).
func cpuShare(before, after cpuSnapshot, el time.Duration) map[string]float64 {
	out := map[string]float64{}
	for name, d := range after {
		out[name] = (d - before[name]).Seconds() / el.Seconds()
	}
	return out
}

// publishTimed publishes n jobs built by mk with the producer in chunks, records when each
// chunk was handed to the producer (every job of a chunk gets that time), and prints progress.
func publishTimed(ctx context.Context, js jetstream.JetStream, label string, n int, mk func(i int) *producer.Job) ([]time.Time, error) {
	p := producer.New(js, producer.WithMaxInFlight(4096))
	const chunk = 512
	times := make([]time.Time, n)
	pr := newProgress(label, int64(n), time.Now())
	jobs := make([]*producer.Job, 0, chunk)
	for i := 0; i < n; i += chunk {
		jobs = jobs[:0]
		for k := i; k < min(i+chunk, n); k++ {
			jobs = append(jobs, mk(k))
		}
		now := time.Now()
		for k := range jobs {
			times[i+k] = now
		}
		rs, err := p.PublishBatch(ctx, jobs)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.Err != nil {
				return nil, r.Err
			}
			if r.Duplicate {
				return nil, fmt.Errorf("job %s was a duplicate", r.ID)
			}
		}
		pr.update(int64(min(i+chunk, n)))
	}
	pr.done(int64(n))
	return times, nil
}

// progress prints a line to stderr at most every 2 s: done/total, rate, ETA.
type progress struct {
	label string
	total int64
	start time.Time
	last  time.Time
}

func newProgress(label string, total int64, start time.Time) *progress {
	return &progress{label: label, total: total, start: start, last: time.Now()}
}

func (p *progress) update(n int64) {
	if time.Since(p.last) < 2*time.Second {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start)
	rate := float64(n) / el.Seconds()
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-n) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(os.Stderr, "  %s: %d/%d (%.0f/s, ETA %s)\n", p.label, n, p.total, rate, eta)
}

func (p *progress) done(n int64) {
	el := time.Since(p.start)
	fmt.Fprintf(os.Stderr, "  %s: %d done in %s (%.0f/s)\n", p.label, n, el.Round(time.Millisecond), float64(n)/el.Seconds())
}

// consumerDeliveries sums Delivered.Consumer of the job consumers: every delivery, first or
// not, of every message (a job parked in a schedule comes back as a new message).
func consumerDeliveries(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	var n uint64
	for _, name := range []string{streams.ConsumerTransactional, streams.ConsumerBulk} {
		c, err := js.Consumer(ctx, streams.JobsStream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		n += info.Delivered.Consumer
	}
	return n, nil
}

// dirFor is a fresh directory for one round of one section.
func dirFor(root, section string, round int) string {
	return filepath.Join(root, section+"-"+strconv.Itoa(round))
}
