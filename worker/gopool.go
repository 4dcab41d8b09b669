package worker

import (
	"sync/atomic"
	"time"
)

// gopool runs jobs on goroutines that outlive one job. A job's goroutine grows its stack
// to tens of kB (HTTP client, tracing, Redis): started afresh for every job it copies its
// stack several times over (runtime.copystack was 7% of a busy worker's CPU). An idle
// goroutine waits idle for the next job, then exits, so a quiet worker holds none.
type gopool struct {
	work chan func()
	idle time.Duration
	// live counts the pool's goroutines, started those ever started (for tests).
	live, started atomic.Int64
}

func newGopool(idle time.Duration) *gopool {
	return &gopool{work: make(chan func()), idle: idle}
}

// Go runs f on an idle goroutine of the pool, or on a new one when none is idle: it never
// waits for a goroutine to become free.
func (p *gopool) Go(f func()) {
	select {
	case p.work <- f:
	default:
		p.live.Add(1)
		p.started.Add(1)
		go p.run(f)
	}
}

func (p *gopool) run(f func()) {
	defer p.live.Add(-1)
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(p.idle)
		select {
		case f = <-p.work:
		case <-t.C:
			return
		}
	}
}
