// Package testutil starts the real servers Herald's tests run against: an in-process
// JetStream-enabled nats-server (the real server code) and a redis-server process on a free
// loopback port. Every helper registers its own cleanup, so nothing outlives the test.
package testutil

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/herald-notify/herald/internal/embedded"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// NATS is a running in-process nats-server with JetStream.
type NATS struct {
	Server *server.Server
	URL    string
	Dir    string
}

// StartNATS starts a JetStream-enabled nats-server on a free loopback port with its store in
// a temporary directory; it is shut down when the test ends.
func StartNATS(tb testing.TB) *NATS {
	tb.Helper()
	dir := tb.TempDir()
	n, err := StartNATSDir(dir, -1)
	if err != nil {
		tb.Fatalf("start nats-server: %v", err)
	}
	tb.Cleanup(n.Shutdown)
	return n
}

// StartNATSDir starts a JetStream-enabled nats-server storing under dir, on port (-1: a free
// port). Callers own the shutdown; tests use StartNATS.
func StartNATSDir(dir string, port int) (*NATS, error) {
	n, err := embedded.StartNATS(dir, "127.0.0.1", port)
	if err != nil {
		return nil, err
	}
	return &NATS{Server: n.Server, URL: n.URL, Dir: dir}, nil
}

// Shutdown stops the server and waits for it to finish.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// Connect opens a client connection closed at the end of the test.
func (n *NATS) Connect(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(n.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("connect nats: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Redis is a redis-server process on a loopback port.
type Redis struct {
	Addr    string
	URL     string
	cmd     *exec.Cmd
	dir     string
	port    int
	persist bool
	mu      sync.Mutex
}

// RedisServerPath returns the redis-server binary, from $HERALD_REDIS_SERVER or the PATH.
func RedisServerPath() (string, error) {
	if p := os.Getenv("HERALD_REDIS_SERVER"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found: run `make test`, which installs it (apt-get install redis-server): %w", err)
	}
	return p, nil
}

// StartRedis starts a fresh redis-server (no persistence) on a free loopback port and stops
// it when the test ends. A missing redis-server fails the test: `make test` installs it.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	r, err := startRedis(tb.TempDir(), 0)
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(r.Stop)
	return r
}

// StartRedisPersistent is StartRedis with an append-only file synced on every write, so that
// Restart (or a kill -9) keeps the data, as a production Redis configured for Herald does.
func StartRedisPersistent(tb testing.TB) *Redis {
	tb.Helper()
	r, err := startRedisWith(tb.TempDir(), 0, true)
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(r.Stop)
	return r
}

func startRedis(dir string, port int) (*Redis, error) { return startRedisWith(dir, port, false) }

func startRedisWith(dir string, port int, persist bool) (*Redis, error) {
	bin, err := RedisServerPath()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		p := port
		if p == 0 {
			if p, err = FreePort(); err != nil {
				return nil, err
			}
		}
		aof := []string{"--appendonly", "no"}
		if persist {
			aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
		}
		cmd := exec.Command(bin, append([]string{
			"--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--save", "",
			"--dir", dir, "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"}, aof...)...)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", p), cmd: cmd, dir: dir, port: p, persist: persist}
		r.URL = "redis://" + r.Addr
		lines := make(chan string, 64)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				default:
				}
			}
		}()
		if err := r.waitReady(10 * time.Second); err != nil {
			r.Stop()
			var out []string
			for len(lines) > 0 {
				out = append(out, <-lines)
			}
			lastErr = fmt.Errorf("%w: %s", err, strings.Join(out, " | "))
			if port != 0 {
				break
			}
			continue // port taken between FreePort and bind: try another
		}
		return r, nil
	}
	return nil, lastErr
}

func (r *Redis) waitReady(d time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		if err == nil {
			// The port was free when chosen, but another test's redis-server may have taken
			// it since: make sure the one answering is ours, or two tests would share data.
			if !strings.Contains(info, "process_id:"+strconv.Itoa(r.cmd.Process.Pid)+"\r\n") {
				return fmt.Errorf("%s is served by another redis-server", r.Addr)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready: %w", r.Addr, err)
		}
		if r.cmd.ProcessState != nil {
			return fmt.Errorf("redis-server exited")
		}
		time.Sleep(10 * time.Millisecond) // polling interval of a deadline wait, not a synchronisation sleep
	}
}

// Stop kills the redis-server and waits for it.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && r.cmd.Process != nil && r.cmd.ProcessState == nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

// Restart starts redis-server again on the same port, for tests of an outage: empty, or
// with its data for StartRedisPersistent.
func (r *Redis) Restart(tb testing.TB) {
	tb.Helper()
	r.Stop()
	r.Start(tb)
}

// Start starts a stopped redis-server again on the same port and directory.
func (r *Redis) Start(tb testing.TB) {
	tb.Helper()
	nr, err := startRedisWith(r.dir, r.port, r.persist)
	if err != nil {
		tb.Fatalf("restart redis-server: %v", err)
	}
	r.mu.Lock()
	r.cmd = nr.cmd
	r.mu.Unlock()
}

// Client returns a go-redis client closed at the end of the test.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Eventually polls cond until it is true or the deadline passes, then fails the test with
// msg. It is the only way tests wait: on a condition, with a deadline.
func Eventually(tb testing.TB, d time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(d)
	wait := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %s: "+msg, append([]any{d}, args...)...)
		}
		time.Sleep(wait)
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// StartRedisProcess starts a redis-server on a free loopback port outside a test (the
// benchmark driver); the caller stops it.
func StartRedisProcess(dir string) (*Redis, error) { return startRedis(dir, 0) }
