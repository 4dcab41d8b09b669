package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-notify/herald/internal/benchenv"
)

// devOpts sizes the dev section (issue 17): `herald dev` as a new user runs it, one batch.
type devOpts struct {
	jobs int
}

// devCap is herald dev's send cap with the defaults (HERALD_WHITE_MPS), and devReserve the
// share of it the limiter hands out, so that a second never carries more than the cap at the
// provider whatever the clocks and the HTTP path add.
const (
	devCap     = 80.0
	devReserve = 0.985
)

// devStatusesPerJob are the status webhooks the simulator posts per send: sent, delivered, read.
const devStatusesPerJob = 3

// devStore is one Redis-compatible store herald dev runs without HERALD_REDIS_URL.
type devStore struct {
	// name is the store in the report; redisServer the value of HERALD_REDIS_SERVER.
	name, redisServer string
}

// devStores are the stores measured: the embedded one always, and redis-server from the PATH
// when there is one, which is what herald dev runs by default then. note says why the second
// is missing.
func devStores() (stores []devStore, note string) {
	stores = []devStore{{name: "embedded", redisServer: "none"}}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return stores, "no redis-server on the PATH, so only the embedded store was measured"
	}
	// Empty, not the path: herald dev looks redis-server up itself, as it does by default.
	return append(stores, devStore{name: "redis-server", redisServer: ""}), ""
}

// devRound is one round of the dev section.
type devRound struct {
	store string
	// accept is POST → answer of the batch; accepted the jobs the answer counts.
	accept   time.Duration
	accepted int
	// sampled records were looked up right after the answer; missing of them answered no 200.
	sampled, missing int
	// rate is the sends/s between the first and the last send; worstSliding and
	// worstCalendar the most sends in any 1 s window and in one calendar second.
	rate                        float64
	worstSliding, worstCalendar int
	// worstAt is when the worst 1 s window began, after the first send.
	worstAt time.Duration
	// sent is the distinct jobs the simulator received, twice those it received more than once.
	sent, twice int
	// The simulator's status webhooks: statuses delivered (in posts), retried and dropped.
	statuses, posts, retries, dropped int64
	// drain is POST → the last status webhook delivered (or the wait given up).
	drain time.Duration
	cpu   map[string]float64
}

// devProc and devRedisProc name herald dev and the redis-server it runs in the CPU figures.
const (
	devProc      = "herald-dev"
	devRedisProc = "redis-server (herald dev's)"
)

// runDev runs the dev section: o.rounds rounds on each store of devStores.
func runDev(ctx context.Context, root string, b bins, o options, res *results) error {
	stores, note := devStores()
	res.devNote = note
	if note != "" {
		fmt.Fprintln(os.Stderr, "== dev:", note)
	}
	for _, st := range stores {
		for r := 1; r <= o.rounds; r++ {
			fmt.Fprintf(os.Stderr, "== dev round %d/%d, %s store: one batch of %d jobs\n", r, o.rounds, st.name, o.dev.jobs)
			dr, err := runDevRound(ctx, dirFor(root, "dev-"+st.name, r), b.herald, st, o.dev, r)
			if err != nil {
				return fmt.Errorf("dev round %d (%s store): %w", r, st.name, err)
			}
			res.dev = append(res.dev, dr)
		}
	}
	return nil
}

