package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// TestTemplateSubmittedReviewedSent drives the dev path of a new template: herald templates
// add prints it PENDING (the API submits it to the simulator's Cloud API), the simulator's
// review webhook makes it APPROVED (or REJECTED, as the lint predicted, for one added with
// -force), and the approved one is sent on WhatsApp. Not parallel: the CLI reads its
// settings from the environment.
func TestTemplateSubmittedReviewedSent(t *testing.T) {
	h := harness.Start(t, harness.Options{
		Config: func(c *config.Config) { c.WhiteWABAID = "100200301" },
		Sim:    func(c *sim.Config) { c.ReviewDelay = 200 * time.Millisecond },
	})
	t.Setenv("HERALD_NATS_URL", h.Cfg.NATSURL)
	t.Setenv("HERALD_API_URL", h.APIURL)
	t.Setenv("HERALD_API_KEY", harness.APIKey)

	dir := t.TempDir()
	tests := []struct {
		name, def string
		args      []string
		want      string
	}{
		{"fine", `{"name":"fine","language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Ваш заказ {{1}} готов к выдаче.","example":{"body_text":[["123"]]}}]}`,
			nil, "APPROVED"},
		{"promo", `{"name":"promo","language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Скидка 50% на всё! Заказ {{1}} ждёт.","example":{"body_text":[["123"]]}}]}`,
			[]string{"-force"}, "REJECTED"},
	}
	for _, tc := range tests {
		file := filepath.Join(dir, tc.name+".json")
		if err := os.WriteFile(file, []byte(tc.def), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		if code := run(append(append([]string{"templates", "add"}, tc.args...), file), &out, &errb); code != exitOK {
			t.Fatalf("add %s: exit %d: %s", tc.name, code, errb.String())
		}
		if got := out.String(); got != tc.name+".ru version 1 PENDING\n" {
			t.Fatalf("add %s printed %q, want it PENDING", tc.name, got)
		}
	}
	statuses := func() map[string]string {
		var out, errb bytes.Buffer
		if code := run([]string{"templates", "list", "-output", "json"}, &out, &errb); code != exitOK {
			t.Fatalf("list: exit %d: %s", code, errb.String())
		}
		var defs []struct{ Name, Status string }
		if err := json.Unmarshal(out.Bytes(), &defs); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, d := range defs {
			m[d.Name] = d.Status
		}
		return m
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		m := statuses()
		return m["fine"] == tests[0].want && m["promo"] == tests[1].want
	}, "the reviews")

	var out, errb bytes.Buffer
	if code := run([]string{"send", "-id", "fine-1", "-to", "+79001234567", "-template", "fine", "-param", "1=42"}, &out, &errb); code != exitOK {
		t.Fatalf("send: exit %d: %s", code, errb.String())
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		rec := h.Record("fine-1")
		return rec != nil && rec.State == status.Delivered && rec.Channel == "white"
	}, "fine-1 delivered on white")
}
