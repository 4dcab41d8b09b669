package chaos

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestChaos is the small version of `make chaos`: 3,000 jobs through a 3-node JetStream
// cluster (R3), Redis with an append-only file and three worker processes, while a worker is
// killed -9 every 1.5 s and one NATS node and Redis are killed and restarted once each.
func TestChaos(t *testing.T) {
	t.Parallel()
	// Building herald and nats-server on a cold CI cache has its own budget, apart from the run.
	bctx, bcancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer bcancel()
	dir := t.TempDir()
	t0 := time.Now()
	bin, err := Build(bctx, filepath.Join(dir, "bin"))
	t.Logf("binaries built in %s", time.Since(t0).Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log *slog.Logger
	if os.Getenv("HERALD_TEST_VERBOSE") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	rep, err := Run(ctx, Config{
		Dir: filepath.Join(dir, "run"), Bin: bin, Jobs: 3000, Rate: 200, KillEvery: 1500 * time.Millisecond,
		Downtime: time.Second, SettleTimeout: time.Minute, Log: log,
	})
	if rep != nil {
		t.Log("\n" + rep.String())
	}
	if err != nil {
		t.Fatalf("chaos run: %v (logs under %s)", err, dir)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"published", rep.Published, rep.Jobs},
		{"lost", rep.Lost, 0},
		{"duplicates", rep.Duplicates, 0},
		{"NATS restarts", rep.NATSRestarts, 1},
		{"Redis restarts", rep.RedisRestarts, 1},
		{"queue left", int(rep.QueueLeft), 0},
		{"processes that exited on their own", len(rep.Crashes), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if rep.Kills < 5 {
		t.Errorf("only %d worker kills: the chaos did not overlap the sends", rep.Kills)
	}
	// Every job reached the provider exactly once, except the unknown outcomes that never
	// did (at most once, not exactly once, is the design when a worker dies mid-call).
	if want := rep.Jobs - rep.UnknownNotSent; rep.Sends != want {
		t.Errorf("provider sends = %d, want %d (jobs - unknown never sent)", rep.Sends, want)
	}
	// An unknown outcome needs a worker killed during its provider call: a few per kill at
	// most, with a 10 ms provider and 200 sends/s across the fleet.
	if limit := 1 + 5*(rep.Kills+rep.RedisRestarts); rep.Unknown > limit {
		t.Errorf("unknown outcomes = %d, want at most %d for %d kills", rep.Unknown, limit, rep.Kills)
	}
	if rep.RedisKeysAfter < rep.RedisKeysBefore {
		t.Errorf("Redis lost keys across its restart: %d before, %d after", rep.RedisKeysBefore, rep.RedisKeysAfter)
	}
}