// runDevRound starts `herald dev` with its data in dir, posts one batch, waits for every send
// and status webhook, and stops it. An error carries the tail of herald dev's log.
func runDevRound(ctx context.Context, dir, bin string, st devStore, o devOpts, round int) (res devRound, err error) {
	env, err := benchenv.New(dir)
	if err != nil {
		return res, err
	}
	var p *benchenv.Proc
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, env.Logs(30))
		}
		stopDev(p, env)
	}()
	p, err = env.StartHerald(ctx, bin, "dev", nil, devEnv(dir, st), "")
	if err != nil {
		return res, err
	}
	bn, err := waitDevBanner(ctx, p)
	if err != nil {
		return res, err
	}
	// A stack without servers of its own: its simulator is herald dev's, its only process dev.
	s := &stack{env: env, bins: bins{herald: bin}, simURL: bn.sim}
	label := fmt.Sprintf("dev round %d (%s)", round, st.name)
	res.store = st.name
	body := devBatch(o.jobs)

	before := devCPU(s, p)
	start := time.Now()
	if res.accepted, err = postBatch(ctx, bn, body); err != nil {
		return res, err
	}
	res.accept = time.Since(start)
	if res.accepted != o.jobs {
		return res, fmt.Errorf("%s: the batch answer accepted %d of %d jobs", label, res.accepted, o.jobs)
	}
	// Right after the answer, before the worker can have reached them: the last jobs first.
	for i := o.jobs - 1; i >= 0; i -= max(1, o.jobs/50) {
		res.sampled++
		if !recordExists(ctx, bn, devJobID(i)) {
			res.missing++
		}
	}
	fmt.Fprintf(os.Stderr, "  %s: accepted in %s, %d of %d sampled records missing right after the answer\n", label, ms(res.accept), res.missing, res.sampled)

	expected := time.Duration(float64(o.jobs) / (devCap * devReserve) * float64(time.Second))
	if err := s.waitSent(ctx, label+" sent", int64(o.jobs), start, 2*expected+time.Minute); err != nil {
		return res, err
	}
	want := int64(devStatusesPerJob * o.jobs)
	var wh webhookStats
	werr := benchenv.Poll(ctx, p, 2*time.Minute, label+" status webhooks", func(ctx context.Context) error {
		var serr error
		if wh, serr = devWebhooks(ctx, bn.sim); serr != nil {
			return serr
		}
		if wh.Statuses+wh.Dropped < want {
			return fmt.Errorf("%d delivered and %d dropped of %d", wh.Statuses, wh.Dropped, want)
		}
		return nil
	})
	res.drain = time.Since(start)
	if errors.Is(werr, benchenv.ErrExited) || ctx.Err() != nil {
		return res, werr
	}
	if werr != nil {
		// Reported as missing webhooks, not as a failed round: that is the figure.
		fmt.Fprintf(os.Stderr, "  %s: %v\n", label, werr)
	}
	res.cpu = cpuShare(before, devCPU(s, p), res.drain)
	res.statuses, res.posts, res.retries, res.dropped = wh.Statuses, wh.Posts, wh.Retries, wh.Dropped

	arr, err := s.arrivals(ctx)
	if err != nil {
		return res, err
	}
	var sends []arrival
	seen := map[string]int{}
	for _, a := range arr {
		if a.Channel == "white" && strings.HasPrefix(a.JobID, devJobPrefix) {
			sends = append(sends, a)
			seen[a.JobID]++
		}
	}
	res.sent = len(seen)
	for _, n := range seen {
		if n > 1 {
			res.twice++
		}
	}
	if res.sent != o.jobs {
		return res, fmt.Errorf("%s: the simulator received %d distinct jobs of %d by WhatsApp", label, res.sent, o.jobs)
	}
	res.rate = firstToLast(sends)
	_, res.worstCalendar = maxPerSecond(sends)
	res.worstSliding, res.worstAt = worstWindow(sends)
	fmt.Fprintf(os.Stderr, "  %s: %.1f/s first → last send (cap %.0f), worst second %d sliding (at %s) / %d calendar; %d of %d status webhooks, %d dropped, %d retried; herald dev CPU %.2f\n",
		label, res.rate, devCap, res.worstSliding, ms(res.worstAt), res.worstCalendar, res.statuses, want, res.dropped, res.retries, res.cpu[devProc])
	return res, nil
}

// devEnv is herald dev's environment in the section: the defaults but for the data directory,
// free loopback ports, quiet hours off (so that the figure does not depend on the hour) and
// the store. What the benchmark's own environment says of the parts dev would otherwise run
// itself is cleared.
func devEnv(dir string, st devStore) []string {
	return []string{
		"HERALD_DATA_DIR=" + filepath.Join(dir, "data"),
		"HERALD_HTTP_ADDR=127.0.0.1:0", "HERALD_OPS_ADDR=127.0.0.1:0", "HERALD_SIM_ADDR=127.0.0.1:0",
		"HERALD_QUIET_HOURS=off", "HERALD_REDIS_SERVER=" + st.redisServer,
		"HERALD_NATS_URL=", "HERALD_REDIS_URL=", "HERALD_API_KEYS=", "HERALD_WHITE_BASE_URL=",
	}
}

