package worker

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/testutil"
)

// TestGopool: a job never waits for a free goroutine (blocked jobs do not hold up new
// ones), finished goroutines take the next jobs, and idle ones exit.
func TestGopool(t *testing.T) {
	t.Parallel()
	p := newGopool(200 * time.Millisecond)
	var running atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		p.Go(func() {
			defer wg.Done()
			running.Add(1)
			<-release
		})
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return running.Load() == 20 }, "20 blocked jobs run at once")
	close(release)
	wg.Wait()

	// One after the other, 1000 short jobs mostly find a goroutine that finished the last.
	before := p.started.Load()
	for range 1000 {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
	}
	if n := p.started.Load() - before; n > 100 {
		t.Fatalf("%d goroutines started for 1000 jobs run one at a time: not reused", n)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return p.live.Load() == 0 }, "idle goroutines exit")
}
