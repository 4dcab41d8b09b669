package status_test

import (
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/status"
)

func TestFailedReportFallsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name     string
		fallback bool
		channels []string
		// want
		state  string
		resume bool
		idx    int
	}{
		{"fallback to sms", true, cascade, status.Sent, true, 1},
		{"permanent for the job", false, cascade, status.Failed, false, 0},
		{"last channel", true, []string{"white"}, status.Failed, false, 0},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			j := newJob("fb-"+c.name[:4]+string(rune('a'+i)), 100+i)
			if adm, err := e.store.Begin(t.Context(), j, "w1", time.Minute, c.channels); err != nil || adm.Verdict != status.Claimed {
				t.Fatalf("Begin = %v, %v", adm.Verdict, err)
			}
			e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: "wamid." + j.ID})
			_, rec, changed, err := e.store.Apply(t.Context(), status.Report{MessageID: "wamid." + j.ID, State: status.Failed,
				Code: "131026", Reason: "not on WhatsApp", Fallback: c.fallback})
			if err != nil || !changed {
				t.Fatalf("Apply = %v, changed %v", err, changed)
			}
			if rec.State != c.state || rec.Resume != c.resume || rec.ChannelIdx != c.idx {
				t.Fatalf("record = state %s resume %v idx %d, want %s %v %d", rec.State, rec.Resume, rec.ChannelIdx, c.state, c.resume, c.idx)
			}
			// A repeated report changes nothing, and a resumed job is claimable once, on sms.
			if _, _, changed, _ := e.store.Apply(t.Context(), status.Report{MessageID: "wamid." + j.ID, State: status.Failed, Fallback: c.fallback}); changed {
				t.Fatal("a repeated failed report changed the record")
			}
			adm, err := e.store.BeginCheck(t.Context(), j, "w2", time.Minute, c.channels, status.Check{Idx: 0})
			if err != nil {
				t.Fatal(err)
			}
			want := status.Done
			if c.resume {
				want = status.Claimed
			}
			if adm.Verdict != want {
				t.Fatalf("BeginCheck = %s, want %s", adm.Verdict, want)
			}
			if c.resume {
				e.attempt(t, j.ID, "w2", status.Outcome{Mode: status.ModeSent, Channel: "sms", ChannelIdx: 1, Attempts: 1, ProviderMessageID: "kannel:" + j.ID})
				if adm := e.begin(t, j, "w3", time.Minute); adm.Verdict != status.Done {
					t.Fatalf("after the sms went out Begin = %s, want done", adm.Verdict)
				}
			}
		})
	}
}

func TestDeadlineCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	check := status.Check{Idx: 0, Deadline: true, Reason: "not delivered within 10m"}
	cases := []struct {
		name   string
		report string // status report before the deadline fires ("" none)
		want   status.Verdict
	}{
		{"still sent: falls back", "", status.Claimed},
		{"delivered: cancelled", status.Delivered, status.Done},
		{"read: cancelled", status.Read, status.Done},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			j := newJob("dl-"+string(rune('a'+i)), 200+i)
			e.sent(t, j, "wamid.dl"+j.ID)
			if c.report != "" {
				if _, _, _, err := e.store.Apply(t.Context(), status.Report{MessageID: "wamid.dl" + j.ID, State: c.report}); err != nil {
					t.Fatal(err)
				}
			}
			adm, err := e.store.BeginCheck(t.Context(), j, "w2", time.Minute, cascade, check)
			if err != nil {
				t.Fatal(err)
			}
			if adm.Verdict != c.want {
				t.Fatalf("BeginCheck = %s, want %s", adm.Verdict, c.want)
			}
			if c.want != status.Claimed {
				return
			}
			rec := adm.Record
			if rec.ChannelIdx != 1 || rec.Channel != "sms" || !rec.Resume {
				t.Fatalf("record after the deadline = %+v", rec)
			}
			last := rec.History[len(rec.History)-1]
			if last.Code != "deadline" || last.Channel != "white" {
				t.Fatalf("history does not record the deadline: %+v", last)
			}
			// The check fires once: a second copy finds the job claimed, then done.
			if adm, _ := e.store.BeginCheck(t.Context(), j, "w3", time.Minute, cascade, check); adm.Verdict != status.Busy {
				t.Fatalf("second check while claimed = %s, want busy", adm.Verdict)
			}
			e.attempt(t, j.ID, "w2", status.Outcome{Mode: status.ModeSent, Channel: "sms", ChannelIdx: 1, Attempts: 1, ProviderMessageID: "kannel:" + j.ID})
			if adm, _ := e.store.BeginCheck(t.Context(), j, "w3", time.Minute, cascade, check); adm.Verdict != status.Done {
				t.Fatalf("check after the sms = %s, want done", adm.Verdict)
			}
			// A late delivered on WhatsApp is recorded, not acted on.
			_, rec, _, err = e.store.Apply(t.Context(), status.Report{MessageID: "wamid.dl" + j.ID, State: status.Delivered})
			if err != nil || rec.Channel != "sms" || rec.History[0].State != status.Delivered {
				t.Fatalf("late delivered: %v %+v", err, rec)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	open, _, err := e.store.Window(t.Context(), "", "+79000000901")
	if err != nil || open {
		t.Fatalf("Window before any inbound = %v, %v", open, err)
	}
	if err := e.store.OpenWindow(t.Context(), "", "+79000000901", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	open, until, err := e.store.Window(t.Context(), "", "+79000000901")
	if err != nil || !open || time.Until(until) < 23*time.Hour || time.Until(until) > 24*time.Hour+time.Second {
		t.Fatalf("Window = %v until %v, %v", open, until, err)
	}
}

// TestEarlyFailedReportFallsBack: the provider reports the message failed before the worker
// recorded the send; the record then moves to the next channel (resume) instead of failing.
func TestEarlyFailedReportFallsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, c := range []struct {
		fallback bool
		want     string
		resume   bool
	}{{true, status.Sent, true}, {false, status.Failed, false}} {
		j := newJob("early-"+string(rune('a'+i)), 400+i)
		if adm := e.begin(t, j, "w1", time.Minute); adm.Verdict != status.Claimed {
			t.Fatalf("Begin = %s", adm.Verdict)
		}
		msg := "wamid.early" + j.ID
		if _, _, _, err := e.store.Apply(t.Context(), status.Report{JobRef: j.Ref(), MessageID: msg, State: status.Failed,
			Code: "131026", Reason: "not on WhatsApp", Fallback: c.fallback}); err != nil {
			t.Fatal(err)
		}
		_, rec := e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: msg})
		if rec.State != c.want || rec.Resume != c.resume || (c.resume && (rec.ChannelIdx != 1 || rec.Channel != "sms")) {
			t.Fatalf("fallback=%v: record state %s resume %v idx %d channel %s", c.fallback, rec.State, rec.Resume, rec.ChannelIdx, rec.Channel)
		}
		if rec.History[0].State != status.Failed {
			t.Fatalf("attempt %+v, want failed", rec.History[0])
		}
	}
}

// TestWindowPerBusinessNumber: a window belongs to the conversation with one business number:
// a customer writing to another number of the same company opens nothing for this one.
func TestWindowPerBusinessNumber(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ours, theirs := e.store.ForBusiness("100200300"), e.store.ForBusiness("555000111")
	const to = "+79000000902"
	if err := ours.OpenWindow(t.Context(), "555000111", to, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if open, _, err := ours.Window(t.Context(), "", to); err != nil || open {
		t.Fatalf("our window after an inbound to another number = %v, %v", open, err)
	}
	if open, _, err := theirs.Window(t.Context(), "", to); err != nil || !open {
		t.Fatalf("the other number's window = %v, %v", open, err)
	}
	if open, _, err := ours.Window(t.Context(), "555000111", to); err != nil || !open {
		t.Fatalf("the other number's window, asked by id = %v, %v", open, err)
	}
	if err := ours.OpenWindow(t.Context(), "", to, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if open, _, err := ours.Window(t.Context(), "", to); err != nil || !open {
		t.Fatalf("our window after an inbound to us = %v, %v", open, err)
	}
}
