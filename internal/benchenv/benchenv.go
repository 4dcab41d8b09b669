// Package benchenv runs Herald's servers and binaries as real operating-system processes on
// loopback, for the benchmarks (cmd/heraldbench), the chaos runs (internal/chaos) and tests
// that need an external program (internal/kanneltest): a nats-server with JetStream, a
// redis-server, the herald binary as `herald worker`, `herald api` or `herald sim`, or any
// other program. Every process writes its output to a log file, is started in a process
// group of its own (so a Ctrl-C in the terminal reaches the driver, which then stops its
// children in order) and dies with the driver if that is killed (Pdeathsig). [Launch] starts
// one process from a [Spec]; an [Env] names, tracks and stops a set of them ([Env.Close]
// stops whatever is still running, by pid).
//
// It also reads what the kernel knows about a process: peak resident memory (VmHWM) and CPU
// time, which is how a benchmark tells which process was the bottleneck.
package benchenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrExited is returned by the readiness waits when the process ended before it was ready.
var ErrExited = errors.New("process exited")

// Env is a set of processes sharing one log directory. Create it with [New]; it is safe for
// concurrent use.
type Env struct {
	// Dir holds one <name>.log per process and the servers' data directories.
	Dir string

	mu    sync.Mutex
	procs []*Proc
	seq   map[string]int
}

// New returns an environment that keeps its logs and data under dir (created if needed).
func New(dir string) (*Env, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Env{Dir: dir, seq: map[string]int{}}, nil
}

// Proc is one running (or finished) process.
type Proc struct {
	// Name is unique in its Env ("worker-2"); the log is <Env.Dir>/<Name>.log.
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	start   time.Time
	// stopping is set by Stop and Kill: the process is meant to end.
	stopping atomic.Bool
}

// Spec is a command line to run as a process, and where its output goes.
type Spec struct {
	// Name names the process in errors and in the exit note.
	Name string
	// Bin is the program; Args its arguments.
	Bin  string
	Args []string
	// Env is added to this process's environment (KEY=VALUE; a later one wins).
	Env []string
	// Log receives the process's stdout and stderr.
	Log string
	// AppendLog continues Log instead of truncating it, so that a process started again
	// from the same Spec keeps one log.
	AppendLog bool
	// NoteExit writes a line to Log when the process ends without Stop or Kill: a process
	// that died on its own says so in its own log.
	NoteExit bool
}

