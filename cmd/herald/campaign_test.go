package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// TestImportAndCancelCampaign drives the CLI against a whole Herald: an import (run twice:
// nobody queued twice), a cancel in the middle of sending (unsent jobs end canceled, none is
// sent after), and the campaign view adding up. Not parallel: the CLI reads its settings
// from the environment.
func TestImportAndCancelCampaign(t *testing.T) {
	h := harness.Start(t, harness.Options{Config: func(c *config.Config) { c.WhiteMPS = 40 }})
	t.Setenv("HERALD_NATS_URL", h.Cfg.NATSURL)
	t.Setenv("HERALD_API_URL", h.APIURL)
	t.Setenv("HERALD_API_KEY", harness.APIKey)

	const rows = 300
	var b strings.Builder
	b.WriteString("phone,first_name,bonus,expires\n")
	for i := range rows {
		fmt.Fprintf(&b, "+7901%07d,Анна %d,%d,30.11.2026\n", i, i, 100+i)
	}
	b.WriteString("12,Bad Phone,1,30.11.2026\n")
	file := filepath.Join(t.TempDir(), "base.csv")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"import", file, "--campaign", "bonus-nov", "--template", "bonus_expiring",
		"--map", "name=first_name", "--map", "amount=bonus", "--map", "date=expires", "--output", "json"}
	summary := func() map[string]any {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitOK {
			t.Fatalf("import exit %d: %s", code, errb.String())
		}
		var s map[string]any
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("summary %q: %v", out.String(), err)
		}
		return s
	}
	first := summary()
	if first["queued"] != float64(rows) || first["rejected"] != float64(1) {
		t.Fatalf("first import: %v", first)
	}
	rejects, _ := os.ReadFile(file + ".rejects.csv")
	if !strings.Contains(string(rejects), "Bad Phone") || !strings.Contains(string(rejects), "to") {
		t.Fatalf("reject file: %q", rejects)
	}
	// The reject file is never overwritten: a re-run names a new one (or the old is removed).
	var out0, err0 bytes.Buffer
	if code := run(args, &out0, &err0); code != exitUsage || !strings.Contains(err0.String(), "--rejects") {
		t.Fatalf("re-run over an existing reject file: exit %d, %s", code, err0.String())
	}
	args = append(args, "--rejects", file+".rejects-2.csv")
	if again := summary(); again["queued"] != float64(0) || again["already_queued"] != float64(rows) {
		t.Fatalf("second import queued again: %v", again)
	}

	// Cancel once some have gone out (40/s: the campaign takes ~7 s).
	testutil.Eventually(t, 30*time.Second, func() bool { return h.Sim.Count() >= 30 }, "sending started")
	var out, errb bytes.Buffer
	if code := run([]string{"campaign", "cancel", "bonus-nov"}, &out, &errb); code != exitOK {
		t.Fatalf("cancel exit %d: %s", code, errb.String())
	}
	canceledAt := time.Now()
	// Every job ends sent/delivered or canceled.
	var view campaign.View
	testutil.Eventually(t, 60*time.Second, func() bool {
		out.Reset()
		if run([]string{"campaign", "show", "-output", "json", "bonus-nov"}, &out, &errb) != exitOK {
			return false
		}
		if err := json.Unmarshal(out.Bytes(), &view); err != nil {
			return false
		}
		return view.States[status.Delivered]+view.States[status.Canceled] == rows
	}, "every job delivered or canceled: %+v", view.States)
	if view.States[status.Canceled] == 0 || view.Queued != rows || view.Seen != rows || view.Pending != 0 || view.Canceled == nil {
		t.Fatalf("view after cancel: %+v", view)
	}
	sent := 0
	for _, m := range h.Sim.Messages() {
		sent++
		if m.At.After(canceledAt.Add(2 * time.Second)) {
			t.Fatalf("job %s sent %s after the cancel", m.JobID, m.At.Sub(canceledAt))
		}
	}
	if int64(sent) != view.Channels["white"] || int64(sent) != view.States[status.Delivered] {
		t.Fatalf("simulator saw %d sends, view says %v / %v", sent, view.Channels, view.States)
	}
	if want := float64(sent) * h.Cfg.PriceUtility; view.Total != want || view.Category != "UTILITY" {
		t.Fatalf("cost %v %s, want %v for UTILITY", view.Total, view.Category, want)
	}
	// The text view is for people; it names the numbers.
	out.Reset()
	if code := run([]string{"campaign", "show", "bonus-nov"}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "canceled") {
		t.Fatalf("text view: %d %q", code, out.String())
	}
	if code := run([]string{"campaign", "show", "no-such"}, &out, &errb); code != exitNotFound {
		t.Fatalf("unknown campaign: exit %d", code)
	}
}
