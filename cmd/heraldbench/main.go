// Command heraldbench measures Herald and writes BENCHMARKS.md (`make bench`).
//
// Everything runs as real processes on loopback (internal/benchenv): a nats-server built from
// the version in go.mod, redis-server, and the herald binary as `herald worker`, `herald api`
// and `herald sim`. Each measurement is taken next to a raw baseline on the same servers in
// the same round, and reported as medians over the rounds with the ratio. Sections:
//
//   - e2e (issue 7): producer → JetStream → worker processes → simulator over HTTP, beside raw
//     JetStream, the floor (floor.go) and the peer (issue 16: the asynq pipeline of the module
//     in ./peer, built here with GOWORK=off); also the worker's peak RSS with a large backlog
//     waiting;
//   - pacing (issue 3): several workers sharing one sender limit, a bulk backlog and a
//     transactional trickle; rate, bursts, pair interval, redeliveries, priority;
//   - pool (issue 14): one tenant's pool of white numbers (a fleet file) drained by several
//     workers; the pool's rate against the sum of the numbers' caps, the worst second per number;
//   - import (issue 6): a generated CSV imported into JetStream next to the raw async
//     publish rate, and `herald import` as a child process when the binary has it;
//   - dev (issue 17): `herald dev` as one process with its defaults, on the embedded store and
//     on redis-server from the PATH, sent one batch through the API; time to accept, records
//     right after the answer, send rate against the cap, status webhooks delivered, its CPU;
//   - memory (issue 16): what a finished notification leaves in Redis (used_memory, and
//     MEMORY USAGE by kind of key) and in JetStream (bytes per stream), and the Redis calls
//     it cost, without webhooks and with a sent, delivered and read history.
//
// -quick runs every section small (well under a minute) to check the program works.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/herald-notify/herald/internal/benchenv"
	"github.com/herald-notify/herald/internal/importer"
)

// options are the command line.
type options struct {
	out, only, cache, herald string
	quick, keep              bool
	rounds                   int
	e2e                      e2eOpts
	pacing                   pacingOpts
	pool                     poolOpts
	importRows               int
	dev                      devOpts
	mem                      memOpts
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "write the report to this file (BENCHMARKS.md); it is always printed")
	flag.StringVar(&o.only, "only", "e2e,pacing,pool,import,dev,memory", "sections to run, comma-separated")
	flag.BoolVar(&o.quick, "quick", false, "small sizes and one round: checks the program works in under a minute")
	flag.BoolVar(&o.keep, "keep", false, "keep the processes' logs and data directory")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per measurement; medians are reported")
	flag.StringVar(&o.cache, "cache", "", "where nats-server is built (default: the user cache directory)")
	flag.StringVar(&o.herald, "bin", "", "the herald binary (default: built from ./cmd/herald into a temporary directory)")
	flag.IntVar(&o.e2e.jobs, "jobs", 200_000, "e2e: jobs per round")
	flag.IntVar(&o.e2e.workers, "workers", 2, "e2e: worker processes")
	flag.IntVar(&o.e2e.concurrency, "concurrency", 256, "e2e: HERALD_WORKER_CONCURRENCY of each worker (256 is the default)")
	flag.IntVar(&o.e2e.backlog, "backlog", 1_000_000, "e2e: jobs waiting while one worker's peak RSS is read (0: skip)")
	flag.DurationVar(&o.e2e.backlogRun, "backlog-run", 20*time.Second, "e2e: how long that worker runs")
	flag.IntVar(&o.pacing.bulk, "pacing-bulk", 30_000, "pacing: bulk backlog")
	flag.IntVar(&o.pacing.workers, "pacing-workers", 4, "pacing: worker processes")
	flag.Float64Var(&o.pacing.mps, "pacing-mps", 500, "pacing: HERALD_WHITE_MPS")
	flag.IntVar(&o.pacing.repeat, "pacing-repeat", 3, "pacing: consecutive bulk jobs to one recipient (1: every job its own)")
	flag.StringVar(&o.e2e.profile, "profile", "", "e2e: write each worker's 15 s CPU profile of round 1, and its allocations, into this directory")
	flag.BoolVar(&o.e2e.peer.off, "no-peer", false, "e2e: skip the peer (the asynq pipeline of cmd/heraldbench/peer)")
	flag.IntVar(&o.e2e.peer.concurrency, "peer-concurrency", 200, "e2e: the peer's asynq server concurrency")
	flag.IntVar(&o.pool.numbers, "pool-numbers", 10, "pool: white numbers in the tenant's pool")
	flag.Float64Var(&o.pool.mps, "pool-mps", 100, "pool: each number's mps")
	flag.IntVar(&o.pool.workers, "pool-workers", 4, "pool: worker processes")
	flag.IntVar(&o.pool.jobs, "pool-jobs", 40_000, "pool: bulk backlog")
	flag.IntVar(&o.importRows, "import-rows", 1_000_000, "import: generated rows")
	flag.IntVar(&o.dev.jobs, "dev-jobs", 5_000, "dev: jobs in the batch posted to herald dev")
	flag.IntVar(&o.mem.jobs, "memory-jobs", 5_000, "memory: jobs per round")
	flag.DurationVar(&o.mem.settle, "memory-settle", 2*time.Second, "memory: wait after the last send or webhook before the servers are read")
	memEnv := flag.String("memory-env", "", "memory: KEY=VALUE,... added to the worker's and the API's environment (e.g. HERALD_STATUS_TTL=1h)")
	flag.Parse()
	if *memEnv != "" {
		o.mem.env = strings.Split(*memEnv, ",")
	}
	o.pacing.txnPerSec, o.pacing.pairInterval = 20, 6*time.Second
	o.pacing.repeat = max(o.pacing.repeat, 1)
	if o.quick {
		o.rounds = 1
		o.e2e.jobs, o.e2e.backlog, o.e2e.backlogRun = 5_000, 20_000, 3*time.Second
		o.pacing.bulk = 2_000
		o.pool.jobs = 4_000
		o.importRows = 50_000
		o.dev.jobs = 400
		o.mem.jobs = 1_000
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "heraldbench:", err)
		os.Exit(1)
	}
}