// devBanner is what herald dev's banner says: the API's and the simulator's URLs and the key.
type devBanner struct{ api, sim, key string }

var (
	devBannerAPI = regexp.MustCompile(`API and webhooks\s+(http://\S+)`)
	devBannerSim = regexp.MustCompile(`provider simulator\s+(http://\S+)`)
	devBannerKey = regexp.MustCompile(`API key\s+(\S+)`)
)

// parseDevBanner reads the banner out of herald dev's log; ok is false until it is all there.
func parseDevBanner(log []byte) (b devBanner, ok bool) {
	a, s, k := devBannerAPI.FindSubmatch(log), devBannerSim.FindSubmatch(log), devBannerKey.FindSubmatch(log)
	if a == nil || s == nil || k == nil {
		return b, false
	}
	return devBanner{api: string(a[1]), sim: string(s[1]), key: string(k[1])}, true
}

// waitDevBanner waits until herald dev has printed its banner, which it does once it serves.
func waitDevBanner(ctx context.Context, p *benchenv.Proc) (devBanner, error) {
	var b devBanner
	err := benchenv.Poll(ctx, p, time.Minute, "herald dev banner", func(context.Context) error {
		log, err := os.ReadFile(p.LogPath)
		if err != nil {
			return err
		}
		var ok bool
		if b, ok = parseDevBanner(log); !ok {
			return errors.New("no banner yet")
		}
		return nil
	})
	return b, err
}

// devJobPrefix starts every job id of the section's batch.
const devJobPrefix = "dev-"

func devJobID(i int) string { return devJobPrefix + strconv.Itoa(i) }

// devBatch is the batch: n bulk jobs of the tour's template to distinct customers in
// one campaign.
func devBatch(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"notifications":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"to":"+7905%07d","template":"order_ready","campaign":"batch5k","priority":"bulk","params":{"order":"%d","address":"ул. Текстильщиков, д. 20","until":"21.02.2027"},"buttons":{"0":"%d"}}`,
			devJobID(i), i, i, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// devRequest sends method path with dev's key and returns the status and the body.
func devRequest(ctx context.Context, bn devBanner, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, bn.api+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bn.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// postBatch posts body to POST /v1/notifications/batch and returns the jobs it accepted.
func postBatch(ctx context.Context, bn devBanner, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	code, b, err := devRequest(ctx, bn, http.MethodPost, "/v1/notifications/batch", body)
	if err != nil {
		return 0, fmt.Errorf("POST /v1/notifications/batch: %w", err)
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("POST /v1/notifications/batch: HTTP %d: %.300s", code, b)
	}
	var a struct {
		Accepted int `json:"accepted"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return 0, fmt.Errorf("POST /v1/notifications/batch: the answer: %w", err)
	}
	return a.Accepted, nil
}

// recordExists tells whether GET /v1/notifications/id answers 200 (an error counts as not).
func recordExists(ctx context.Context, bn devBanner, id string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	code, _, err := devRequest(ctx, bn, http.MethodGet, "/v1/notifications/"+id, nil)
	return err == nil && code == http.StatusOK
}

// webhookStats is the part of /sim/stats on status webhooks.
type webhookStats struct {
	Posts    int64 `json:"posts"`
	Statuses int64 `json:"statuses"`
	Retries  int64 `json:"retries"`
	Dropped  int64 `json:"dropped"`
}

func devWebhooks(ctx context.Context, simURL string) (webhookStats, error) {
	var st struct {
		Webhooks webhookStats `json:"webhooks"`
	}
	err := getJSON(ctx, simURL+"/sim/stats", func(d *json.Decoder) error { return d.Decode(&st) })
	return st.Webhooks, err
}

// firstToLast is the rate between the first and the last of sorted arrivals.
func firstToLast(sorted []arrival) float64 {
	if len(sorted) < 2 {
		return 0
	}
	el := sorted[len(sorted)-1].At.Sub(sorted[0].At)
	if el <= 0 {
		return 0
	}
	return float64(len(sorted)-1) / el.Seconds()
}

// worstWindow is the most of sorted arrivals in any 1 s window [t, t+1s), and when the first
// such window begins after the first arrival: a burst at the start tells another story than
// one in the middle.
func worstWindow(sorted []arrival) (most int, at time.Duration) {
	j := 0
	for i := range sorted {
		for sorted[i].At.Sub(sorted[j].At) >= time.Second {
			j++
		}
		if i-j+1 > most {
			most, at = i-j+1, sorted[j].At.Sub(sorted[0].At)
		}
	}
	return most, at
}

