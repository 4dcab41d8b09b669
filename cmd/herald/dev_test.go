package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// devRun is a running herald dev.
type devRun struct {
	api, sim string
	stop     func()
}

var bannerAPI = regexp.MustCompile(`API and webhooks\s+(http://\S+)`)
var bannerSim = regexp.MustCompile(`provider simulator\s+(http://\S+)`)

// startDev runs herald dev with its data in dir and the Redis-compatible store redisServer
// names (devEnv.RedisServer), on free loopback ports, with the defaults otherwise; it
// returns once the banner is printed.
func startDev(t *testing.T, dir, redisServer string, adjust func(*config.Config)) *devRun {
	t.Helper()
	cfg := config.Defaults()
	cfg.HTTPAddr, cfg.OpsAddr = "127.0.0.1:0", "127.0.0.1:0"
	if adjust != nil {
		adjust(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.LogBuffer{}
	logs := &testutil.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, &cfg, log, out, devEnv{DataDir: dir, SimAddr: "127.0.0.1:0", RedisServer: redisServer})
	}()
	var d devRun
	testutil.Eventually(t, 60*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("herald dev stopped at start: %v\n%s", err, logs)
		default:
		}
		a, s := bannerAPI.FindStringSubmatch(out.String()), bannerSim.FindStringSubmatch(out.String())
		if a == nil || s == nil {
			return false
		}
		d.api, d.sim = a[1], s[1]
		return true
	}, "herald dev printed no banner")
	stopped := false
	d.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("herald dev: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("herald dev did not stop within 60s")
		}
	}
	t.Cleanup(d.stop)
	return &d
}

// call sends a request with the dev key and decodes the JSON answer into v.
func (d *devRun) call(t *testing.T, method, path, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, d.api+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+devKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && len(b) > 0 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// sent returns the job ids the simulator received, counting each.
func (d *devRun) sent(t *testing.T) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, m := range d.messages(t) {
		n[m.JobID]++
	}
	return n
}

func (d *devRun) state(t *testing.T, id string) string {
	t.Helper()
	var rec struct {
		State string `json:"state"`
	}
	if code := d.call(t, http.MethodGet, "/v1/notifications/"+id, "", &rec); code != http.StatusOK {
		return ""
	}
	return rec.State
}

func tourJob(id string) string {
	return `{"id":"` + id + `","to":"+79001234567","template":"order_ready","params":{"order":"123456","address":"ул. Текстильщиков, д. 20","until":"21.02.2027"},"buttons":{"0":"123456"},"sms_text":"Заказ 123456 ждёт вас до 21.02.2027"}`
}

// TestDevNeverTwiceAcrossRestart is the tour's job across a restart of herald dev, on each
// store it runs without HERALD_REDIS_URL: sent, herald dev stopped and started again on the
// same data, the same id posted again answers as a duplicate and is not sent again.
func TestDevNeverTwiceAcrossRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, redisServer string
	}{
		{"embedded store", "none"},
		{"redis-server from the PATH", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			const id = "order-123456-ready"
			d := startDev(t, dir, tc.redisServer, nil)
			if code := d.call(t, http.MethodPost, "/v1/notifications", tourJob(id), nil); code != http.StatusAccepted {
				t.Fatalf("first post: HTTP %d, want 202", code)
			}
			testutil.Eventually(t, 30*time.Second, func() bool { return d.sent(t)[id] == 1 }, "the job never reached the simulator")
			testutil.Eventually(t, 30*time.Second, func() bool { return d.state(t, id) == "read" }, "the job never turned read")
			d.stop()

			d = startDev(t, dir, tc.redisServer, nil)
			var rec status.Record
			if code := d.call(t, http.MethodGet, "/v1/notifications/"+id, "", &rec); code != http.StatusOK || rec.State != status.Read {
				t.Fatalf("after the restart: HTTP %d, record %q, want read", code, rec.State)
			}
			// Its history: a row per state change, sent, delivered, read, each with its time.
			if len(rec.History) != 1 || len(rec.History[0].Statuses) != 2 || rec.History[0].Statuses[0].State != status.Delivered ||
				rec.History[0].Statuses[1].State != status.Read || rec.History[0].Statuses[1].At == "" {
				t.Fatalf("history %+v, want one attempt with its delivered and read reports", rec.History)
			}
			var a devAccepted
			code := d.call(t, http.MethodPost, "/v1/notifications", tourJob(id), &a)
			if code != http.StatusOK || !a.Duplicate {
				t.Fatalf("the same id after the restart: HTTP %d %+v, want 200 duplicate", code, a)
			}
			// A later job reaches the simulator; the repeated one must not have before it.
			if code := d.call(t, http.MethodPost, "/v1/notifications", tourJob("after-restart"), nil); code != http.StatusAccepted {
				t.Fatalf("post after restart: HTTP %d", code)
			}
			testutil.Eventually(t, 30*time.Second, func() bool { return d.sent(t)["after-restart"] == 1 }, "the new job never reached the simulator")
			if n := d.sent(t)[id]; n != 0 {
				t.Fatalf("%s was sent %d more times after the restart", id, n)
			}
		})
	}
}

