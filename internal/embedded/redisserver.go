package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server process this process started and stops: on a loopback
// port, with an append-only file synced on every write in its directory, so that a restart,
// even after a kill, keeps every acknowledged write.
type RedisServer struct {
	addr string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	exit chan struct{} // closed when the process has exited
	once sync.Once
}

// StartRedisServer runs the redis-server binary bin with its data in dir, on a free
// loopback port, and waits until it answers (loading the append-only file of an earlier
// run first).
func StartRedisServer(ctx context.Context, bin, dir string) (*RedisServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("redis-server data directory: %w", err)
	}
	var lastErr error
	for range 5 { // a port taken between choosing and binding it: choose another
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redis-server: %w", err)
		}
		r, err := startRedisServer(ctx, bin, dir, port)
		if err == nil {
			return r, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func startRedisServer(ctx context.Context, bin, dir string, port int) (*RedisServer, error) {
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--dir", dir, "--daemonize", "no", "--loglevel", "warning",
		// Every acknowledged write is on disk before the answer: a job recorded as sent is
		// never forgotten, whatever stops the process.
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: a Ctrl-C in the terminal reaches herald dev, which stops
	// redis-server after the last write, rather than both at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server %s: %w", bin, err)
	}
	r := &RedisServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, out: out, exit: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.exit) }()
	if err := r.waitReady(ctx, 60*time.Second); err != nil {
		r.kill()
		return nil, fmt.Errorf("redis-server %s: %w: %s", bin, err, strings.TrimSpace(out.String()))
	}
	return r, nil
}

// waitReady polls until this process's redis-server answers PING (not LOADING) or d passes.
func (r *RedisServer) waitReady(ctx context.Context, d time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(d)
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		info, err := c.Info(pctx, "server").Result()
		if err == nil {
			// Another process may have taken the port meanwhile: it must be ours.
			if !strings.Contains(info, "process_id:"+strconv.Itoa(r.cmd.Process.Pid)+"\r\n") {
				cancel()
				return fmt.Errorf("%s is served by another redis-server", r.addr)
			}
			// PING answers LOADING while the append-only file is read.
			err = c.Ping(pctx).Err()
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-r.exit:
			return errors.New("exited at start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // the poll interval of a deadline wait
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready on %s within %s: %w", r.addr, d, err)
		}
	}
}

// Addr is the host:port redis-server listens on.
func (r *RedisServer) Addr() string { return r.addr }

// URL is the redis:// URL of the server.
func (r *RedisServer) URL() string { return "redis://" + r.addr }

// Close stops redis-server (SIGTERM: it finishes its append-only file and exits) and waits
// for it, killing it after 30 seconds.
func (r *RedisServer) Close() error {
	var err error
	r.once.Do(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exit:
		case <-time.After(30 * time.Second):
			r.kill()
			err = errors.New("redis-server did not stop within 30s; killed")
		}
	})
	return err
}

func (r *RedisServer) kill() {
	_ = r.cmd.Process.Kill()
	<-r.exit
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Redis is the Redis-compatible server `herald dev` runs: a RedisServer or a Store.
type Redis interface {
	// URL is its redis:// URL.
	URL() string
	// Close stops it after the last write.
	Close() error
}

var (
	_ Redis = (*RedisServer)(nil)
	_ Redis = (*Store)(nil)
)

// RedisServerEnv names the redis-server binary herald dev runs; "none" makes it use the
// embedded store even when redis-server is on the PATH.
const RedisServerEnv = "HERALD_REDIS_SERVER"

// OpenRedis starts the durable Redis-compatible server of herald dev, with its data under
// dir: the redis-server that bin names ("": the one on the PATH), else (none found, or bin
// "none") the embedded Store. kind says which it is, for the log.
func OpenRedis(ctx context.Context, dir, bin string, log *slog.Logger) (r Redis, kind string, err error) {
	if bin != "none" {
		path := bin
		if path == "" {
			path, err = exec.LookPath("redis-server")
		}
		if err == nil {
			rs, err := StartRedisServer(ctx, path, filepath.Join(dir, "redis-server"))
			if err != nil {
				return nil, "", err
			}
			return rs, "redis-server " + path, nil
		}
	}
	st, err := OpenStore(filepath.Join(dir, "store"), log)
	if err != nil {
		return nil, "", err
	}
	return st, "embedded (miniredis, snapshot in " + st.path + ")", nil
}
