package worker_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/producer"
)

func TestZZProfile(t *testing.T) {
	h := harness.Start(t, harness.Options{Sim: func(c *sim.Config) { c.Statuses = []string{}; c.MaxMessages = 1000 }, Config: func(c *config.Config) { c.Concurrency = 512; c.WhiteMPS = 1e6 }})
	const n = 30000
	jobs := make([]*producer.Job, n)
	for i := range jobs {
		jobs[i] = orderJob(i)
		jobs[i].ID = fmt.Sprintf("p-%d", i)
	}
	start := time.Now()
	if _, err := h.Producer.PublishBatch(context.Background(), jobs); err != nil {
		t.Fatal(err)
	}
	pub := time.Since(start)
	time.AfterFunc(8*time.Second, func() {
		f, _ := os.Create("/tmp/gor.txt")
		_ = pprof.Lookup("goroutine").WriteTo(f, 1)
		f.Close()
	})
	testutil.Eventually(t, 120*time.Second, func() bool { return h.Sim.Stats().Channels["white"].Accepted >= n }, "all sent")
	t.Logf("published in %v; %d jobs in %v = %.0f/s", pub, n, time.Since(start), float64(n)/time.Since(start).Seconds())
}

func init() { runtime.SetBlockProfileRate(10000) }
