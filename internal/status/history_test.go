package status_test

import (
	"slices"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/status"
)

// rows flattens a record's history the way `herald status` shows it: each attempt, then
// each state change reported on it.
func rows(rec *status.Record) []string {
	var out []string
	for _, a := range rec.History {
		out = append(out, a.Channel+" "+firstState(a))
		for _, c := range a.Statuses {
			out = append(out, a.Channel+" "+c.State)
		}
	}
	return out
}

// firstState is the state an attempt was recorded with: sent, when reports changed it.
func firstState(a status.Attempt) string {
	if len(a.Statuses) == 0 {
		return a.State
	}
	return status.Sent
}

// TestHistoryRowPerStateChange: sent, delivered and read are three rows, each with its
// time; a repeated or out-of-order report adds none, and a report that came before the
// send was recorded is a row at the send's time.
func TestHistoryRowPerStateChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	for i, tc := range []struct {
		name    string
		early   []string // reported before the attempt is recorded
		reports []string // reported after
		want    []string
	}{
		{"in order", nil, []string{"delivered", "read"}, []string{"white sent", "white delivered", "white read"}},
		{"repeated and late", nil, []string{"delivered", "delivered", "read", "delivered"}, []string{"white sent", "white delivered", "white read"}},
		{"read first", nil, []string{"read", "delivered"}, []string{"white sent", "white read"}},
		{"delivered before the send was recorded", []string{"delivered"}, []string{"read"}, []string{"white sent", "white delivered", "white read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJob("hist-"+tc.name, 500+i)
			msg := "wamid.hist." + tc.name
			if adm := e.begin(t, j, "w1", time.Minute); adm.Verdict != status.Claimed {
				t.Fatalf("Begin = %s", adm.Verdict)
			}
			apply := func(st string) {
				if _, _, _, err := e.store.Apply(ctx, status.Report{JobRef: ref(j.ID), MessageID: msg, State: st, Channel: "white"}); err != nil {
					t.Fatalf("Apply(%s): %v", st, err)
				}
			}
			for _, st := range tc.early {
				apply(st)
			}
			e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: msg})
			for _, st := range tc.reports {
				apply(st)
			}
			rec := e.get(t, j.ID)
			if got := rows(rec); !slices.Equal(got, tc.want) {
				t.Fatalf("rows = %q, want %q", got, tc.want)
			}
			a := rec.History[0]
			prev := a.At
			for _, c := range a.Statuses {
				if _, err := time.Parse(time.RFC3339Nano, c.At); err != nil || c.At < prev {
					t.Errorf("status %s at %q (%v): want a time not before %s", c.State, c.At, err, prev)
				}
				prev = c.At
			}
			if last := a.Statuses[len(a.Statuses)-1]; a.StatusAt != "" && last.At != a.StatusAt && len(tc.early) == 0 {
				t.Errorf("the last status row at %s, the attempt's status_at %s", last.At, a.StatusAt)
			}
		})
	}
}
