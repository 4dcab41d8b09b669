package worker

import (
	"testing"
	"time"
)

// TestStopSender: a stop announced by another worker for this account stops the channel; one
// for another account, or this worker's own announcement, does not; a shorter stop never
// shortens a longer one, and one stop is reported once.
func TestStopSender(t *testing.T) {
	t.Parallel()
	w := New(nil, nil, nil, map[string]Sender{"white": White{}, "sms": SMS{}}, Config{Limits: map[string]ChannelLimit{"white": {Sender: "white:100", Rate: 80}}})
	down := func(ch string) time.Duration {
		v, ok := w.senderDown.Load(ch)
		if !ok {
			return 0
		}
		return time.Until(v.(time.Time))
	}
	w.StopSender(SenderStop{Channel: "white", Sender: "white:999", For: time.Minute, Origin: "other"})
	if d := down("white:999"); d > 0 {
		t.Fatalf("another account's stop applied: %v", d)
	}
	w.StopSender(SenderStop{Channel: "white", Sender: "white:100", For: time.Minute, Origin: w.owner})
	if d := down("white:100"); d > 0 {
		t.Fatalf("own announcement applied again: %v", d)
	}
	w.StopSender(SenderStop{Channel: "white", Sender: "white:100", For: 5 * time.Minute, Origin: "other"})
	if d := down("white:100"); d < 4*time.Minute {
		t.Fatalf("stop for this account not applied: %v", d)
	}
	if w.markDown("white:100", time.Minute) {
		t.Fatal("a shorter stop over a running one was reported as new")
	}
	if d := down("white:100"); d < 4*time.Minute {
		t.Fatalf("a shorter stop shortened the running one: %v", d)
	}
	if !w.markDown("sms", time.Minute) || w.markDown("sms", 2*time.Minute) {
		t.Fatal("a new stop must be reported once, its extension not")
	}
	if d := down("sms"); d < 90*time.Second {
		t.Fatalf("a longer stop did not extend the running one: %v", d)
	}
}
