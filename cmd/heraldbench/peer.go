package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// peerOpts sizes the peer run of the e2e section (issue 16).
type peerOpts struct {
	off         bool // -no-peer: no peer run
	concurrency int  // the asynq server's concurrency
}

// peerRound is the peer's run in one e2e round: the asynq pipeline (cmd/heraldbench/peer) on
// the same redis-server (database 1) and simulator, right after Herald's run.
type peerRound struct {
	rate    float64 // first peer send → last, notifications/s (the simulator's arrivals)
	steady  float64 // between the 10th and 90th percentile arrival
	enqueue float64 // tasks enqueued per second before the server started
	startup time.Duration
	elapsed time.Duration // process start → last send seen by waitSent
	// cpu is each process's share of a core while the peer worked; cpuPerJob is all
	// processes' CPU per notification, enqueue included (as Herald's includes its producer).
	cpu       map[string]float64
	cpuPerJob float64         // µs
	body      json.RawMessage // the request body of job sampleJob
}

// peerDB is the Redis database of the peer's tasks, limits and statuses, apart from
// Herald's (database 0) on the same server.
const peerDB = 1

// peerDir is the peer module's directory, cmd/heraldbench/peer of the module heraldbench runs
// in (the current directory must be inside it, as for the other builds).
func peerDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("peer: run heraldbench inside the Herald module (go env GOMOD is empty)")
	}
	return filepath.Join(filepath.Dir(mod), "cmd", "heraldbench", "peer"), nil
}

// buildPeer builds the peer module into dir. It is a module of its own, so that Herald never
// depends on asynq; GOWORK=off keeps a workspace from pulling it into Herald's build list.
func buildPeer(ctx context.Context, dir string) (string, error) {
	src, err := peerDir(ctx)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "peer")
	cmd := exec.CommandContext(ctx, "go", "build", "-C", src, "-o", out, ".")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build -C %s: %w: %s", src, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// enqueueReport is the line `peer enqueue` prints (peer.EnqueueReport).