// Launch starts s in a process group of its own, with Pdeathsig SIGKILL, and returns at once
// (see [WaitHTTP], [WaitTCP], [WaitRedis] and [Poll] for readiness). Nothing tracks the
// process: the caller stops it with [Proc.Stop] or [Proc.Kill].
func Launch(s Spec) (*Proc, error) {
	flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if s.AppendLog {
		flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(s.Log, flag, 0o644)
	if err != nil {
		return nil, err
	}
	p := &Proc{Name: s.Name, LogPath: s.Log, done: make(chan struct{})}
	p.cmd = exec.Command(s.Bin, s.Args...)
	p.cmd.Env = append(os.Environ(), s.Env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// A process group of its own keeps a terminal's Ctrl-C away from the children (the
	// driver stops them in order); Pdeathsig kills them if the driver is killed, even -9,
	// so a failed or interrupted run leaves no servers behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", s.Name, s.Bin, err)
	}
	p.start = time.Now()
	go func() {
		p.waitErr = p.cmd.Wait()
		// Stop and Kill set stopping before they signal, so it is settled by now.
		if s.NoteExit && !p.stopping.Load() {
			fmt.Fprintf(f, "benchenv: %s exited on its own: %v\n", s.Name, p.waitErr)
		}
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Start starts bin with args and the extra environment variables env (KEY=VALUE, added to
// this process's environment), its stdout and stderr going to <Env.Dir>/<name>.log (name
// made unique in e: "worker", "worker-2"). The process is not waited on for readiness: see
// [WaitHTTP], [WaitTCP] and the server helpers.
func (e *Env) Start(name, bin string, args, env []string) (*Proc, error) {
	e.mu.Lock()
	e.seq[name]++
	if n := e.seq[name]; n > 1 {
		name += "-" + strconv.Itoa(n)
	}
	e.mu.Unlock()
	p, err := Launch(Spec{Name: name, Bin: bin, Args: args, Env: env, Log: filepath.Join(e.Dir, name+".log")})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited tells whether the process has ended, and with what error (nil for exit status 0).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stopped tells whether Stop or Kill was called: an exit that was asked for.
func (p *Proc) Stopped() bool { return p.stopping.Load() }

// Wait waits until the process exits or ctx ends, and returns its exit error (nil for
// status 0) or ctx's error.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Elapsed is the time since the process started.
func (p *Proc) Elapsed() time.Duration { return time.Since(p.start) }

// Stop sends SIGINT (herald and nats-server shut down gracefully on it), waits up to grace,
// then sends SIGKILL and waits. It is a no-op on a process that has exited.
func (p *Proc) Stop(grace time.Duration) {
	p.stopping.Store(true)
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	p.stopping.Store(true)
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes. The kernel keeps the
// high-water mark, so one read at the end of a run is enough: no sampling is needed.
func (p *Proc) PeakRSS() (int64, error) { return PeakRSS(p.Pid()) }

// CPU returns the user plus system CPU time the process has used so far.
func (p *Proc) CPU() (time.Duration, error) { return CPUTime(p.Pid()) }

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string { return tailFile(p.LogPath, n) }

// Procs returns every process started in e, in start order.
func (e *Env) Procs() []*Proc {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Proc(nil), e.procs...)
}

// Close stops every process still running, newest first (clients before servers), each with
// SIGINT and then SIGKILL after grace.
func (e *Env) Close(grace time.Duration) {
	ps := e.Procs()
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].Stop(grace)
	}
}

// Logs returns the last n lines of every process's log, each under a header: what a failed
// benchmark shows.
func (e *Env) Logs(n int) string {
	var b strings.Builder
	for _, p := range e.Procs() {
		exited, err := p.Exited()
		state := "running"
		if exited {
			state = "exited"
			if err != nil {
				state += " (" + err.Error() + ")"
			}
		}
		fmt.Fprintf(&b, "==> %s (pid %d, %s): %s\n%s\n", p.Name, p.Pid(), state, p.LogPath, p.Tail(n))
	}
	return b.String()
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 at the time of the call.
func FreePorts(n int) ([]int, error) {
	// Every listener stays open until all are chosen, so the kernel cannot hand one out twice.
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Poll calls ready every 20 ms until it returns nil, p (if not nil) exits, ctx ends or the
// deadline d passes; what names the wait in the error, which wraps [ErrExited] or ctx's error
// and carries the last attempt's error (and p's log tail). ready bounds its own attempt.
func Poll(ctx context.Context, p *Proc, d time.Duration, what string, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		if p != nil {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s: %w (%v); log %s:\n%s", what, ErrExited, err, p.LogPath, p.Tail(30))
			}
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("%s: not ready: %w (last attempt: %v)", what, ctx.Err(), last)
			if p != nil {
				err = fmt.Errorf("%w; log %s:\n%s", err, p.LogPath, p.Tail(30))
			}
			return err
		case <-t.C:
		}
	}
}

// attempt bounds one readiness check, so that a server that accepts and then hangs does not
// hold the wait past its deadline.
func attempt(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(ctx)
}

// WaitHTTP waits until GET url answers 200, p (if not nil) exits, or d passes.
func WaitHTTP(ctx context.Context, p *Proc, url string, d time.Duration) error {
	return Poll(ctx, p, d, "GET "+url, func(ctx context.Context) error {
		return attempt(ctx, time.Second, func(ctx context.Context) error { return Get(ctx, url, nil) })
	})
}

// Get sends GET url and hands the body of a 200 answer to read (nil: the body is dropped);
// any other status is an error.
func Get(ctx context.Context, url string, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if read == nil {
		return nil
	}
	if err := read(resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// WaitTCP waits until addr accepts a connection, p (if not nil) exits, or d passes.
func WaitTCP(ctx context.Context, p *Proc, addr string, d time.Duration) error {
	return Poll(ctx, p, d, "connect "+addr, func(ctx context.Context) error {
		return attempt(ctx, time.Second, func(ctx context.Context) error {
			var dl net.Dialer
			c, err := dl.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		})
	})
}

// BuildNATSServer builds github.com/nats-io/nats-server/v2 (the version in go.mod) into dir
// and returns the binary's path. It runs `go build` in the current directory, which must be
// inside the Herald module; the Go build cache makes a rebuild take about a second.
func BuildNATSServer(ctx context.Context, dir string) (string, error) {
	return goBuild(ctx, dir, "nats-server", "github.com/nats-io/nats-server/v2")
}

// BuildHerald builds github.com/herald-notify/herald/cmd/herald into dir and returns the
// binary's path. Like [BuildNATSServer] it runs in the current directory, anywhere inside
// the Herald module (a test's package directory will do).
func BuildHerald(ctx context.Context, dir string) (string, error) {
	return goBuild(ctx, dir, "herald", "github.com/herald-notify/herald/cmd/herald")
}

// RedisServer finds redis-server: $HERALD_REDIS_SERVER, else the PATH.
func RedisServer() (string, error) {
	if bin := os.Getenv("HERALD_REDIS_SERVER"); bin != "" {
		return bin, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found (apt-get install redis-server, or make deps): %w", err)
	}
	return bin, nil
}

func goBuild(ctx context.Context, dir, name, pkg string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// NATS is a nats-server process with JetStream.
type NATS struct {
	*Proc
	// URL is the client URL, nats://127.0.0.1:<port>.
	URL string
	// MonitorURL is the HTTP monitoring endpoint (/varz, /jsz, /healthz).
	MonitorURL string
}

// StartNATS starts bin (see [BuildNATSServer]) with JetStream, file storage under
// <Env.Dir>/<name>-data, on free loopback ports, and waits until its health check reports
// JetStream ready.
func (e *Env) StartNATS(ctx context.Context, bin string) (*NATS, error) {
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	port, mport := ports[0], ports[1]
	data, err := os.MkdirTemp(e.Dir, "nats-data-")
	if err != nil {
		return nil, err
	}
	p, err := e.Start("nats-server", bin, []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port),
		"-m", strconv.Itoa(mport), "-js", "-sd", data}, nil)
	if err != nil {
		return nil, err
	}
	n := &NATS{Proc: p, URL: fmt.Sprintf("nats://127.0.0.1:%d", port), MonitorURL: fmt.Sprintf("http://127.0.0.1:%d", mport)}
	if err := WaitHTTP(ctx, p, n.MonitorURL+"/healthz?js-enabled-only=true", 20*time.Second); err != nil {
		p.Kill()
		return nil, err
	}
	return n, nil
}

// Redis is a redis-server process.
type Redis struct {
	*Proc
	// Addr is 127.0.0.1:<port>; URL is redis://Addr.
	Addr, URL string
}

// StartRedis starts redis-server from the PATH (or $HERALD_REDIS_SERVER) on a free loopback
// port, without persistence, and waits until it answers PING.
func (e *Env) StartRedis(ctx context.Context) (*Redis, error) {
	bin, err := RedisServer()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p, err := e.Start("redis-server", bin, []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", e.Dir, "--daemonize", "no", "--protected-mode", "no",
		"--loglevel", "warning"}, nil)
	if err != nil {
		return nil, err
	}
	r := &Redis{Proc: p, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	r.URL = "redis://" + r.Addr
	if err := WaitRedis(ctx, p, r.Addr, 10*time.Second); err != nil {
		p.Kill()
		return nil, err
	}
	return r, nil
}

// WaitRedis waits until the redis-server at addr answers PING, p (if not nil) exits, or d
// passes. A server replaying its append-only file answers LOADING until it is done, so this
// also waits for the replay.
func WaitRedis(ctx context.Context, p *Proc, addr string, d time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	return Poll(ctx, p, d, "redis-server PING", func(ctx context.Context) error {
		return attempt(ctx, time.Second, func(ctx context.Context) error { return c.Ping(ctx).Err() })
	})
}

// StartHerald runs `<bin> <command> <args...>` with env (HERALD_* variables) and, when
// readyURL is not empty, waits up to 30 s until GET readyURL answers 200.
func (e *Env) StartHerald(ctx context.Context, bin, command string, args, env []string, readyURL string) (*Proc, error) {
	p, err := e.Start("herald-"+command, bin, append([]string{command}, args...), env)
	if err != nil {
		return nil, err
	}
	if readyURL == "" {
		return p, nil
	}
	if err := WaitHTTP(ctx, p, readyURL, 30*time.Second); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// PeakRSS returns VmHWM of process pid in bytes.
func PeakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every Linux platform Go
// supports.
const clockTicks = 100

// CPUTime returns utime+stime of process pid (os.Getpid() for this one).
func CPUTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its closing ')' are fixed.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
