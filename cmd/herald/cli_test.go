package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/harness"
)

// TestHelp: every command and subcommand answers -h and --help with its usage on standard
// output and exit 0, starting nothing and reading no configuration (herald dev -h would
// otherwise block here serving; herald worker -h would name missing variables).
func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string // in the usage
	}{
		{[]string{"-h"}, "herald dev"},
		{[]string{"dev", "-h"}, "usage: herald dev"},
		{[]string{"worker", "-h"}, "usage: herald worker"},
		{[]string{"api", "--help"}, "usage: herald api"},
		{[]string{"sim", "-h"}, "Usage: herald sim"},
		{[]string{"send", "-h"}, "Usage: herald send"},
		{[]string{"status", "-h"}, "Usage: herald status"},
		{[]string{"status", "some-id", "--help"}, "Usage: herald status"},
		{[]string{"templates", "-h"}, "usage: herald templates COMMAND"},
		{[]string{"templates", "--help"}, "usage: herald templates COMMAND"},
		{[]string{"templates", "list", "-h"}, "usage: herald templates list"},
		{[]string{"templates", "add", "-h"}, "usage: herald templates add"},
		{[]string{"templates", "lint", "-h"}, "usage: herald templates lint"},
		{[]string{"templates", "sync", "-h"}, "usage: herald templates sync"},
		{[]string{"templates", "migrate", "-h"}, "usage: herald templates migrate"},
		{[]string{"import", "-h"}, "usage: herald import"},
		{[]string{"import", "base.csv", "--help"}, "usage: herald import"},
		{[]string{"campaign", "-h"}, "usage: herald campaign show"},
		{[]string{"campaign", "show", "-h"}, "usage: herald campaign show"},
		{[]string{"campaign", "cancel", "-h"}, "usage: herald campaign show"},
		{[]string{"dlq", "-h"}, "usage: herald dlq list"},
		{[]string{"dlq", "list", "-h"}, "usage: herald dlq list"},
		{[]string{"dlq", "replay", "-h"}, "usage: herald dlq list"},
		{[]string{"senders", "-h"}, "Usage: herald senders"},
		{[]string{"config", "-h"}, "usage: herald config check"},
		{[]string{"config", "check", "-h"}, "usage: herald config check"},
		{[]string{"migrate", "-h"}, "usage: herald migrate tenancy"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- run(tc.args, &out, &errb) }()
			select {
			case code := <-done:
				if code != exitOK {
					t.Fatalf("exit %d, want 0; stderr: %s", code, errb.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no answer in 20 s: the command started instead of printing its usage")
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("stdout does not hold %q:\n%s", tc.want, out.String())
			}
			if errb.Len() > 0 {
				t.Errorf("stderr not empty: %s", errb.String())
			}
		})
	}
}

// TestBadFlags: a bad flag or argument is one sentence on stderr and exit 2, without the
// flag package's "flag: help requested" or its usage dump.
func TestBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"dev", "-port", "1"}, "flag provided but not defined: -port (herald dev -h)"},
		{[]string{"worker", "extra"}, "herald worker takes no arguments"},
		{[]string{"status", "-output"}, "flag needs an argument: -output"},
		{[]string{"status"}, "want exactly one notification id"},
		{[]string{"templates"}, "name a command"},
		{[]string{"templates", "nope"}, "unknown templates command nope"},
		{[]string{"campaign", "show", "a", "b"}, "want exactly one campaign NAME"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errb.String())
			}
			if got := errb.String(); !strings.Contains(got, tc.want) || strings.Count(got, "\n") != 1 || strings.Contains(got, "help requested") {
				t.Errorf("stderr %q, want one line saying %q", got, tc.want)
			}
		})
	}
}

// TestFlagOrderAndSentences drives the CLI against a whole Herald: flags are read before or
// after the positional arguments, an unknown id is a sentence (never the API's JSON), and
// an import whose template cannot be sent is refused before anything is queued. Not
// parallel: the CLI reads its settings from the environment.
func TestFlagOrderAndSentences(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	t.Setenv("HERALD_NATS_URL", h.Cfg.NATSURL)
	t.Setenv("HERALD_API_URL", h.APIURL)
	t.Setenv("HERALD_API_KEY", harness.APIKey)

	var out, errb bytes.Buffer
	if code := run([]string{"send", "-id", "order-1-ready", "-to", "+79001234567", "-template", "order_ready", "-param", "order=1",
		"-param", "address=ул. Ленина, 1", "-param", "until=21.02.2027", "-button", "0=1"}, &out, &errb); code != exitOK {
		t.Fatalf("send: exit %d: %s", code, errb.String())
	}
	for _, args := range [][]string{
		{"status", "order-1-ready", "-output", "json"},
		{"status", "-output", "json", "order-1-ready"},
		{"status", "order-1-ready", "--output=json"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			var rec map[string]any
			if err := json.Unmarshal(out.Bytes(), &rec); err != nil || rec["id"] != "order-1-ready" {
				t.Fatalf("not the record as JSON (%v): %s", err, out.String())
			}
		})
	}

	file := filepath.Join(t.TempDir(), "base.csv")
	if err := os.WriteFile(file, []byte("phone,first_name\n+79001230001,Анна\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown id", []string{"status", "no-such"}, exitNotFound, "herald status: no notification with id no-such in tenant default\n"},
		{"unknown template", []string{"import", file, "--campaign", "c1", "--template", "no_such"}, exitUsage,
			"--template no_such: not in tenant default's catalogue"},
		{"missing --map", []string{"import", file, "--campaign", "c1", "--template", "bonus_expiring", "--map", "name=first_name"}, exitUsage,
			`needs params "amount", "date"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errb.String())
			}
			if got := errb.String(); !strings.Contains(got, tc.want) || strings.Contains(got, "{") {
				t.Errorf("stderr %q, want a sentence saying %q", got, tc.want)
			}
		})
	}
	if _, err := os.Stat(file + ".rejects.csv"); !os.IsNotExist(err) {
		t.Errorf("a refused import left a reject file: %v", err)
	}
}

// TestLintAndAddCountAlike: herald templates lint and herald templates add report the same
// findings and count the same ones as predicting a rejection (errors, not warnings), the
// template name's among them.
func TestLintAndAddCountAlike(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "bad.json")
	def := `{"name":"Bad Name","language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Ваш заказ готов. Скидка 50% на следующий {{1}}!!!","example":{"body_text":[["заказ"]]}}]}`
	if err := os.WriteFile(file, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, cmd := range []string{"lint", "add"} {
		var out, errb bytes.Buffer
		if code := run([]string{"templates", cmd, file}, &out, &errb); code != exitFailure {
			t.Fatalf("templates %s: exit %d, want 1: %s", cmd, code, errb.String())
		}
		all := out.String() + errb.String()
		for _, want := range []string{"error bad_name template", "body[17:23]", "warning exclamation", "herald templates: 3 finding(s) predict a rejection"} {
			if !strings.Contains(all, want) {
				t.Errorf("templates %s does not say %q:\n%s", cmd, want, all)
			}
		}
		said = append(said, all)
	}
	if said[0] != said[1] {
		t.Errorf("lint and add differ:\n%s\n---\n%s", said[0], said[1])
	}
}
