package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseDevBanner(t *testing.T) {
	t.Parallel()
	banner := `{"level":"INFO","msg":"embedded nats-server started"}

Herald is running (all in one process).
  API and webhooks   http://127.0.0.1:40001
  health, metrics    http://127.0.0.1:40002   (loopback only)
  provider simulator http://127.0.0.1:40003   (GET /sim/messages lists what was "sent")
  API key            dev-key-change-me
  NATS               nats://127.0.0.1:40004   (HERALD_NATS_URL for herald import, dlq, templates sync)
`
	tests := []struct {
		name string
		log  string
		want devBanner
		ok   bool
	}{
		{"whole banner", banner, devBanner{api: "http://127.0.0.1:40001", sim: "http://127.0.0.1:40003", key: "dev-key-change-me"}, true},
		{"logs only", `{"level":"INFO","msg":"Redis-compatible store started"}`, devBanner{}, false},
		// Written in pieces: the key line has not arrived yet.
		{"banner half written", banner[:strings.Index(banner, "  API key")], devBanner{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseDevBanner([]byte(tt.log))
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseDevBanner = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDevBatch(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3, 400} {
		var req struct {
			Notifications []struct {
				ID, To, Template, Priority string
				Params                     map[string]string
			} `json:"notifications"`
		}
		if err := json.Unmarshal(devBatch(n), &req); err != nil {
			t.Fatalf("devBatch(%d) is not JSON: %v", n, err)
		}
		if len(req.Notifications) != n {
			t.Fatalf("devBatch(%d) has %d notifications", n, len(req.Notifications))
		}
		ids, tos := map[string]bool{}, map[string]bool{}
		for _, j := range req.Notifications {
			if !strings.HasPrefix(j.ID, devJobPrefix) || j.Template != "order_ready" || j.Priority != "bulk" || j.Params["address"] == "" {
				t.Errorf("job %+v: want a bulk order_ready job with the prefix %q", j, devJobPrefix)
			}
			ids[j.ID], tos[j.To] = true, true
		}
		if len(ids) != n || len(tos) != n {
			t.Errorf("devBatch(%d): %d distinct ids, %d distinct recipients", n, len(ids), len(tos))
		}
	}
}

func TestWorstWindowAndRate(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		arr  []arrival
		most int
		at   time.Duration
		rate float64
	}{
		{"none", nil, 0, 0, 0},
		{"one", at(base, 0, "a"), 1, 0, 0},
		{"even", at(base, 0, "a", 500, "b", 1000, "c", 1500, "d"), 2, 0, 2},
		// A burst half a second in: the window that holds it begins there.
		{"burst later", at(base, 0, "a", 1500, "b", 1600, "c", 1700, "d", 3000, "e"), 3, 1500 * time.Millisecond, 4.0 / 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			most, at := worstWindow(tt.arr)
			if most != tt.most || at != tt.at {
				t.Errorf("worstWindow = %d at %s; want %d at %s", most, at, tt.most, tt.at)
			}
			if r := firstToLast(tt.arr); r != tt.rate {
				t.Errorf("firstToLast = %v, want %v", r, tt.rate)
			}
		})
	}
}

func TestRenderDev(t *testing.T) {
	t.Parallel()
	round := func(store string, rate float64, dropped int64) devRound {
		return devRound{store: store, accept: 800 * time.Millisecond, accepted: 10, sampled: 10, rate: rate, worstSliding: 80, worstCalendar: 79,
			sent: 10, statuses: 30 - dropped, dropped: dropped, drain: time.Minute, cpu: map[string]float64{devProc: 0.5}}
	}
	tests := []struct {
		name       string
		rs         []devRound
		note       string
		want, omit []string
	}{
		{"both stores at the cap", []devRound{round("embedded", 78.5, 0), round("redis-server", 78.4, 0)}, "",
			[]string{"| embedded store | redis-server store |", "≥ 76.0 (0.95 of 80): **met**", "**met** all, none dropped", "78.8/s at 80"}, []string{"**missed**"}},
		{"one store slow", []devRound{round("embedded", 18.9, 0), round("redis-server", 78.4, 0)}, "",
			[]string{"≥ 76.0 (0.95 of 80): **missed**"}, nil},
		{"a webhook dropped", []devRound{round("embedded", 78.5, 1)}, "no redis-server on the PATH, so only the embedded store was measured",
			[]string{"**missed** all, none dropped", "No redis-server on the PATH"}, []string{"redis-server store |"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			var o options
			o.dev.jobs = 10
			renderDev(&b, o, tt.rs, tt.note)
			for _, s := range tt.want {
				if !strings.Contains(b.String(), s) {
					t.Errorf("no %q in\n%s", s, b.String())
				}
			}
			for _, s := range tt.omit {
				if strings.Contains(b.String(), s) {
					t.Errorf("%q in\n%s", s, b.String())
				}
			}
		})
	}
}
