package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-notify/herald/internal/benchenv"
	"github.com/herald-notify/herald/producer"
)

// pacingOpts sizes the pacing section (issue 3).
type pacingOpts struct {
	bulk, workers int
	mps           float64
	txnPerSec     float64
	pairInterval  time.Duration
	// repeat is how many consecutive bulk jobs go to one recipient, so the pair interval bites.
	repeat int
}

// pacingRound is one round of the pacing section.
type pacingRound struct {
	achieved       float64 // sends/s over the steady part
	ratio          float64 // achieved / configured
	maxSliding     int     // most sends in any 1 s window
	maxCalendar    int     // most sends in one calendar second
	pairViolations int
	// pairBeyondJitter counts violations by more than pairJitter: not explained by the HTTP
	// path between the limiter's decision and the simulator's clock.
	pairBeyondJitter int
	minPairGap       time.Duration
	deliveries       float64 // consumer deliveries per job
	txn              int
	txnP50, txnP99   time.Duration
	elapsed          time.Duration
	cpu              map[string]float64
}

func runPacingRound(ctx context.Context, dir string, b bins, o pacingOpts, round int) (pacingRound, error) {
	// The simulator reports sent and delivered to a `herald api` process, as a provider does:
	// the delivered webhook cancels each job's fallback deadline.
	apiPort, err := benchenv.FreePort()
	if err != nil {
		return pacingRound{}, err
	}
	apiURL := "http://127.0.0.1:" + strconv.Itoa(apiPort)
	return withStack(ctx, dir, b, []string{"-webhook-url", apiURL + "/webhooks/whatsapp", "-app-secret", benchAppSecret,
		"-status-delay", "200ms", "-max-messages", strconv.Itoa(o.bulk * 2)},
		func(s *stack) (pacingRound, error) { return pacingRoundOn(ctx, s, o, round, apiPort) })
}