type devAccepted struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate"`
}

// TestDevBatchAtCap is the batch on herald dev with the defaults and the embedded
// store (what `make run` runs with nothing installed): every job's record exists when the
// batch is answered, the worker sends at its cap (HERALD_WHITE_MPS, 80/s), every status
// webhook reaches the API, and the campaign's counters add up to the records. Quiet hours
// are off so that the figure does not depend on the hour. HERALD_DEV_JOBS sets the batch
// size (default 400; the was 5000) and makes the run a measurement: only then is the
// rate held to 0.9 of the cap. Under `make test` every package runs at once with the race
// detector on two cores, so the rate is logged, not asserted (`make bench` reports it).
func TestDevBatchAtCap(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("sends at 80/s for about 5 s")
	}
	n, measure := 400, false
	if v, err := strconv.Atoi(os.Getenv("HERALD_DEV_JOBS")); err == nil && v > 0 {
		n, measure = v, true
	}
	prio := "bulk"
	if p := os.Getenv("HERALD_DEV_PRIORITY"); p != "" {
		prio = p
	}
	var limit float64
	d := startDev(t, t.TempDir(), "none", func(c *config.Config) {
		c.QuietHours = "off"
		limit = c.WhiteMPS
	})
	var b strings.Builder
	b.WriteString(`{"notifications":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"b-%d","to":"+7900%07d","template":"order_ready","campaign":"batch5k","priority":"%s","params":{"order":"%d","address":"ул. Текстильщиков, д. 20","until":"21.02.2027"},"buttons":{"0":"%d"}}`, i, i, prio, i, i)
	}
	b.WriteString(`]}`)
	start := time.Now()
	var res struct {
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
	}
	if code := d.call(t, http.MethodPost, "/v1/notifications/batch", b.String(), &res); code != http.StatusOK || res.Accepted != n {
		t.Fatalf("batch: HTTP %d, %+v", code, res)
	}
	accept := time.Since(start)
	// Every accepted job has its record as the answer arrives (the last ones first: the
	// worker has not reached them).
	for i := n - 1; i >= 0; i -= max(1, n/50) {
		if st := d.state(t, fmt.Sprintf("b-%d", i)); st == "" {
			t.Fatalf("b-%d: no record right after the batch was accepted", i)
		}
	}
	testutil.Eventually(t, time.Duration(n)*time.Second/20+60*time.Second, func() bool {
		var st sim.Stats
		getJSON(t, d.sim+"/sim/stats", &st)
		return st.Channels["white"].Accepted >= int64(n)
	}, "the simulator never received all %d jobs", n)
	msgs := d.messages(t)
	first, last := msgs[0].At, msgs[len(msgs)-1].At
	rate := float64(len(msgs)-1) / last.Sub(first).Seconds()
	sentAll := time.Since(start)

	var view struct {
		States map[string]int64 `json:"states"`
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		view.States = nil // a state at 0 is left out of the answer, not sent as 0
		d.call(t, http.MethodGet, "/v1/campaigns/batch5k", "", &view)
		return view.States["read"] == int64(n)
	}, "not every job turned read: %v", &view.States)
	for st, c := range view.States {
		if st != "read" && c != 0 {
			t.Errorf("campaign counter %s = %d, want 0 once every job is read", st, c)
		}
	}
	var stats sim.Stats
	getJSON(t, d.sim+"/sim/stats", &stats)
	if stats.Webhooks.Dropped != 0 || stats.Webhooks.Statuses != int64(3*n) {
		t.Errorf("status webhooks: %+v, want %d delivered and none dropped", stats.Webhooks, 3*n)
	}
	for id, c := range d.sent(t) {
		if c != 1 {
			t.Errorf("%s sent %d times", id, c)
		}
	}
	t.Logf("herald dev, embedded store, %d jobs in one batch: accepted in %s, all sent after %s, %.1f/s between the first and the last send (cap %.0f/s), %d status webhooks delivered in %d posts, %d retried",
		n, accept.Round(time.Millisecond), sentAll.Round(time.Millisecond), rate, limit, stats.Webhooks.Statuses, stats.Webhooks.Posts, stats.Webhooks.Retries)
	if measure && rate < 0.9*limit {
		t.Errorf("sent at %.1f/s, want the cap, %.0f/s", rate, limit)
	}
}

// messages returns what the simulator received, in arrival order.
func (d *devRun) messages(t *testing.T) []sim.Message {
	t.Helper()
	var msgs []sim.Message
	getJSON(t, d.sim+"/sim/messages", &msgs)
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].Seq < msgs[j].Seq })
	return msgs
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
