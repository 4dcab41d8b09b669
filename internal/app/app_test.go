package app_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/worker"
)

// herald is one app.Run with its listeners.
type herald struct {
	public, ops string // base URLs; "" when not served
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// run starts app.Run against a real nats-server and redis-server with the given parts and
// configuration changes, and stops it when the test ends.
func run(t *testing.T, parts app.Parts, set func(*config.Config)) herald {
	t.Helper()
	ns := testutil.StartNATS(t)
	rs := testutil.StartRedis(t)
	c := config.Defaults()
	cfg := &c
	cfg.NATSURL, cfg.RedisURL = ns.URL, rs.URL
	cfg.APIKeys = "test:app-test-key-0001"
	if set != nil {
		set(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("HERALD_TEST_VERBOSE") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	tel, err := telemetry.Setup(t.Context(), "herald-app-test")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := app.ConnectNATS(cfg, log, "app-test")
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := app.ConnectRedis(t.Context(), cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	parts.Senders = map[string]worker.Sender{} // no provider: these tests are about the listeners
	ready := make(chan struct{})
	parts.Ready = func() { close(ready) }
	var h herald
	if parts.API && parts.Listener != nil {
		h.public = "http://" + parts.Listener.Addr().String()
	}
	switch {
	case parts.OpsListener != nil:
		h.ops = "http://" + parts.OpsListener.Addr().String()
	case !parts.API && parts.Listener != nil:
		h.ops = "http://" + parts.Listener.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, log, tel, nc, rdb, parts) }()
	t.Cleanup(func() {
		cancel()
		<-done
		nc.Close()
		_ = rdb.Close()
		_ = tel.Shutdown(context.Background())
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("app.Run ended before it was ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("app.Run not ready within 20 s")
	}
	return h
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestListeners: metrics and profiles are served on the ops listener only, profiles only
// with HERALD_PPROF; the public listener has the API and the webhooks; a worker alone keeps
// serving its ops routes on its one listener.
func TestListeners(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		parts func(t *testing.T) app.Parts
		pprof bool
		// path → status, on each listener ("" skips)
		public, ops map[string]int
	}{
		{
			name:   "api with an ops listener",
			parts:  func(t *testing.T) app.Parts { return app.Parts{API: true, Listener: listen(t), OpsListener: listen(t)} },
			public: map[string]int{"/metrics": 404, "/debug/pprof/": 404, "/healthz": 200, "/readyz": 200, "/v1/templates": 401},
			ops:    map[string]int{"/metrics": 200, "/debug/pprof/": 404, "/healthz": 200, "/readyz": 200, "/v1/templates": 404},
		},
		{
			name:   "api with profiles on",
			parts:  func(t *testing.T) app.Parts { return app.Parts{API: true, Listener: listen(t), OpsListener: listen(t)} },
			pprof:  true,
			public: map[string]int{"/debug/pprof/": 404},
			ops:    map[string]int{"/debug/pprof/": 200},
		},
		{
			name:  "worker alone: profiles off by default",
			parts: func(t *testing.T) app.Parts { return app.Parts{Worker: true, Listener: listen(t)} },
			ops:   map[string]int{"/debug/pprof/": 404, "/metrics": 200, "/readyz": 200, "/v1/templates": 404},
		},
		{
			name:  "worker alone with HERALD_PPROF",
			parts: func(t *testing.T) app.Parts { return app.Parts{Worker: true, Listener: listen(t)} },
			pprof: true,
			ops:   map[string]int{"/debug/pprof/": 200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := run(t, tt.parts(t), func(c *config.Config) { c.Pprof = tt.pprof })
			for path, want := range tt.public {
				if got := status(t, h.public+path); got != want {
					t.Errorf("public GET %s = %d, want %d", path, got, want)
				}
			}
			for path, want := range tt.ops {
				if got := status(t, h.ops+path); got != want {
					t.Errorf("ops GET %s = %d, want %d", path, got, want)
				}
			}
		})
	}
}

// answered reports whether the server answered or closed conn before the deadline (true),
// or left it waiting (false).
func answered(t *testing.T, conn net.Conn, within time.Duration) bool {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	_, err := bufio.NewReader(conn).ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true // a byte of an answer, or the connection closed
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestPublicServerLimits: a client that sends its headers or its body slowly is cut off
// (HERALD_HTTP_READ_HEADER_TIMEOUT, HERALD_HTTP_READ_TIMEOUT), and the open connections are
// capped (HERALD_HTTP_MAX_CONNS).
func TestPublicServerLimits(t *testing.T) {
	t.Parallel()
	h := run(t, app.Parts{API: true, Listener: listen(t)}, func(c *config.Config) {
		c.HTTPReadHeaderTimeout, c.HTTPReadTimeout = 300*time.Millisecond, 600*time.Millisecond
		c.HTTPMaxConns = 2
	})
	t.Run("slow headers", func(t *testing.T) {
		conn := dial(t, h.public)
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: herald\r\n"); err != nil {
			t.Fatal(err)
		}
		if !answered(t, conn, 5*time.Second) {
			t.Fatal("a request whose headers never end holds its connection")
		}
	})
	t.Run("slow body", func(t *testing.T) {
		conn := dial(t, h.public)
		if _, err := io.WriteString(conn, "POST /webhooks/whatsapp HTTP/1.1\r\nHost: herald\r\nContent-Length: 1000\r\n\r\n{\"object\""); err != nil {
			t.Fatal(err)
		}
		if !answered(t, conn, 5*time.Second) {
			t.Fatal("a request whose body trickles holds its connection")
		}
	})
	t.Run("connection cap", func(t *testing.T) {
		// Two idle keep-alive connections take both places.
		var idle []net.Conn
		for range 2 {
			c := dial(t, h.public)
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if !answered(t, c, 5*time.Second) {
				t.Fatal("a request within the cap was not answered")
			}
			idle = append(idle, c)
		}
		third := dial(t, h.public)
		if _, err := io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if answered(t, third, 300*time.Millisecond) {
			t.Fatal("a third connection was served beside two open ones (HERALD_HTTP_MAX_CONNS=2)")
		}
		idle[0].Close()
		if !answered(t, third, 5*time.Second) {
			t.Fatal("the waiting connection was not served once a place was free")
		}
	})
}
