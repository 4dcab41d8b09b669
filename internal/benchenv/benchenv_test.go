package benchenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

func TestServers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close(5 * time.Second) })
	bin, err := BuildNATSServer(ctx, filepath.Join(t.TempDir(), "bin"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := env.StartNATS(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := env.StartRedis(ctx)
	if err != nil {
		t.Fatal(err)
	}

	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.IsConnected() {
		t.Fatal("not connected to nats-server")
	}
	opt, err := redis.ParseURL(rd.URL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	for _, p := range []*Proc{ns.Proc, rd.Proc} {
		rss, err := p.PeakRSS()
		if err != nil || rss < 1<<20 {
			t.Errorf("%s: PeakRSS = %d, %v; want at least 1 MiB", p.Name, rss, err)
		}
		if _, err := p.CPU(); err != nil {
			t.Errorf("%s: CPU: %v", p.Name, err)
		}
	}
	env.Close(5 * time.Second)
	for _, p := range env.Procs() {
		if exited, _ := p.Exited(); !exited {
			t.Errorf("%s still running after Close", p.Name)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(p.Pid())); err == nil {
			t.Errorf("%s: /proc entry of pid %d still exists", p.Name, p.Pid())
		}
	}
}

func TestWaitFailures(t *testing.T) {
	t.Parallel()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		script string
		wait   func(context.Context, *Proc) error
		want   error
		inLog  string
	}{
		{"exits before ready", "echo boom-exit; exit 3",
			func(ctx context.Context, p *Proc) error {
				return WaitHTTP(ctx, p, "http://127.0.0.1:"+strconv.Itoa(port)+"/", 10*time.Second)
			}, ErrExited, "boom-exit"},
		{"never ready", "echo boom-hang; exec sleep 30",
			func(ctx context.Context, p *Proc) error {
				return WaitTCP(ctx, p, "127.0.0.1:"+strconv.Itoa(port), 2*time.Second) // time for sh to start and print
			}, context.DeadlineExceeded, "boom-hang"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { env.Close(time.Second) })
			p, err := env.Start("sh", "/bin/sh", []string{"-c", tt.script}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tt.wait(context.Background(), p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("wait = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.inLog) {
				t.Errorf("error does not show the log (%q): %v", tt.inLog, err)
			}
			if !strings.Contains(env.Logs(5), tt.inLog) {
				t.Errorf("Logs does not show %q:\n%s", tt.inLog, env.Logs(5))
			}
		})
	}
}

func TestStopKillsWhatIgnoresSIGINT(t *testing.T) {
	t.Parallel()
	env, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// An ignored signal stays ignored across exec: sleep ignores SIGINT.
	p, err := env.Start("stubborn", "/bin/sh", []string{"-c", `trap "" INT; echo ready; exec sleep 30`}, []string{"BENCHENV_TEST=1"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := env.Start("stubborn", "/bin/sh", []string{"-c", `trap "" INT; echo ready; exec sleep 30`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "stubborn-2" || filepath.Base(q.LogPath) != "stubborn-2.log" {
		t.Errorf("second process named %q (%s), want stubborn-2", q.Name, q.LogPath)
	}
	// SIGINT must arrive after the trap is set: wait until both have said so.
	for _, pr := range []*Proc{p, q} {
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(pr.Tail(1), "ready") {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start: %s", pr.Name, pr.Tail(5))
			}
			runtime.Gosched()
		}
	}
	if p.Stopped() {
		t.Error("Stopped before Stop")
	}
	start := time.Now()
	env.Close(200 * time.Millisecond)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Close took %s", el)
	}
	for _, pr := range []*Proc{p, q} {
		exited, err := pr.Exited()
		if !exited || err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("%s: exited=%v err=%v, want killed", pr.Name, exited, err)
		}
		if !pr.Stopped() {
			t.Errorf("%s: Stopped false after Close", pr.Name)
		}
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	env, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close(time.Second) })
	p, err := env.Start("true", "/bin/sh", []string{"-c", "echo $BENCHENV_X"}, []string{"BENCHENV_X=from-env"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.Tail(1); got != "from-env" {
		t.Errorf("log = %q, want the env variable echoed", got)
	}
}

func TestProcReaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pid     int
		wantErr bool
	}{
		{"self", os.Getpid(), false},
		{"no such process", 1 << 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rss, err := PeakRSS(tt.pid)
			if (err != nil) != tt.wantErr {
				t.Fatalf("PeakRSS err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && rss < 1<<20 {
				t.Errorf("PeakRSS = %d, want at least 1 MiB", rss)
			}
			_, err = CPUTime(tt.pid)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CPUTime err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
	// CPU time grows with work done.
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		after, err := CPUTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time did not grow from %s (x=%d)", before, x)
		}
	}
}

// TestLaunchRestart is how a chaos run uses Launch: one Spec started again and again, its log
// continued, an exit nobody asked for noted in the log and an asked-for one not.
func TestLaunchRestart(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "p.log")
	if err := os.WriteFile(log, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		spec      Spec
		kill      bool
		wantLines []string
	}{
		{"truncates", Spec{Name: "t", Bin: "/bin/sh", Args: []string{"-c", "echo $BENCHENV_X"}, Env: []string{"BENCHENV_X=one"}, Log: log},
			false, []string{"one"}},
		{"appends and notes an exit on its own", Spec{Name: "a", Bin: "/bin/sh", Args: []string{"-c", "echo two; exit 4"}, Log: log, AppendLog: true, NoteExit: true},
			false, []string{"one", "two", "benchenv: a exited on its own: exit status 4"}},
		{"no note for a kill", Spec{Name: "k", Bin: "/bin/sh", Args: []string{"-c", "echo three; exec sleep 30"}, Log: log, AppendLog: true, NoteExit: true},
			true, []string{"one", "two", "benchenv: a exited on its own: exit status 4", "three"}},
	}
	// Sequential: each case continues the log of the one before.
	for _, tt := range tests {
		p, err := Launch(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Kill)
		if tt.kill {
			err := Poll(context.Background(), p, 10*time.Second, "echo", func(context.Context) error {
				if !strings.Contains(p.Tail(1), "three") {
					return errors.New("not yet")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			p.Kill()
			if !p.Stopped() {
				t.Errorf("%s: Stopped false after Kill", tt.name)
			}
		}
		<-p.Done()
		if got := strings.Split(p.Tail(10), "\n"); !slices.Equal(got, tt.wantLines) {
			t.Errorf("%s: log = %q, want %q", tt.name, got, tt.wantLines)
		}
	}
}

func TestFreePortsDistinct(t *testing.T) {
	t.Parallel()
	ports, err := FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: %d repeated or invalid", ports, p)
		}
		seen[p] = true
	}
}

func TestPollWithoutProc(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		readyAt int
		d       time.Duration
		want    error
	}{
		{"ready on the third attempt", 3, 10 * time.Second, nil},
		{"never ready", 1 << 30, 100 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := 0
			err := Poll(context.Background(), nil, tt.d, "cond", func(context.Context) error {
				if n++; n < tt.readyAt {
					return fmt.Errorf("attempt %d", n)
				}
				return nil
			})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Poll = %v, want %v", err, tt.want)
			}
			if tt.want == nil && n != tt.readyAt {
				t.Errorf("ready after %d attempts, want %d", n, tt.readyAt)
			}
			if tt.want != nil && !strings.Contains(err.Error(), "last attempt: attempt") {
				t.Errorf("error lacks the last attempt: %v", err)
			}
		})
	}
}
