package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/sim"
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
	resp, err := http.Get(d.sim + "/sim/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msgs []sim.Message
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, m := range msgs {
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
			if st := d.state(t, id); st != "read" {
				t.Fatalf("after the restart the record is %q, want read", st)
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