type enqueueReport struct {
	Jobs       int     `json:"jobs"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// peerJobPrefix names the peer's jobs in the simulator's log, apart from Herald's e2e- ones.
const peerJobPrefix = "peer-"

// peerRun runs the peer on the stack s, alone (no herald worker running), and sets round.peer:
// `peer enqueue` puts n tasks in Redis and exits, then `peer work` processes them until the
// simulator has accepted n more sends.
func peerRun(ctx context.Context, s *stack, n int, o peerOpts, label string, round *e2eRound) error {
	res, err := peerOn(ctx, s, n, o, label)
	if err != nil {
		return err
	}
	round.peer = &res
	return nil
}

func peerOn(ctx context.Context, s *stack, n int, o peerOpts, label string) (res peerRound, err error) {
	redisURL := s.redis.URL + "/" + strconv.Itoa(peerDB)
	if err := s.markSent(ctx); err != nil {
		return res, err
	}

	fmt.Fprintf(os.Stderr, "%s: peer enqueue of %d asynq tasks\n", label, n)
	before := s.cpu()
	enqStart := time.Now()
	p, err := s.env.Start("peer-enqueue", s.bins.peer, []string{"enqueue", "-redis", redisURL, "-jobs", strconv.Itoa(n), "-prefix", peerJobPrefix}, nil)
	if err != nil {
		return res, err
	}
	if err := p.Wait(ctx); err != nil {
		return res, fmt.Errorf("peer enqueue: %w\n%s", err, p.Tail(20))
	}
	p.Stop(0) // it was meant to end: checkAlive must not count it as a death
	enqEl := time.Since(enqStart)
	rep, err := readEnqueueReport(p.LogPath)
	if err != nil {
		return res, err
	}
	if rep.Jobs != n {
		return res, fmt.Errorf("peer enqueue: reported %d tasks, want %d", rep.Jobs, n)
	}
	res.enqueue = float64(n) / rep.Seconds
	// The enqueue process has exited, so its own CPU comes from its report; the servers' from
	// the snapshots around it.
	enqCPU := rep.CPUSeconds + allCPU(cpuShare(before, s.cpu(), enqEl))*enqEl.Seconds()
	fmt.Fprintf(os.Stderr, "  peer enqueue: %.0f tasks/s\n", res.enqueue)

	before = s.cpu()
	start := time.Now()
	w, err := s.env.Start("peer-work", s.bins.peer, []string{"work", "-redis", redisURL, "-sim", s.simURL, "-phone-id", benchPhoneID,
		"-concurrency", strconv.Itoa(o.concurrency)}, []string{"PEER_WHITE_TOKEN=" + benchToken})
	if err != nil {
		return res, err
	}
	if err := s.waitSent(ctx, label+" peer sent", int64(n), start, 15*time.Minute); err != nil {
		return res, err
	}
	res.elapsed = time.Since(start)
	res.cpu = cpuShare(before, s.cpu(), res.elapsed)
	res.cpuPerJob = (allCPU(res.cpu)*res.elapsed.Seconds() + enqCPU) / float64(n) * 1e6
	w.Stop(15 * time.Second)

	arr, err := s.arrivals(ctx)
	if err != nil {
		return res, err
	}
	mine := peerArrivals(arr, n)
	if len(mine) != n {
		return res, fmt.Errorf("peer: simulator log holds %d distinct peer jobs of %d", len(mine), n)
	}
	first, last := mine[0].At, mine[len(mine)-1].At
	res.startup = first.Sub(start)
	res.rate = float64(n) / last.Sub(first).Seconds()
	res.steady = steadyRate(mine)
	if err := checkPeerStatuses(ctx, redisURL, n); err != nil {
		return res, err
	}
	if res.body, err = s.sentBody(ctx, peerJobPrefix+strconv.Itoa(sampleJob), sampleJob); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "  peer: %.0f notifications/s (steady %.0f/s), %.0f µs CPU per notification\n", res.rate, res.steady, res.cpuPerJob)
	return res, nil
}

// sampleJob is the job whose request body the peer's must equal Herald's (but for the id).
const sampleJob = 7

// allCPU sums the processes' shares of a cpuShare result (not the whole machine's).
func allCPU(shares map[string]float64) float64 {
	all := 0.0
	for name, c := range shares {
		if name != machineKey {
			all += c
		}
	}
	return all
}

// peerArrivals keeps the first arrival of each of the n peer jobs in arr (sorted by time).
func peerArrivals(arr []arrival, n int) []arrival {
	seen := make([]bool, n)
	var out []arrival
	for _, a := range arr {
		rest, ok := strings.CutPrefix(a.JobID, peerJobPrefix)
		if !ok {
			continue
		}
		k, err := strconv.Atoi(rest)
		if err != nil || k < 0 || k >= n || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, a)
	}
	return out
}

func readEnqueueReport(log string) (enqueueReport, error) {
	var rep enqueueReport
	data, err := os.ReadFile(log)
	if err != nil {
		return rep, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil || rep.Seconds <= 0 {
		return rep, fmt.Errorf("peer enqueue: no report in its output (%v): %s", err, strings.Join(lines, "\n"))
	}
	return rep, nil
}

// checkPeerStatuses checks that the peer wrote a status hash of "sent" for each of its n jobs.
func checkPeerStatuses(ctx context.Context, url string, n int) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	count := 0
	it := rdb.Scan(ctx, 0, "status:"+peerJobPrefix+"*", 1000).Iterator()
	for it.Next(ctx) {
		count++
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("peer statuses: %w", err)
	}
	st, err := rdb.HGet(ctx, "status:"+peerJobPrefix+strconv.Itoa(sampleJob), "status").Result()
	if err != nil {
		return fmt.Errorf("peer status of job %d: %w", sampleJob, err)
	}
	if count != n || st != "sent" {
		return fmt.Errorf("peer statuses: %d status hashes of %d, job %d is %q (want sent)", count, n, sampleJob, st)
	}
	return nil
}

// markSent puts the sends the simulator has accepted so far behind: waitSent and accepted
// count from here on.
func (s *stack) markSent(ctx context.Context) error {
	n, err := s.accepted(ctx)
	s.sentBefore += n
	return err
}

// sentBody is the request body the simulator recorded for job id, job i of a run (so sent to
// the recipient e2eJob gives it).
func (s *stack) sentBody(ctx context.Context, id string, i int) (json.RawMessage, error) {
	var msgs []struct {
		JobID string          `json:"job_id"`
		Body  json.RawMessage `json:"body"`
	}
	to := strings.TrimPrefix(e2eJob("")(i).To, "+")
	if err := getJSON(ctx, s.simURL+"/sim/messages?to="+to, func(d *json.Decoder) error { return d.Decode(&msgs) }); err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.JobID == id {
			return m.Body, nil
		}
	}
	return nil, fmt.Errorf("the simulator has no send of job %s to %s", id, to)
}

// sameBody checks that two Cloud API bodies are the same JSON but for
// biz_opaque_callback_data (each names its own job).
func sameBody(a, b json.RawMessage) error {
	var x, y map[string]any
	if err := json.Unmarshal(a, &x); err != nil {
		return fmt.Errorf("first body: %w", err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return fmt.Errorf("second body: %w", err)
	}
	delete(x, "biz_opaque_callback_data")
	delete(y, "biz_opaque_callback_data")
	if !reflect.DeepEqual(x, y) {
		return fmt.Errorf("%s differs from %s", a, b)
	}
	return nil
}
