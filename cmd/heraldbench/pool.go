package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/producer"
)

// poolOpts sizes the pool section (issue 14): one tenant's pool of white numbers.
type poolOpts struct {
	numbers, workers, jobs int
	mps                    float64
}

// poolRound is one round of the pool section.
type poolRound struct {
	achieved float64 // the pool's sends/s over the steady part
	ratio    float64 // achieved / (numbers × mps)
	// worstSliding and worstCalendar are the most sends of any one number in a 1 s window
	// and in a calendar second; minShare and maxShare the smallest and largest number's
	// share of the sends.
	worstSliding, worstCalendar int
	minShare, maxShare          float64
	elapsed                     time.Duration
	cpu                         map[string]float64
}

// poolFleet is the fleet file of the section: numbers white senders of o.mps each, one
// portfolio without a limit, all in the default tenant's pool.
func poolFleet(o poolOpts) (string, []string) {
	var b strings.Builder
	b.WriteString("senders:\n")
	ids := make([]string, o.numbers)
	for i := range o.numbers {
		ids[i] = fmt.Sprintf("n%02d", i+1)
		fmt.Fprintf(&b, "  - {id: %s, kind: white, phone_number_id: \"%d\", waba_id: \"900100\", token: %s, app_secret: %s, mps: %s}\n",
			ids[i], 500100000+i+1, benchToken, benchAppSecret, strconv.FormatFloat(o.mps, 'f', -1, 64))
	}
	fmt.Fprintf(&b, "tenants:\n  default: {channels: [white], senders: [%s]}\n", strings.Join(ids, ", "))
	return b.String(), ids
}

func runPoolRound(ctx context.Context, dir string, b bins, o poolOpts, round int) (poolRound, error) {
	return withStack(ctx, dir, b, []string{"-statuses", "", "-max-messages", strconv.Itoa(o.jobs * 2)},
		func(s *stack) (poolRound, error) { return poolRoundOn(ctx, s, dir, o, round) })
}

// poolRoundOn queues a backlog of bulk jobs to distinct customers, then starts o.workers
// workers with the fleet file, and reads the simulator's arrivals per business number.
func poolRoundOn(ctx context.Context, s *stack, dir string, o poolOpts, round int) (res poolRound, err error) {
	label := fmt.Sprintf("pool round %d", round)
	fleetYAML, _ := poolFleet(o)
	path := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(path, []byte(fleetYAML), 0o600); err != nil {
		return res, err
	}
	if _, err := publishTimed(ctx, s.js, label+" backlog", o.jobs, func(i int) *producer.Job {
		return orderJob("pool-"+strconv.Itoa(i), fmt.Sprintf("+7904%07d", i), "bulk", i)
	}); err != nil {
		return res, err
	}
	for range o.workers {
		if _, _, err := s.startHerald(ctx, "worker", "HERALD_CONFIG_FILE="+path, "HERALD_QUIET_HOURS=off", "HERALD_PAIR_INTERVAL=0s"); err != nil {
			return res, err
		}
	}
	before := s.cpu()
	start := time.Now()
	capacity := float64(o.numbers) * o.mps
	expected := time.Duration(float64(o.jobs) / capacity * float64(time.Second))
	if err := s.waitSent(ctx, label+" sent", int64(o.jobs), start, 3*expected+time.Minute); err != nil {
		return res, err
	}
	res.elapsed = time.Since(start)
	res.cpu = cpuShare(before, s.cpu(), res.elapsed)
	arr, err := s.arrivals(ctx)
	if err != nil {
		return res, err
	}
	byNumber := map[string][]arrival{}
	var all []arrival
	for _, a := range arr {
		if a.Channel == "white" && strings.HasPrefix(a.JobID, "pool-") {
			byNumber[a.PhoneNumberID] = append(byNumber[a.PhoneNumberID], a)
			all = append(all, a)
		}
	}
	if len(all) != o.jobs {
		return res, fmt.Errorf("simulator saw %d white sends for %d jobs", len(all), o.jobs)
	}
	if len(byNumber) != o.numbers {
		return res, fmt.Errorf("sends came from %d numbers, the pool has %d", len(byNumber), o.numbers)
	}
	res.minShare = 1
	for _, ms := range byNumber {
		sl, cal := maxPerSecond(ms)
		res.worstSliding, res.worstCalendar = max(res.worstSliding, sl), max(res.worstCalendar, cal)
		share := float64(len(ms)) / float64(len(all))
		res.minShare, res.maxShare = min(res.minShare, share), max(res.maxShare, share)
	}
	from, to := all[len(all)/10].At, all[len(all)*9/10].At
	res.achieved = float64(len(all)*8/10) / to.Sub(from).Seconds()
	res.ratio = res.achieved / capacity
	fmt.Fprintf(os.Stderr, "  %s: %.1f/s (%.3f of %.0f), worst number: %d in a sliding second, %d in a calendar second (cap %.0f); shares %.3f..%.3f\n",
		label, res.achieved, res.ratio, capacity, res.worstSliding, res.worstCalendar, o.mps, res.minShare, res.maxShare)
	return res, nil
}

