// Command heraldchaos runs Herald's chaos test (`make chaos`): 50,000 jobs through a 3-node
// JetStream cluster with R3 streams, redis-server with an append-only file, three
// `herald worker` processes, `herald api` and the provider simulator, while a random worker
// is killed -9 every few seconds and one NATS node and Redis are killed and restarted once
// each. It prints the report (internal/chaos) and exits 1 when a job was lost or sent twice.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/herald-notify/herald/internal/chaos"
)

func main() {
	os.Exit(run())
}

func run() int {
	jobs := flag.Int("jobs", 50000, "jobs to publish")
	rate := flag.Float64("rate", 400, "HERALD_WHITE_MPS: fleet-wide sends per second (stretches the run to jobs/rate)")
	workers := flag.Int("workers", 3, "worker processes")
	killEvery := flag.Duration("kill-every", 4*time.Second, "kill -9 a random worker this often")
	downtime := flag.Duration("downtime", 2*time.Second, "how long the NATS node and Redis stay down")
	latency := flag.Duration("latency", 10*time.Millisecond, "simulated provider response time")
	seed := flag.Uint64("seed", 0, "chaos schedule seed (0: random)")
	dir := flag.String("dir", "", "keep stores and logs here (default: a temporary directory, removed on success)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	keep := *dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "heraldchaos")
		if err != nil {
			fmt.Fprintln(os.Stderr, "heraldchaos:", err)
			return 1
		}
		*dir = d
	}
	log.Info("building herald and nats-server", "dir", *dir)
	bin, err := chaos.Build(ctx, filepath.Join(*dir, "bin"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "heraldchaos:", err)
		return 1
	}
	rep, err := chaos.Run(ctx, chaos.Config{
		Dir: filepath.Join(*dir, "run"), Bin: bin, Jobs: *jobs, Rate: *rate, Workers: *workers,
		KillEvery: *killEvery, Downtime: *downtime, SimLatency: *latency, Seed: *seed,
		SettleTimeout: 3 * time.Minute, Log: log,
	})
	if rep != nil {
		fmt.Print(rep.String())
	}
	failed := err != nil || rep.Lost > 0 || rep.Duplicates > 0 || rep.Published != rep.Jobs
	if err != nil {
		fmt.Fprintln(os.Stderr, "heraldchaos:", err)
	}
	if failed || keep {
		fmt.Fprintln(os.Stderr, "stores and logs kept in", *dir)
		if failed {
			return 1
		}
		return 0
	}
	_ = os.RemoveAll(*dir)
	return 0
}