// results holds what the sections measured; a nil slice is a section not run.
type results struct {
	e2e     []e2eRound
	backlog *e2eBacklog
	pacing  []pacingRound
	pool    []poolRound
	imports []importRound
	cli     cliState
	dev     []devRound
	devNote string // why a dev store was not measured
	memory  []memRound
}

func run(ctx context.Context, o options) error {
	sections := map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		switch s = strings.TrimSpace(s); s {
		case "e2e", "pacing", "pool", "import", "dev", "memory":
			sections[s] = true
		case "":
		default:
			return fmt.Errorf("-only: unknown section %q (e2e, pacing, pool, import, dev, memory)", s)
		}
	}
	root, err := os.MkdirTemp("", "heraldbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "logs and data in", root)
	} else {
		defer os.RemoveAll(root)
	}
	if o.cache == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			c = os.TempDir()
		}
		o.cache = filepath.Join(c, "herald-bench")
	}
	started := time.Now()
	fmt.Fprintln(os.Stderr, "building nats-server, herald and the peer")
	var b bins
	if b.nats, err = benchenv.BuildNATSServer(ctx, o.cache); err != nil {
		return err
	}
	b.herald = o.herald
	if b.herald == "" {
		if b.herald, err = benchenv.BuildHerald(ctx, filepath.Join(root, "bin")); err != nil {
			return err
		}
	}
	if sections["e2e"] && !o.e2e.peer.off {
		if b.peer, err = buildPeer(ctx, filepath.Join(root, "bin")); err != nil {
			return err
		}
	}

	var res results
	if sections["e2e"] {
		for r := 1; r <= o.rounds; r++ {
			fmt.Fprintf(os.Stderr, "== e2e round %d/%d: %d jobs, %d workers\n", r, o.rounds, o.e2e.jobs, o.e2e.workers)
			rr, err := runE2ERound(ctx, dirFor(root, "e2e", r), b, o.e2e, r)
			if err != nil {
				return fmt.Errorf("e2e round %d: %w", r, err)
			}
			fmt.Fprintf(os.Stderr, "  => herald %.0f/s (steady %.0f/s), raw %.0f/s, ratio %.3f, p50 %s p99 %s, worker peak RSS %d MiB\n",
				rr.herald, rr.steady, rr.raw, rr.herald/rr.raw, rr.p50.Round(time.Millisecond), rr.p99.Round(time.Millisecond), rr.workerRSS>>20)
			if p := rr.peer; p != nil {
				fmt.Fprintf(os.Stderr, "  => peer %.0f/s, Herald / peer %.3f\n", p.rate, rr.herald/p.rate)
			}
			res.e2e = append(res.e2e, rr)
		}
		if o.e2e.backlog > 0 {
			fmt.Fprintf(os.Stderr, "== e2e backlog: %d jobs waiting\n", o.e2e.backlog)
			bl, err := runBacklog(ctx, dirFor(root, "backlog", 1), b, o.e2e)
			if err != nil {
				return fmt.Errorf("e2e backlog: %w", err)
			}
			res.backlog = &bl
		}
	}
	if sections["pacing"] {
		for r := 1; r <= o.rounds; r++ {
			fmt.Fprintf(os.Stderr, "== pacing round %d/%d: %d bulk jobs, %d workers, HERALD_WHITE_MPS=%.0f\n", r, o.rounds, o.pacing.bulk, o.pacing.workers, o.pacing.mps)
			pr, err := runPacingRound(ctx, dirFor(root, "pacing", r), b, o.pacing, r)
			if err != nil {
				return fmt.Errorf("pacing round %d: %w", r, err)
			}
			res.pacing = append(res.pacing, pr)
		}
	}
	if sections["pool"] {
		for r := 1; r <= o.rounds; r++ {
			fmt.Fprintf(os.Stderr, "== pool round %d/%d: %d numbers at %.0f mps, %d workers, %d bulk jobs\n", r, o.rounds, o.pool.numbers, o.pool.mps, o.pool.workers, o.pool.jobs)
			pr, err := runPoolRound(ctx, dirFor(root, "pool", r), b, o.pool, r)
			if err != nil {
				return fmt.Errorf("pool round %d: %w", r, err)
			}
			res.pool = append(res.pool, pr)
		}
	}
	if sections["import"] {
		if err := runImports(ctx, root, b, o, &res); err != nil {
			return err
		}
	}
	if sections["dev"] {
		if err := runDev(ctx, root, b, o, &res); err != nil {
			return err
		}
	}
	if sections["memory"] {
		if err := runMemory(ctx, root, b, o, &res); err != nil {
			return err
		}
	}
	report := render(o, &res, time.Since(started))
	fmt.Print(report)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(report), 0o644)
	}
	return nil
}

// runImports runs the import rounds on one nats-server (each round imports a fresh campaign
// and purges it afterwards).
func runImports(ctx context.Context, root string, b bins, o options, res *results) error {
	_, err := withStack(ctx, filepath.Join(root, "import"), b, nil, func(s *stack) (struct{}, error) {
		return struct{}{}, importsOn(ctx, s, root, o, res)
	})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// importsOn runs the import rounds on the fresh stack s.
func importsOn(ctx context.Context, s *stack, root string, o options, res *results) error {
	csv := filepath.Join(root, "import", "customers.csv")
	fmt.Fprintf(os.Stderr, "== import: writing %d rows to %s\n", o.importRows, csv)
	if err := importer.WriteBenchCSV(csv, o.importRows); err != nil {
		return err
	}
	res.cli = probeImportCLI(ctx, s.bins.herald)
	for r := 1; r <= o.rounds; r++ {
		fmt.Fprintf(os.Stderr, "== import round %d/%d: %d rows\n", r, o.rounds, o.importRows)
		ir, err := runImportRound(ctx, s, o.importRows, csv, r, &res.cli)
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		res.imports = append(res.imports, ir)
	}
	return nil
}