func renderPool(b *strings.Builder, o options, rs []poolRound) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p := o.pool
	capacity := float64(p.numbers) * p.mps
	ratio := col(rs, func(r poolRound) float64 { return r.ratio })
	worstSliding, worstCalendar := 0, 0
	for _, r := range rs {
		worstSliding, worstCalendar = max(worstSliding, r.worstSliding), max(worstCalendar, r.worstCalendar)
	}
	w("## Sender pool (issue 14)\n\n")
	w("One tenant's pool of %d white numbers at %.0f messages/s each (a fleet file, HERALD_CONFIG_FILE), %d `herald worker`\n", p.numbers, p.mps, p.workers)
	w("processes, a backlog of %d bulk jobs to distinct customers queued before the workers start. The pool's capacity is\n", p.jobs)
	w("%.0f/s; the limiter reserves 98.5%% of each number's cap, so 0.985 is the most a pool can show. Figures come from the\n", capacity)
	w("simulator's log of arrivals per business number; the steady part is between the 10th and the 90th percentile arrival.\n\n")
	w("| figure | median | goal |\n| --- | --- | --- |\n")
	w("| the pool's rate over the steady part, sends/s | %.1f | |\n", col(rs, func(r poolRound) float64 { return r.achieved }))
	w("| fraction of the pool's %.0f/s | %.3f | ≥ 0.95: %s |\n", capacity, ratio, goal(ratio >= 0.95))
	w("| worst number, most sends in any 1 s window (sliding) | %d (worst round %d) | ≤ %.0f: %s |\n",
		col(rs, func(r poolRound) int { return r.worstSliding }), worstSliding, p.mps, goal(float64(worstSliding) <= p.mps))
	w("| worst number, most sends in one calendar second | %d (worst round %d) | ≤ %.0f: %s |\n",
		col(rs, func(r poolRound) int { return r.worstCalendar }), worstCalendar, p.mps, goal(float64(worstCalendar) <= p.mps))
	w("| smallest and largest number's share of the sends | %.3f / %.3f | about %.3f each |\n\n",
		col(rs, func(r poolRound) float64 { return r.minShare }), col(rs, func(r poolRound) float64 { return r.maxShare }), 1/float64(p.numbers))
	w("Rounds:\n\n| round | sends/s | fraction | worst sliding s | worst calendar s | shares | s |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for i, r := range rs {
		w("| %d | %.1f | %.3f | %d | %d | %.3f..%.3f | %.1f |\n", i+1, r.achieved, r.ratio, r.worstSliding, r.worstCalendar, r.minShare, r.maxShare, r.elapsed.Seconds())
	}
	w("\n")
	renderCPU(b, func(i int) map[string]float64 { return rs[i].cpu }, len(rs))
}