// devCPU is the stack's CPU snapshot with the redis-server herald dev runs (its child, not
// started by the benchmark) added.
func devCPU(s *stack, p *benchenv.Proc) cpuSnapshot {
	snap := s.cpu()
	for _, pid := range redisChildren(p.Pid()) {
		if d, err := benchenv.CPUTime(pid); err == nil {
			snap[devRedisProc] += d
		}
	}
	return snap
}

// redisChildren are the pids of the redis-server processes pid has started (every thread's
// children, /proc/<pid>/task/*/children).
func redisChildren(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(field); err == nil && isRedisServer(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

func isRedisServer(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(comm)), "redis-server")
}

// stopDev stops herald dev (SIGINT: it stops its redis-server after the last write) and every
// other process of env. A redis-server dev left behind (dev killed after the grace period:
// its child has no Pdeathsig) is killed by its pid.
func stopDev(p *benchenv.Proc, env *benchenv.Env) {
	var children []int
	if p != nil {
		children = redisChildren(p.Pid())
	}
	env.Close(time.Minute)
	for _, c := range children {
		if isRedisServer(c) {
			_ = syscall.Kill(c, syscall.SIGKILL)
		}
	}
}

// devByStore splits the rounds by store, in the order they ran.
func devByStore(rs []devRound) (names []string, by map[string][]devRound) {
	by = map[string][]devRound{}
	for _, r := range rs {
		if _, ok := by[r.store]; !ok {
			names = append(names, r.store)
		}
		by[r.store] = append(by[r.store], r)
	}
	return names, by
}

