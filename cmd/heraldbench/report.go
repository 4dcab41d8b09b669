package main

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func median[T int | int64 | uint64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func col[R any, T int | int64 | uint64 | float64 | time.Duration](rs []R, f func(R) T) T {
	xs := make([]T, 0, len(rs))
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return median(xs)
}

func mib(b int64) string { return strconv.FormatInt(b>>20, 10) + " MiB" }

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func goal(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

// command is how this run was started, as it would be typed.
func command() string {
	return strings.TrimSpace("go run ./cmd/heraldbench " + strings.Join(os.Args[1:], " "))
}

func render(o options, res *results, took time.Duration) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	w("Written by `make bench` on %s: `%s` (%s in all).\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), command(), took.Round(time.Second))
	w("Machine: %s, %d cores (`nproc`), %s, %s/%s, %s. The machine is shared and noisy: figures are medians of %d rounds,\n",
		cpuModel(), runtime.NumCPU(), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version(), o.rounds)
	w("and each ratio compares two measurements taken side by side in the same round on the same servers.\n")
	w("Every server is a real process on loopback: nats-server (built from the version in go.mod, JetStream with file storage),\n")
	w("redis-server, and the herald binary as `herald worker`, `herald api` and `herald sim`; each round starts them afresh.\n")
	w("CPU columns are each process's CPU time over the wall time of the run (1.00 = one core busy all the time; %d cores in all).\n\n", runtime.NumCPU())
	if o.quick {
		w("**This is a -quick run: small sizes, one round. Its figures check the program, they are not the benchmark.**\n\n")
	}
	if res.e2e != nil {
		renderE2E(&b, o, res)
	}
	if res.pacing != nil {
		renderPacing(&b, o, res.pacing)
	}
	if res.pool != nil {
		renderPool(&b, o, res.pool)
	}
	if res.imports != nil {
		renderImport(&b, o, res)
	}
	if res.dev != nil {
		renderDev(&b, o, res.dev, res.devNote)
	}
	if res.memory != nil {
		renderMemory(&b, o, res.memory)
	}
	return b.String()
}

func renderE2E(b *strings.Builder, o options, res *results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	rs := res.e2e
	her := col(rs, func(r e2eRound) float64 { return r.herald })
	raw := col(rs, func(r e2eRound) float64 { return r.raw })
	ratio := col(rs, func(r e2eRound) float64 { return r.herald / r.raw })
	w("## End to end (issue 7)\n\n")
	w("%d jobs per round, published by the producer (async, 4096 in flight) from the benchmark process while %d `herald worker`\n", o.e2e.jobs, o.e2e.workers)
	w("processes (HERALD_WORKER_CONCURRENCY=%d, HERALD_WHITE_MPS=1000000, HERALD_PAIR_INTERVAL=0, HERALD_QUIET_HOURS=off, default\n", o.e2e.concurrency)
	w("cascade `white,sms`, so each send also parks its fallback deadline in a JetStream schedule) consume them and call the\n")
	w("`herald sim` process over HTTP. The simulator sends no status webhooks in this section: nobody would receive them (no\n")
	w("`herald api` runs here) and on 2 cores their traffic would be measured instead of the send path. Latency is the\n")
	w("simulator's arrival time of each job id minus the time its publish chunk (512 jobs) was handed to the producer.\n")
	w("Raw is JetStream alone on the same nats-server, just before: async publish of %d job-sized messages to a work-queue\n", o.e2e.jobs)
	w("file stream while a pull consumer acks them. The floor, measured next, is the least any dispatcher must do per\n")
	w("notification with these parts: the same number of job messages published (a Nats-Msg-Id each) to a work-queue\n")
	w("file stream while %d goroutines of the benchmark process take each one, decode it, make Herald's own Cloud API call\n", o.e2e.workers*o.e2e.concurrency)
	w("to the same simulator and ack it, in %d groups like the worker processes (a NATS connection, a pull and an HTTP pool\n", o.e2e.workers)
	w("each): no claim, no rate limit, no status record, no event, no delivery deadline, no process boundary.\n\n")
	peers := peerRounds(rs)
	if len(peers) > 0 {
		w("The peer (issue 16), measured in each round on the same servers, alone (Herald goes first in odd rounds, the peer in\n")
		w("even ones), is the pipeline a Go team would build instead: the module in `cmd/heraldbench/peer` (its own go.mod:\n")
		w("Herald does not depend on asynq). `peer enqueue` puts the same %d jobs as asynq tasks (a task id each) in database %d\n", o.e2e.jobs, peerDB)
		w("of the same redis-server and exits; then one `peer work` process, an asynq server with concurrency %d, takes each\n", o.e2e.peer.concurrency)
		w("task, checks a redis_rate limit of one send per 6 s to its recipient, POSTs the same Cloud API body as Herald (the\n")
		w("bodies of one job are checked equal, but for the job id) with the bearer token to the same simulator, and HSETs a\n")
		w("status hash (all %d are checked). Every recipient is distinct, so neither the peer's limit nor Herald's rate-limit\n", o.e2e.jobs)
		w("slot holds a job back; each costs its Redis call. The peer's rate runs from its first send to its last (the\n")
		w("simulator's arrivals), so its enqueue, done before, is not in it, while Herald's producer publishes as its workers\n")
		w("run; the peer's CPU per notification includes the enqueue (all processes, as Herald's includes its producer).\n\n")
	}
	w("| figure | median | goal |\n| --- | --- | --- |\n")
	w("| Herald notifications/s (first publish → last provider call) | %.0f | ≥ 20000: %s |\n", her, goal(her >= 20000))
	w("| Herald notifications/s, steady state (10th → 90th percentile arrival) | %.0f | |\n", col(rs, func(r e2eRound) float64 { return r.steady }))
	w("| producer publish rate while the workers consume, jobs/s | %.0f | |\n", col(rs, func(r e2eRound) float64 { return r.publish }))
	w("| raw JetStream publish+consume msgs/s | %.0f | |\n", raw)
	w("| ratio Herald / raw | %.3f | ≥ 0.3: %s |\n", ratio, goal(ratio >= 0.3))
	floor := col(rs, func(r e2eRound) float64 { return r.floor.rate })
	floorRatio := col(rs, func(r e2eRound) float64 { return r.floor.rate / r.raw })
	w("| floor: JetStream + one Cloud API call per job, no guarantees, notifications/s | %.0f | |\n", floor)
	w("| ratio floor / raw (the most any design calling the provider once per job reaches here) | %.3f | |\n", floorRatio)
	herFloor := col(rs, func(r e2eRound) float64 { return r.herald / r.floor.rate })
	w("| ratio Herald / floor (what the guarantees cost) | %.3f | ≥ 0.6: %s |\n", herFloor, goal(herFloor >= 0.6))
	herCPU := col(rs, func(r e2eRound) float64 { return heraldCPUPerJob(r, o.e2e.jobs) })
	floorCPU := col(rs, func(r e2eRound) float64 { return float64(r.floor.cpuPerJob.Microseconds()) })
	if len(peers) > 0 {
		w("| peer (asynq + redis_rate, concurrency %d) notifications/s, first → last provider call | %.0f | |\n", o.e2e.peer.concurrency, col(peers, func(p *peerRound) float64 { return p.rate }))
		w("| peer enqueue (asynq client, 32 goroutines, before the server starts), tasks/s | %.0f | |\n", col(peers, func(p *peerRound) float64 { return p.enqueue }))
		herPeer := col(rs, herPeerRatio)
		w("| ratio Herald / peer | %.3f | ≥ 2.0: %s |\n", herPeer, goal(herPeer >= 2))
		w("| CPU per notification: floor / Herald / peer, µs | %.0f / %.0f / %.0f | Herald ≤ 200: %s |\n", floorCPU, herCPU,
			col(peers, func(p *peerRound) float64 { return p.cpuPerJob }), goal(herCPU <= 200))
	} else {
		w("| CPU per notification: floor / Herald, µs | %.0f / %.0f | Herald ≤ 200: %s |\n", floorCPU, herCPU, goal(herCPU <= 200))
	}
	w("| publish → provider call latency p50 | %s | |\n", ms(col(rs, func(r e2eRound) time.Duration { return r.p50 })))
	w("| publish → provider call latency p99 | %s | |\n", ms(col(rs, func(r e2eRound) time.Duration { return r.p99 })))
	w("| worker peak RSS (VmHWM, the larger of the workers) | %s | |\n", mib(col(rs, func(r e2eRound) int64 { return r.workerRSS })))
	w("| JetStream deliveries per job | %.3f | |\n", col(rs, func(r e2eRound) float64 { return r.deliveries }))
	if bl := res.backlog; bl != nil {
		w("| worker peak RSS with %d jobs waiting | %s | < 64 MiB: %s |\n", bl.jobs, mib(bl.workerRSS), goal(bl.workerRSS < 64<<20))
	}
	w("\nLatency includes the time a job waits in the backlog: every job is published at once, as fast as the producer\n")
	w("can, so p99 is close to the drain time of the whole batch, not the latency of a lone job.\n\n")
	if bl := res.backlog; bl != nil {
		w("Backlog (measured once): %d jobs published with no worker running (%.0f jobs/s), then one worker with\n", bl.jobs, bl.publish)
		w("HERALD_WHITE_MPS=200 (so that it cannot drain them) ran for %s and sent %d; its VmHWM is the figure above.\n\n", bl.run, bl.sent)
	}
	w("Rounds:\n\n| round | Herald/s | steady/s | raw/s | ratio | floor/s | floor/raw | Herald/floor | peer/s | Herald/peer | floor pull restarts | p50 | p99 | worker RSS | s |\n")
	w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, r := range rs {
		peer, herPeer := "-", "-"
		if r.peer != nil {
			peer, herPeer = strconv.FormatFloat(r.peer.rate, 'f', 0, 64), strconv.FormatFloat(herPeerRatio(r), 'f', 3, 64)
		}
		w("| %d | %.0f | %.0f | %.0f | %.3f | %.0f | %.3f | %.3f | %s | %s | %d | %s | %s | %s | %.1f |\n", i+1, r.herald, r.steady, r.raw, r.herald/r.raw,
			r.floor.rate, r.floor.rate/r.raw, r.herald/r.floor.rate, peer, herPeer, r.floor.restarts, ms(r.p50), ms(r.p99), mib(r.workerRSS), r.elapsed.Seconds())
	}
	w("\n")
	renderCPU(b, func(i int) map[string]float64 { return rs[i].cpu }, len(rs))
	renderCPUPerJob(b, rs, o.e2e.jobs)
	renderPeer(b, peers)
}

// peerRounds are the rounds' peer runs; empty when the peer did not run.
func peerRounds(rs []e2eRound) []*peerRound {
	var out []*peerRound
	for _, r := range rs {
		if r.peer != nil {
			out = append(out, r.peer)
		}
	}
	return out
}

// herPeerRatio is round r's Herald / peer rate (0 without a peer run).
func herPeerRatio(r e2eRound) float64 {
	if r.peer == nil || r.peer.rate == 0 {
		return 0
	}
	return r.herald / r.peer.rate
}

// renderPeer writes the peer's rounds and its CPU per process while it worked.
func renderPeer(b *strings.Builder, ps []*peerRound) {
	if len(ps) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("Peer rounds:\n\n| round | peer/s | steady/s | enqueue tasks/s | start → first send | CPU µs per notification | s |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for i, p := range ps {
		w("| %d | %.0f | %.0f | %.0f | %s | %.0f | %.1f |\n", i+1, p.rate, p.steady, p.enqueue, ms(p.startup), p.cpuPerJob, p.elapsed.Seconds())
	}
	w("\nPeer, while it worked (enqueue not included): ")
	renderCPU(b, func(i int) map[string]float64 { return ps[i].cpu }, len(ps))
}

// heraldCPUPerJob is the CPU time all processes spent per job in round r's Herald run, µs.
func heraldCPUPerJob(r e2eRound, jobs int) float64 {
	return allCPU(r.cpu) * r.elapsed.Seconds() / float64(jobs) * 1e6
}

// renderCPUPerJob turns the CPU shares into CPU time per job: what a job costs each process,
// whatever else ran on the machine, and so the throughput the cores could give at best.
func renderCPUPerJob(b *strings.Builder, rs []e2eRound, jobs int) {
	per := map[string][]float64{}
	for _, r := range rs {
		for name, share := range r.cpu {
			if name != machineKey {
				per[name] = append(per[name], share*r.elapsed.Seconds()/float64(jobs)*1e6)
			}
		}
	}
	if len(per) == 0 {
		return
	}
	fmt.Fprintf(b, "CPU time per job (median over rounds):\n\n| process | µs per job |\n| --- | --- |\n")
	total := 0.0
	for _, name := range slices.Sorted(maps.Keys(per)) {
		m := median(per[name])
		total += m
		fmt.Fprintf(b, "| %s | %.0f |\n", name, m)
	}
	fmt.Fprintf(b, "| all | %.0f |\n\n", total)
	fmt.Fprintf(b, "At %.0f µs of CPU per job in all, %d cores could send at most %.0f jobs/s if nothing else ran on them.\n",
		total, runtime.NumCPU(), float64(runtime.NumCPU())*1e6/total)
	// The servers' share is the floor the design sets: every job is stored, delivered and
	// acked, its status event and its delivery deadline are stored (JetStream), and its slot,
	// claim and outcome are Lua scripts (Redis).
	servers := 0.0
	for name, v := range per {
		if strings.HasPrefix(name, "nats-server") || strings.HasPrefix(name, "redis-server") {
			servers += median(v)
		}
	}
	if servers > 0 {
		fmt.Fprintf(b, "nats-server and redis-server alone spend %.0f µs per job (the job stored, delivered and acked; its status event\n", servers)
		fmt.Fprintf(b, "and delivery deadline stored; its rate-limit slot, claim and outcome run as Lua scripts): even if the workers, the\n")
		fmt.Fprintf(b, "simulator and the producer cost nothing, %d cores could serve at most %.0f jobs/s.\n", runtime.NumCPU(), float64(runtime.NumCPU())*1e6/servers)
	}
	fmt.Fprintln(b)
}

func renderCPU(b *strings.Builder, cpu func(i int) map[string]float64, n int) {
	names := map[string]bool{}
	for i := range n {
		for k := range cpu(i) {
			names[k] = true
		}
	}
	if len(names) == 0 {
		return
	}
	fmt.Fprintf(b, "CPU per process (median over rounds, cores busy):\n\n| process | CPU |\n| --- | --- |\n")
	type pc struct {
		name string
		v    float64
	}
	var rows []pc
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if name == machineKey {
			continue
		}
		var xs []float64
		for i := range n {
			xs = append(xs, cpu(i)[name])
		}
		rows = append(rows, pc{name, median(xs)})
	}
	slices.SortStableFunc(rows, func(a, b pc) int { return -cmpF(a.v, b.v) })
	total := 0.0
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %.2f |\n", r.name, r.v)
		total += r.v
	}
	fmt.Fprintf(b, "| all of the above | %.2f of %d |\n", total, runtime.NumCPU())
	if names[machineKey] {
		var xs []float64
		for i := range n {
			xs = append(xs, cpu(i)[machineKey])
		}
		m := median(xs)
		fmt.Fprintf(b, "| the whole machine (other users' work: %.2f) | %.2f |\n", max(0, m-total), m)
	}
	fmt.Fprintf(b, "\n")
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func renderPacing(b *strings.Builder, o options, rs []pacingRound) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p := o.pacing
	ratio := col(rs, func(r pacingRound) float64 { return r.ratio })
	sliding := col(rs, func(r pacingRound) int { return r.maxSliding })
	calendar := col(rs, func(r pacingRound) int { return r.maxCalendar })
	worstSliding, worstCalendar, worstViol := 0, 0, 0
	for _, r := range rs {
		worstSliding, worstCalendar, worstViol = max(worstSliding, r.maxSliding), max(worstCalendar, r.maxCalendar), max(worstViol, r.pairViolations)
	}
	viol := col(rs, func(r pacingRound) int { return r.pairViolations })
	del := col(rs, func(r pacingRound) float64 { return r.deliveries })
	txn99 := col(rs, func(r pacingRound) time.Duration { return r.txnP99 })
	w("## Pacing (issue 3)\n\n")
	w("%d `herald worker` processes share one sender: HERALD_WHITE_MPS=%.0f, HERALD_PAIR_INTERVAL=%s, HERALD_QUIET_HOURS=off. A\n", p.workers, p.mps, p.pairInterval)
	w("backlog of %d bulk jobs is queued before the workers start, %d jobs in a row to each recipient (so the pair interval\n", p.bulk, p.repeat)
	w("holds most of them back and the limiter has to find other work); transactional jobs, one recipient each, arrive at\n")
	w("%.0f/s on top until the simulator has seen as many sends as there are bulk jobs. The simulator posts `sent` and\n", p.txnPerSec)
	w("`delivered` webhooks (200 ms apart) to a `herald api` process, which cancels each job's fallback deadline. Every figure\n")
	w("comes from the simulator's own log of arrival times (all white sends, bulk and transactional share the number).\n")
	w("The steady part is between the 10th and the 90th percentile bulk arrival.\n\n")
	w("| figure | median | goal |\n| --- | --- | --- |\n")
	w("| achieved rate over the steady part, sends/s | %.1f | |\n", col(rs, func(r pacingRound) float64 { return r.achieved }))
	w("| achieved / configured | %.3f | ≥ 0.97: %s |\n", ratio, goal(ratio >= 0.97))
	w("| highest count in any 1 s window (sliding) | %d (worst round %d) | ≤ %.0f: %s |\n", sliding, worstSliding, p.mps, goal(float64(worstSliding) <= p.mps))
	w("| highest count in one calendar second | %d (worst round %d) | ≤ %.0f: %s |\n", calendar, worstCalendar, p.mps, goal(float64(worstCalendar) <= p.mps))
	w("| pair-interval violations (two sends to one recipient < %s apart) | %d (worst round %d) | 0: %s |\n", p.pairInterval, viol, worstViol, goal(worstViol == 0))
	w("| of which closer than %s (more than %s of HTTP jitter) | %d | |\n", p.pairInterval-pairJitter, pairJitter, col(rs, func(r pacingRound) int { return r.pairBeyondJitter }))
	w("| smallest gap between two sends to one recipient | %s | |\n", ms(col(rs, func(r pacingRound) time.Duration { return r.minPairGap })))
	w("| JetStream deliveries per sent job (Delivered.Consumer / jobs) | %.3f | < 1.2: %s |\n", del, goal(del < 1.2))
	w("| transactional publish → provider call p50 | %s | |\n", ms(col(rs, func(r pacingRound) time.Duration { return r.txnP50 })))
	w("| transactional publish → provider call p99 | %s | < 500ms: %s |\n\n", ms(txn99), goal(txn99 < 500*time.Millisecond))
	if ratio < 0.97 && p.repeat > 1 {
		w("Why the rate falls short: %d of every %d bulk jobs must wait for their recipient's pair interval (%s, then %s).\n",
			p.repeat-1, p.repeat, p.pairInterval, p.pairInterval*time.Duration(p.repeat-1))
		w("The worker sleeps such a wait in the job's slot (waits up to a third of the ack wait are slept, longer ones parked in a\n")
		w("schedule), so %d workers × HERALD_WORKER_CONCURRENCY (default 256) slots full of waiting jobs bound the rate at about\n", p.workers)
		w("slots / mean wait, whatever HERALD_WHITE_MPS allows. `-pacing-repeat 1` (no repeated recipient) measures the limiter alone.\n\n")
	}
	w("The arrival times are the simulator's clock when each request reached it, so a gap between two sends can differ from\n")
	w("the limiter's (Redis TIME) by the jitter of the HTTP path.\n\n")
	w("Rounds:\n\n| round | sends/s | ratio | max 1 s sliding | max calendar s | pair violations | deliveries/job | txn jobs | txn p99 | s |\n")
	w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, r := range rs {
		w("| %d | %.1f | %.3f | %d | %d | %d | %.3f | %d | %s | %.1f |\n", i+1, r.achieved, r.ratio, r.maxSliding, r.maxCalendar, r.pairViolations, r.deliveries, r.txn, ms(r.txnP99), r.elapsed.Seconds())
	}
	w("\n")
	renderCPU(b, func(i int) map[string]float64 { return rs[i].cpu }, len(rs))
}

