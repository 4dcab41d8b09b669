package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// startRedis runs a redis-server (from the PATH; `make deps` installs it) on a free loopback
// port for the test and returns a client of it.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (make deps): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	t.Cleanup(func() { rdb.Close() })
	// Wait for redis-server to answer PING, checking every 20 ms for at most 10 s.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for rdb.Ping(context.Background()).Err() != nil {
		select {
		case <-deadline:
			t.Fatal("redis-server did not answer PING in 10 s")
		case <-tick.C:
		}
	}
	return rdb
}

// TestProcess runs the task handler against a real redis-server and a recording Cloud API
// endpoint: a send records its status, a second send to the same recipient inside the pair
// interval is held, and the provider's answers decide whether asynq retries.
func TestProcess(t *testing.T) {
	t.Parallel()
	rdb := startRedis(t)
	var status atomic.Int32
	var bodies atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Path != "/v21.0/100/messages" {
			http.Error(w, "bad auth or path", http.StatusUnauthorized)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		bodies.Add(1)
		if st := int(status.Load()); st != 0 {
			w.WriteHeader(st)
			return
		}
		_, _ = io.WriteString(w, `{"messages":[{"id":"wamid.`+strconv.Itoa(int(bodies.Load()))+`"}]}`)
	}))
	defer srv.Close()
	s := &sender{hc: srv.Client(), url: srv.URL + "/v21.0/100/messages", auth: "Bearer tok", rdb: rdb,
		limiter: redis_rate.NewLimiter(rdb), pair: redis_rate.Limit{Rate: 1, Burst: 1, Period: time.Minute}}
	task := func(i int) *asynq.Task {
		p, _ := json.Marshal(BenchJob("t-", i))
		return asynq.NewTask(taskType, p)
	}
	tests := []struct {
		name      string
		task      *asynq.Task
		status    int // the provider's answer; 0: 200 with a message id
		wantErr   string
		skipRetry bool
		held      bool
		sent      string // the job whose status hash must say sent
	}{
		{"sent and recorded", task(1), 0, "", false, false, "t-1"},
		{"same recipient inside the interval is held", task(1), 0, "recipient limit", false, true, ""},
		{"rate limited by the provider is retried", task(2), http.StatusTooManyRequests, "HTTP 429", false, false, ""},
		{"a server error is retried", task(3), http.StatusBadGateway, "HTTP 502", false, false, ""},
		{"a refusal is final", task(4), http.StatusBadRequest, "HTTP 400", true, false, ""},
		{"an undecodable task is final", asynq.NewTask(taskType, []byte("{")), 0, "decode task", true, false, ""},
	}
	// Sequential: the cases share the provider's answer and the recipient limits.
	for _, tt := range tests {
		status.Store(int32(tt.status))
		err := s.process(context.Background(), tt.task)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: err = %v, want one with %q", tt.name, err, tt.wantErr)
		}
		if got := errors.Is(err, asynq.SkipRetry); got != tt.skipRetry {
			t.Errorf("%s: SkipRetry = %v, want %v", tt.name, got, tt.skipRetry)
		}
		if h, ok := errors.AsType[*heldError](err); ok != tt.held || (ok && (h.After <= 0 || retryDelay(1, err, tt.task) != h.After)) {
			t.Errorf("%s: held = %v (%v), want %v with a positive delay that retryDelay keeps", tt.name, ok, err, tt.held)
		}
		if tt.sent != "" {
			got, err := rdb.HGetAll(context.Background(), "status:"+tt.sent).Result()
			if err != nil || got["status"] != "sent" || !strings.HasPrefix(got["wamid"], "wamid.") {
				t.Errorf("%s: status hash %v (%v), want sent with its wamid", tt.name, got, err)
			}
		}
	}
	if n := bodies.Load(); n != 4 {
		t.Errorf("provider saw %d sends, want 4 (the held and undecodable tasks send nothing)", n)
	}
}
