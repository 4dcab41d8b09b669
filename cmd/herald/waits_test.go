package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/importer"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// TestViewsSayWhyJobsWait: at 04:00 in Moscow a bulk import is held by quiet hours and a
// scheduled one by its send_at; herald status says which and until when, and herald campaign
// show counts each campaign's held jobs by reason with their release. Not parallel: the CLI
// reads its settings from the environment.
func TestViewsSayWhyJobsWait(t *testing.T) {
	night := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC) // 04:00 MSK
	h := harness.Start(t, harness.Options{Now: func() time.Time { return night },
		Config: func(c *config.Config) { c.QuietHours = "21:00-09:00" }})
	t.Setenv("HERALD_NATS_URL", h.Cfg.NATSURL)
	t.Setenv("HERALD_API_URL", h.APIURL)
	t.Setenv("HERALD_API_KEY", harness.APIKey)

	file := filepath.Join(t.TempDir(), "base.csv")
	if err := os.WriteFile(file, []byte("phone,first_name,bonus,expires\n+79001230001,Анна,1,30.11.2026\n+79001230002,Иван,2,30.11.2026\n+79001230003,Олег,3,30.11.2026\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sendAt := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	tests := []struct {
		campaign string
		extra    []string
		state    string
		status   string // what herald status says
		show     string // what herald campaign show says
	}{
		{"night", nil, status.Scheduled, "waiting for quiet hours in the recipient's time zone (HERALD_QUIET_HOURS; bulk jobs only) until 2026-11-25T06:00:00Z",
			"waiting  3 jobs: waiting for quiet hours"},
		{"later", []string{"--send-at", sendAt.Format(time.RFC3339)}, "", "",
			"waiting  3 jobs: waiting for its send_at time until " + sendAt.Format(time.RFC3339)},
	}
	for _, tc := range tests {
		t.Run(tc.campaign, func(t *testing.T) {
			args := append([]string{"import", file, "--campaign", tc.campaign, "--template", "bonus_expiring", "--tenant", harness.Tenant,
				"--map", "name=first_name", "--map", "amount=bonus", "--map", "date=expires"}, tc.extra...)
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != exitOK {
				t.Fatalf("import: exit %d: %s", code, errb.String())
			}
			id := importer.JobID(tc.campaign, "+79001230002")
			// An imported job has no record before its send_at fires: only the view says.
			if tc.status != "" {
				testutil.Eventually(t, 15*time.Second, func() bool {
					rec := h.Record(id)
					return rec != nil && rec.State == tc.state && (tc.state != status.Scheduled || tc.extra != nil || rec.Reason != "")
				}, "%s %s", id, tc.state)
				out.Reset()
				if code := run([]string{"status", id}, &out, &errb); code != exitOK || !strings.Contains(out.String(), tc.status) {
					t.Fatalf("status: exit %d, %q; want it to say %q (%s)", code, out.String(), tc.status, errb.String())
				}
			}
			testutil.Eventually(t, 15*time.Second, func() bool {
				out.Reset()
				return run([]string{"campaign", "show", tc.campaign}, &out, &errb) == exitOK && strings.Contains(out.String(), tc.show)
			}, "campaign show saying %q", tc.show)
		})
	}
}

// TestRecordWait: what a record holds says why it waits: a worker's hold reason with its
// release time, else a future send_at; a record that does not wait says nothing.
func TestRecordWait(t *testing.T) {
	t.Parallel()
	soon := time.Now().Add(time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name string
		rec  map[string]any
		want string
	}{
		{"tier hold", map[string]any{"state": "scheduled", "reason": "tier until " + soon}, "messaging tier: unique recipients per 24 h (HERALD_WHITE_DAILY_UNIQUE) until " + soon},
		{"unknown reason", map[string]any{"state": "scheduled", "reason": "maintenance until " + soon}, "waiting for maintenance until " + soon},
		{"send_at from the API", map[string]any{"state": "scheduled", "send_at": soon}, "its send_at time until " + soon},
		{"send_at passed", map[string]any{"state": "queued", "send_at": past}, ""},
		{"delivered", map[string]any{"state": "delivered", "reason": "tier until " + soon}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := recordWait(tc.rec)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("recordWait = %q, want %q", got, tc.want)
			}
		})
	}
}