// renderDev writes the dev section: one column of medians per store.
func renderDev(b *strings.Builder, o options, rs []devRound, note string) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	n := o.dev.jobs
	names, by := devByStore(rs)
	w("## herald dev (issue 17)\n\n")
	w("`herald dev` as a new user runs it: the herald binary as one process (embedded nats-server, the Redis-compatible store,\n")
	w("the provider simulator, the API and a worker), with the defaults (HERALD_WHITE_MPS=%.0f, the default cascade, dev's\n", devCap)
	w("API key from its banner) but for HERALD_DATA_DIR in the round's directory, free loopback ports and HERALD_QUIET_HOURS=off\n")
	w("(so that the figure does not depend on the hour). Without HERALD_REDIS_URL dev runs redis-server from the PATH when\n")
	w("there is one (append-only file, fsync always) and its embedded store otherwise (HERALD_REDIS_SERVER=none); each store\n")
	w("is measured in rounds of its own, each on a fresh data directory. One batch of %d bulk jobs of the tour's template to\n", n)
	w("distinct customers goes through `POST /v1/notifications/batch`. Time to accept is the batch's POST until its answer;\n")
	w("right after it %d of the jobs (the last ones first) are looked up with `GET /v1/notifications/{id}`. The send rate\n", col(rs, func(r devRound) int { return r.sampled }))
	w("is between the simulator's first and last arrival. The limiter reserves %.1f%% of the cap (%.1f/s at %.0f) so that the\n", devReserve*100, devCap*devReserve, devCap)
	w("provider never sees more than the cap in a second: %.1f/s is the most dev can show, so the issue's \"at least 80/s\"\n", devCap*devReserve)
	w("is read as the cap, and the goal is 0.95 of it.\n")
	w("Status webhooks (sent, delivered, read: %d) are the simulator's own count (`/sim/stats`); the run ends when all are\n", devStatusesPerJob*n)
	w("delivered. CPU is over the run (the POST until the last webhook), in cores busy. The worst 1 s windows are at the\n")
	w("simulator's arrival clock; the rounds say when the worst one began after the first send.\n\n")
	if note != "" {
		w("%s.\n\n", strings.ToUpper(note[:1])+note[1:])
	}
	w("| figure (median over rounds) |")
	for _, s := range names {
		w(" %s store |", s)
	}
	w(" goal |\n| --- |%s --- |\n", strings.Repeat(" --- |", len(names)))
	row := func(label, goalText string, cell func([]devRound) string) {
		w("| %s |", label)
		for _, s := range names {
			w(" %s |", cell(by[s]))
		}
		w(" %s |\n", goalText)
	}
	all := func(ok func(devRound) bool) bool {
		for _, r := range rs {
			if !ok(r) {
				return false
			}
		}
		return true
	}
	row(fmt.Sprintf("time to accept the batch of %d", n), "", func(rs []devRound) string {
		return ms(col(rs, func(r devRound) time.Duration { return r.accept }))
	})
	row("records missing right after the answer (sampled)", goal(all(func(r devRound) bool { return r.missing == 0 }))+" 0", func(rs []devRound) string {
		return fmt.Sprintf("%d of %d", col(rs, func(r devRound) int { return r.missing }), col(rs, func(r devRound) int { return r.sampled }))
	})
	// The goal holds for each store's median.
	rate := devCap
	for _, s := range names {
		rate = min(rate, col(by[s], func(r devRound) float64 { return r.rate }))
	}
	row("send rate, first → last send, sends/s", fmt.Sprintf("≥ %.1f (0.95 of %.0f): %s", 0.95*devCap, devCap, goal(rate >= 0.95*devCap)), func(rs []devRound) string {
		return fmt.Sprintf("%.1f", col(rs, func(r devRound) float64 { return r.rate }))
	})
	row("fraction of the cap", fmt.Sprintf("at most %.3f", devReserve), func(rs []devRound) string {
		return fmt.Sprintf("%.3f", col(rs, func(r devRound) float64 { return r.rate })/devCap)
	})
	worst := 0
	for _, r := range rs {
		worst = max(worst, r.worstSliding)
	}
	row("most sends in any 1 s window (worst round)", fmt.Sprintf("≤ %.0f: %s", devCap, goal(float64(worst) <= devCap)), func(rs []devRound) string {
		wr := 0
		for _, r := range rs {
			wr = max(wr, r.worstSliding)
		}
		return strconv.Itoa(wr)
	})
	row("jobs sent more than once", goal(all(func(r devRound) bool { return r.twice == 0 }))+" 0", func(rs []devRound) string {
		return strconv.Itoa(col(rs, func(r devRound) int { return r.twice }))
	})
	row(fmt.Sprintf("status webhooks delivered, of %d", devStatusesPerJob*n),
		goal(all(func(r devRound) bool { return r.statuses == int64(devStatusesPerJob*n) && r.dropped == 0 }))+" all, none dropped",
		func(rs []devRound) string {
			return fmt.Sprintf("%d (%d dropped, %d retried)", col(rs, func(r devRound) int64 { return r.statuses }),
				col(rs, func(r devRound) int64 { return r.dropped }), col(rs, func(r devRound) int64 { return r.retries }))
		})
	row("POST → last status webhook", "", func(rs []devRound) string {
		return ms(col(rs, func(r devRound) time.Duration { return r.drain }))
	})
	row("CPU of herald dev, cores busy", "", func(rs []devRound) string {
		return fmt.Sprintf("%.2f", col(rs, func(r devRound) float64 { return r.cpu[devProc] }))
	})
	if _, ok := by["redis-server"]; ok {
		row("CPU of dev's redis-server, cores busy", "", func(rs []devRound) string {
			if _, ok := rs[0].cpu[devRedisProc]; !ok {
				return "-"
			}
			return fmt.Sprintf("%.2f", col(rs, func(r devRound) float64 { return r.cpu[devRedisProc] }))
		})
	}
	w("\nRounds:\n\n| store | round | accept | missing records | sends/s | max 1 s sliding (from) | max calendar s | webhooks | dropped | retried | dev CPU | s |\n")
	w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range names {
		for i, r := range by[s] {
			w("| %s | %d | %s | %d of %d | %.1f | %d (%s) | %d | %d | %d | %d | %.2f | %.1f |\n", s, i+1, ms(r.accept), r.missing, r.sampled,
				r.rate, r.worstSliding, ms(r.worstAt), r.worstCalendar, r.statuses, r.dropped, r.retries, r.cpu[devProc], r.drain.Seconds())
		}
	}
	w("\n")
	for _, s := range names {
		w("%s store: ", strings.ToUpper(s[:1])+s[1:])
		renderCPU(b, func(i int) map[string]float64 { return by[s][i].cpu }, len(by[s]))
	}
}