func renderImport(b *strings.Builder, o options, res *results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	rs := res.imports
	rows := col(rs, func(r importRound) float64 { return r.rows })
	raw := col(rs, func(r importRound) float64 { return r.raw })
	ratio := col(rs, func(r importRound) float64 { return r.rows / r.raw })
	w("## Import (issue 6)\n\n")
	w("%d generated rows (`importer.WriteBenchCSV`: phone, name, order) imported as a fresh campaign with two mapped\n", o.importRows)
	w("parameters into a nats-server process, by `importer.Run` inside the benchmark process (as `importer.Bench` runs it);\n")
	w("raw is `importer.RawRate` on the same server in the same round: async publishes of a job-sized message to a stream\n")
	w("configured like HERALD_JOBS, with the same number in flight. Raw with ids (`importer.RawRateWithIDs`, measured right\n")
	w("after the import) adds a distinct `Nats-Msg-Id` to every message, as the import must (it is what makes a re-run queue\n")
	w("nobody twice): the server's duplicate tracking is part of the work then. The goal is checked against plain raw.\n")
	w("The queued jobs are purged after each round.\n\n")
	rawIDs := col(rs, func(r importRound) float64 { return r.rawIDs })
	ratioIDs := col(rs, func(r importRound) float64 { return r.rows / r.rawIDs })
	w("| figure | median | goal |\n| --- | --- | --- |\n")
	w("| import rows/s | %.0f | |\n", rows)
	w("| raw JetStream async publish msgs/s | %.0f | |\n", raw)
	w("| ratio import / raw | %.3f | ≥ 0.6: %s |\n", ratio, goal(ratio >= 0.6))
	w("| raw with a Nats-Msg-Id per message, msgs/s | %.0f | |\n", rawIDs)
	w("| ratio import / raw with ids | %.3f | |\n", ratioIDs)
	w("| peak Go heap of the benchmark process during the import | %s | |\n", mib(int64(col(rs, func(r importRound) uint64 { return r.peakHeap }))))
	if res.cli.ran {
		var cli []importRound
		for _, r := range rs {
			if r.cliRows > 0 {
				cli = append(cli, r)
			}
		}
		rss := col(cli, func(r importRound) int64 { return r.cliRSS })
		w("| `herald import` (child process) rows/s, wall time including start-up | %.0f | |\n", col(cli, func(r importRound) float64 { return r.cliRows }))
		w("| `herald import` peak RSS (its VmHWM, sampled while it runs) | %s | < 100 MB: %s |\n\n", mib(rss), goal(rss < 100_000_000))
	} else {
		w("\n`herald import` was not measured: %s. The importer's memory goal (peak RSS < 100 MB) is therefore\n", res.cli.reason)
		w("not checked here; the peak Go heap above is the in-process figure.\n\n")
	}
	w("Rounds:\n\n| round | rows/s | raw/s | ratio | raw with ids/s | ratio | peak heap | herald import rows/s | herald import RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, r := range rs {
		cliRows, cliRSS := "-", "-"
		if r.cliRows > 0 {
			cliRows, cliRSS = strconv.FormatFloat(r.cliRows, 'f', 0, 64), mib(r.cliRSS)
		}
		w("| %d | %.0f | %.0f | %.3f | %.0f | %.3f | %s | %s | %s |\n", i+1, r.rows, r.raw, r.rows/r.raw, r.rawIDs, r.rows/r.rawIDs,
			mib(int64(r.peakHeap)), cliRows, cliRSS)
	}
	w("\n")
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
	return "RAM unknown"
}
