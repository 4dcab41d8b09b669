package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-notify/herald/internal/benchenv"
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
	var b Binaries
	var err error
	if b.Herald, err = benchenv.BuildHerald(ctx, dir); err != nil {
		return b, err
	}
	if b.NATSServer, err = benchenv.BuildNATSServer(ctx, dir); err != nil {
		return b, err
	}
	b.RedisServer, err = benchenv.RedisServer()
	return b, err
}

// proc is one child process that can be killed and started again with the same command
// line: each start is a new benchenv process from the same Spec, whose log survives restarts
// (appended) and notes an exit that kill did not cause.
type proc struct {
	spec benchenv.Spec

	mu sync.Mutex
	// runs are every start, the current one last.
	runs []*benchenv.Proc
}

func newProc(name, bin, log string, args, env []string) *proc {
	return &proc{spec: benchenv.Spec{Name: name, Bin: bin, Args: args, Env: env, Log: log, AppendLog: true, NoteExit: true}}
}

func (p *proc) name() string { return p.spec.Name }

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.runs); n > 0 {
		if cur := p.runs[n-1]; !exited(cur) {
			return fmt.Errorf("%s: already running (pid %d)", p.spec.Name, cur.Pid())
		}
	}
	bp, err := benchenv.Launch(p.spec)
	if err != nil {
		return err
	}
	p.runs = append(p.runs, bp)
	return nil
}

// current is the latest start (nil if never started).
func (p *proc) current() *benchenv.Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.runs) == 0 {
		return nil
	}
	return p.runs[len(p.runs)-1]
}

// kill sends SIGKILL to the process by its pid and waits until it has exited.
func (p *proc) kill() {
	if cur := p.current(); cur != nil {
		cur.Kill()
	}
}

// crashes counts the exits that kill did not cause (a process that died on its own).
func (p *proc) crashes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.runs {
		if exited(r) && !r.Stopped() {
			n++
		}
	}
	return n
}

func exited(p *benchenv.Proc) bool {
	done, _ := p.Exited()
	return done
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
	ports, err := benchenv.FreePorts(3 * n)
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
			proc:    newProc("nats-"+name, bin, filepath.Join(dir, name+".log"), []string{"-c", cf}, nil),
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
	return benchenv.WaitHTTP(ctx, n.current(), n.monitor+"/healthz", d)
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
	port, err := benchenv.FreePort()
	if err != nil {
		return nil, err
	}
	rd := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		return nil, err
	}
	r := &redisNode{
		proc: newProc("redis", bin, filepath.Join(dir, "redis.log"), []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", rd, "--save", "",
			"--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
			"--protected-mode", "no", "--loglevel", "warning"}, nil),
		addr: fmt.Sprintf("127.0.0.1:%d", port),
	}
	r.url = "redis://" + r.addr
	return r, r.startAndWait(ctx)
}

// startAndWait starts redis-server and waits until it has replayed its AOF and answers PING.
func (r *redisNode) startAndWait(ctx context.Context) error {
	if err := r.start(); err != nil {
		return err
	}
	return benchenv.WaitRedis(ctx, r.current(), r.addr, 30*time.Second)
}
