package chaos

import (
	"context"
	"fmt"
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

// Binaries are the programs a chaos run starts as processes.
type Binaries struct {
	// Herald is the herald binary (`herald worker`, `herald api`).
	Herald string
	// NATSServer is a nats-server binary built from the module's nats-server version.
	NATSServer string
	// RedisServer is a redis-server binary.
	RedisServer string
}

// Build compiles herald and nats-server (the nats-server version in go.mod) into dir with
// `go build`, and finds redis-server ($HERALD_REDIS_SERVER or the PATH). It must run inside
// the Herald module; with the Go build cache warm (the same flags as `go test`) it takes
// seconds.
func Build(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{Herald: filepath.Join(dir, "herald"), NATSServer: filepath.Join(dir, "nats-server")}
	for _, t := range []struct{ out, pkg string }{
		{b.Herald, "github.com/herald-notify/herald/cmd/herald"},
		{b.NATSServer, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
	}
	b.RedisServer = os.Getenv("HERALD_REDIS_SERVER")
	if b.RedisServer == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return b, fmt.Errorf("redis-server not found (make deps installs it): %w", err)
		}
		b.RedisServer = p
	}
	return b, nil
}

// proc is one child process that can be killed and started again with the same command
// line. Its output goes to a log file that survives restarts (appended).
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	killing bool
	// crashes counts exits that kill did not cause (a process that died on its own).
	crashes atomic.Int32
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: already running (pid %d)", p.name, p.cmd.Process.Pid)
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// The children die with the driver even when the driver itself is killed -9, so a
	// failed or interrupted run leaves no servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if !p.killing {
			p.crashes.Add(1)
			fmt.Fprintf(f, "chaos: %s exited on its own: %v\n", p.name, err)
		}
		p.killing = false
		p.mu.Unlock()
		f.Close()
		close(done)
	}()
	p.cmd, p.done, p.killing = cmd, done, false
	return nil
}

// running returns the current process and its exit channel (nil if never started).
func (p *proc) running() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// kill sends SIGKILL to the process by its pid and waits until it has exited.
func (p *proc) kill() {
	cmd, done := p.running()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	p.mu.Lock()
	p.killing = true
	p.mu.Unlock()
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// alive tells whether the process is running.
func (p *proc) alive() bool {
	cmd, done := p.running()
	if cmd == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	// Hold every listener until all are chosen so the kernel cannot hand out one twice.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
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

// waitFor polls cond until it is true, the deadline passes or ctx ends. Polling is the
// wait: nothing here sleeps to let something happen.
func waitFor(ctx context.Context, d time.Duration, what string, cond func(ctx context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		if cond(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s: %w", what, d, ctx.Err())
		case <-t.C:
		}
	}
}

// httpOK tells whether GET url answers 200.
func httpOK(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// natsNode is one nats-server process of the cluster, with JetStream storing under its own
// directory, restartable on the same ports and store.
type natsNode struct {
	*proc
	url     string
	monitor string
}

// startCluster writes the configuration of n clustered JetStream nodes on loopback and
// starts them.
func startCluster(ctx context.Context, bin, dir string, n int) ([]*natsNode, error) {
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3*i+1]))
	}
	nodes := make([]*natsNode, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 8MB
jetstream {
  store_dir: %q
}
cluster {
  name: herald-chaos
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, ports[3*i], ports[3*i+2], filepath.Join(dir, name), ports[3*i+1], strings.Join(routes, ", "))
		cf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		nodes[i] = &natsNode{
			proc:    &proc{name: "nats-" + name, bin: bin, args: []string{"-c", cf}, env: os.Environ(), log: filepath.Join(dir, name+".log")},
			url:     fmt.Sprintf("nats://127.0.0.1:%d", ports[3*i]),
			monitor: fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+2]),
		}
	}
	for _, nd := range nodes {
		if err := nd.start(); err != nil {
			return nodes, err
		}
	}
	for _, nd := range nodes {
		if err := nd.waitHealthy(ctx, time.Minute); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// waitHealthy waits for the node's /healthz: in a cluster it answers 200 only once the
// node's JetStream has a meta leader and its streams and consumers are current.
func (n *natsNode) waitHealthy(ctx context.Context, d time.Duration) error {
	return waitFor(ctx, d, n.name+" healthy", func(ctx context.Context) bool {
		return n.alive() && httpOK(ctx, n.monitor+"/healthz")
	})
}

// redisNode is a redis-server process with an append-only file.
type redisNode struct {
	*proc
	addr string
	url  string
}

// startRedis starts redis-server with appendonly yes and appendfsync always: the status
// records are Herald's idempotency memory, and a claim or a "sent" record that an
// acknowledged write put there must survive a crash of Redis, or a redelivered job would be
// claimed afresh and sent again. With appendfsync always Redis fsyncs the AOF before it
// replies, so every reply a worker saw is on disk; with everysec a kill -9 of Redis may
// forget the last second of claims and records.
func startRedis(ctx context.Context, bin, dir string) (*redisNode, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rd := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		return nil, err
	}
	r := &redisNode{
		proc: &proc{name: "redis", bin: bin, args: []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", rd, "--save", "",
			"--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
			"--protected-mode", "no", "--loglevel", "warning"}, env: os.Environ(), log: filepath.Join(dir, "redis.log")},
		addr: fmt.Sprintf("127.0.0.1:%d", port),
	}
	r.url = "redis://" + r.addr
	return r, r.startAndWait(ctx)
}

func (r *redisNode) startAndWait(ctx context.Context) error {
	if err := r.start(); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	return waitFor(ctx, 30*time.Second, "redis-server ready", func(ctx context.Context) bool {
		if !r.alive() {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		// LOADING errors until the AOF is replayed; PING answers only then.
		return c.Ping(pctx).Err() == nil
	})
}
