package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/herald-notify/herald/internal/provider"
)

// senderStop is how long a worker leaves a sender alone after an account-level error.
const senderStop = time.Minute

// stopSender stops calling a channel whose sender the provider refused as a whole (368
// temporarily blocked, 131031 account locked, 190 token expired...): its jobs fall back at
// once instead of failing one by one, and operators are alerted (an error log and the
// herald_fallbacks{reason="sender"} metric). It is tried again after senderStop.
func (w *Worker) stopSender(ctx context.Context, ch string, pe *provider.Error, log *slog.Logger) {
	if w.markDown(ch, senderStop) {
		log.Error("ALERT: provider refused the sender; channel stopped for a minute, jobs fall back",
			"channel", ch, "code", pe.Code, "reason", pe.Reason)
		if w.cfg.AnnounceStop != nil {
			w.cfg.AnnounceStop(ctx, SenderStop{Channel: ch, Sender: w.cfg.Limits[ch].Sender, For: senderStop, Code: pe.Code, Origin: w.owner})
		}
	}
}

// markDown stops calling ch for d, unless a longer stop runs already; true when ch was not
// stopped before (so that one stop is alerted and announced once).
func (w *Worker) markDown(ch string, d time.Duration) bool {
	now := time.Now()
	until := now.Add(d)
	for {
		prev, loaded := w.senderDown.LoadOrStore(ch, until)
		if !loaded {
			return true
		}
		p := prev.(time.Time)
		if !p.Before(until) {
			return false // a stop at least as long runs already
		}
		if w.senderDown.CompareAndSwap(ch, prev, until) {
			return !now.Before(p)
		}
	}
}

// SenderStop is a channel stopped by one worker after an account-level error, announced to
// the fleet (see Config.AnnounceStop).
type SenderStop struct {
	Channel string `json:"channel"`
	// Sender names the account (white:<phone number id>): a worker sending from another
	// account on the same NATS ignores the stop.
	Sender string        `json:"sender,omitempty"`
	For    time.Duration `json:"for_ns"` // from the moment it is received: no clock is shared
	Code   string        `json:"code"`
	Origin string        `json:"origin"` // the announcing worker, which ignores its own stop
}

// StopSender applies a stop another worker announced: this worker calls s.Channel no more
// for s.For, and its jobs fall back at once.
func (w *Worker) StopSender(s SenderStop) {
	if s.Origin == w.owner || s.For <= 0 || s.Sender != w.cfg.Limits[s.Channel].Sender {
		return
	}
	if w.markDown(s.Channel, min(s.For, 10*senderStop)) {
		w.log.Warn("channel stopped by another worker after an account error; jobs fall back",
			"channel", s.Channel, "code", s.Code, "for", s.For)
	}
}