// pacingRoundOn is round round of the pacing section on the fresh stack s, whose simulator
// sends its status webhooks to a `herald api` on apiPort.
func pacingRoundOn(ctx context.Context, s *stack, o pacingOpts, round, apiPort int) (res pacingRound, err error) {
	apiURL := "http://127.0.0.1:" + strconv.Itoa(apiPort)
	label := fmt.Sprintf("pacing round %d", round)
	if _, err := s.env.StartHerald(ctx, s.bins.herald, "api", nil, s.heraldEnv(apiPort), apiURL+"/readyz"); err != nil {
		return res, err
	}

	// The bulk backlog is queued before any worker runs: recipient k gets o.repeat jobs in a row.
	if _, err := publishTimed(ctx, s.js, label+" bulk backlog", o.bulk, func(i int) *producer.Job {
		return orderJob("bulk-"+strconv.Itoa(i), fmt.Sprintf("+7901%07d", i/o.repeat), "bulk", i)
	}); err != nil {
		return res, err
	}
	env := []string{"HERALD_WHITE_MPS=" + strconv.FormatFloat(o.mps, 'f', -1, 64), "HERALD_PAIR_INTERVAL=" + o.pairInterval.String(),
		"HERALD_QUIET_HOURS=off"}
	for range o.workers {
		if _, _, err := s.startHerald(ctx, "worker", env...); err != nil {
			return res, err
		}
	}
	before := s.cpu()
	start := time.Now()

	// Transactional jobs arrive at o.txnPerSec, each to a recipient of its own, until the
	// simulator has seen as many sends as there are bulk jobs (the backlog is then nearly gone).
	var (
		mu       sync.Mutex
		txnTimes []time.Time
		txnErr   error
	)
	stopTxn := make(chan struct{})
	txnDone := make(chan struct{})
	go func() {
		defer close(txnDone)
		p := producer.New(s.js)
		t := time.NewTicker(time.Duration(float64(time.Second) / o.txnPerSec))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopTxn:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now := time.Now()
			_, err := p.Publish(ctx, orderJob("txn-"+strconv.Itoa(i), fmt.Sprintf("+7902%07d", i), "transactional", i))
			mu.Lock()
			if err != nil {
				txnErr = err
				mu.Unlock()
				return
			}
			txnTimes = append(txnTimes, now)
			mu.Unlock()
		}
	}()
	stopOnce := sync.OnceFunc(func() { close(stopTxn); <-txnDone })
	defer stopOnce()
	expected := time.Duration(float64(o.bulk)/o.mps*float64(time.Second)) + o.pairInterval*time.Duration(o.repeat)
	if err := s.waitSent(ctx, label+" bulk sent", int64(o.bulk), start, 3*expected+time.Minute); err != nil {
		return res, err
	}
	stopOnce()
	if txnErr != nil {
		return res, txnErr
	}
	res.txn = len(txnTimes)
	total := int64(o.bulk + res.txn)
	if err := s.waitSent(ctx, label+" all sent", total, start, 2*time.Minute); err != nil {
		return res, err
	}
	res.elapsed = time.Since(start)
	res.cpu = cpuShare(before, s.cpu(), res.elapsed)
	d, err := consumerDeliveries(ctx, s.js)
	if err != nil {
		return res, err
	}
	res.deliveries = float64(d) / float64(total)

	arr, err := s.arrivals(ctx)
	if err != nil {
		return res, err
	}
	white := arr[:0]
	for _, a := range arr {
		if a.Channel == "white" {
			white = append(white, a)
		}
	}
	if int64(len(white)) != total {
		return res, fmt.Errorf("simulator saw %d white sends for %d jobs (%d records in all)", len(white), total, len(arr))
	}
	res.achieved = steadyBulkRate(white)
	res.ratio = res.achieved / o.mps
	res.maxSliding, res.maxCalendar = maxPerSecond(white)
	res.pairViolations, res.minPairGap = pairGaps(white, o.pairInterval)
	res.pairBeyondJitter, _ = pairGaps(white, o.pairInterval-pairJitter)
	var lat []time.Duration
	for _, a := range white {
		if k, ok := strings.CutPrefix(a.JobID, "txn-"); ok {
			if i, err := strconv.Atoi(k); err == nil && i < len(txnTimes) {
				lat = append(lat, a.At.Sub(txnTimes[i]))
			}
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.txnP50, res.txnP99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	fmt.Fprintf(os.Stderr, "  %s: %.1f/s (%.3f of %.0f), max 1 s %d sliding / %d calendar, pair violations %d, deliveries/job %.3f, txn p99 %s\n",
		label, res.achieved, res.ratio, o.mps, res.maxSliding, res.maxCalendar, res.pairViolations, res.deliveries, res.txnP99.Round(time.Millisecond))
	return res, nil
}

// steadyBulkRate is the rate of every send (bulk and transactional share the number) between
// the 10th and the 90th percentile bulk arrival: the number saturated, without the start and
// the tail.
func steadyBulkRate(sorted []arrival) float64 {
	var bulk []time.Time
	for _, a := range sorted {
		if strings.HasPrefix(a.JobID, "bulk-") {
			bulk = append(bulk, a.At)
		}
	}
	if len(bulk) < 10 {
		return 0
	}
	from, to := bulk[len(bulk)/10], bulk[len(bulk)*9/10]
	n := 0
	for _, a := range sorted {
		if !a.At.Before(from) && a.At.Before(to) {
			n++
		}
	}
	return float64(n) / to.Sub(from).Seconds()
}

// maxPerSecond returns the most arrivals in any 1 s window [t, t+1s) and in any calendar
// second.
func maxPerSecond(sorted []arrival) (sliding, calendar int) {
	j := 0
	for i := range sorted {
		for sorted[i].At.Sub(sorted[j].At) >= time.Second {
			j++
		}
		sliding = max(sliding, i-j+1)
	}
	counts := map[int64]int{}
	for _, a := range sorted {
		s := a.At.Unix()
		counts[s]++
		calendar = max(calendar, counts[s])
	}
	return sliding, calendar
}

// pairJitter is the tolerance of the second pair-violation count.
const pairJitter = 50 * time.Millisecond

// pairGaps counts consecutive sends to one recipient closer than interval, and returns the
// smallest gap seen (0 when no recipient got two).
func pairGaps(sorted []arrival, interval time.Duration) (violations int, minGap time.Duration) {
	last := map[string]time.Time{}
	for _, a := range sorted {
		if prev, ok := last[a.To]; ok {
			gap := a.At.Sub(prev)
			if minGap == 0 || gap < minGap {
				minGap = gap
			}
			if gap < interval {
				violations++
			}
		}
		last[a.To] = a.At
	}
	return violations, minGap
}
