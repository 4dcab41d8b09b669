package importer_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/herald-notify/herald/internal/importer"
)

// TestRegister: the campaign is registered once, after the options and the file are checked
// and before any row is published; a refusal (a tenant past its campaign cap) ends the
// import with its own error, nothing queued and no reject file left behind.
func TestRegister(t *testing.T) {
	t.Parallel()
	js := setup(t)
	refused := errors.New("tenant shop already has 2 campaigns, the most HERALD_CAMPAIGNS_MAX_PER_TENANT allows")
	cases := []struct {
		name     string
		campaign string
		err      error // what Register answers
		queued   int64
	}{
		{"refused", "c-refused", refused, 0},
		{"registered", "c-ok", nil, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "base.csv", "phone,name\n+79001230001,Анна\n+79001230002,Иван\n")
			calls := 0
			var queuedAtRegister uint64
			opts := importer.Options{File: file, Campaign: tc.campaign, Template: "bonus_expiring", Tenant: "shop",
				Map: map[string]string{"name": "name"}, Jobs: jobOpts,
				Register: func(context.Context) error {
					calls++
					queuedAtRegister = storedCount(t, js)
					return tc.err
				}}
			before := storedCount(t, js)
			sum, err := importer.Run(t.Context(), js, opts)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("Run: %v, want %v", err, tc.err)
			}
			if calls != 1 || queuedAtRegister != before {
				t.Fatalf("Register called %d times, with %d jobs queued by then (want once, before any)", calls, queuedAtRegister-before)
			}
			if sum.Queued != tc.queued || int64(storedCount(t, js)-before) != tc.queued {
				t.Fatalf("queued %d (stream +%d), want %d", sum.Queued, storedCount(t, js)-before, tc.queued)
			}
			if _, err := os.Stat(file + ".rejects.csv"); !os.IsNotExist(err) {
				t.Fatalf("reject file left behind: %v", err)
			}
		})
	}
	// Bad options are reported before anything is registered.
	calls := 0
	_, err := importer.Run(t.Context(), js, importer.Options{File: writeFile(t, "b.csv", "phone\n+79001230001\n"),
		Campaign: "bad campaign!", Template: "t", Jobs: jobOpts, Register: func(context.Context) error { calls++; return nil }})
	if !errors.Is(err, importer.ErrUsage) || calls != 0 {
		t.Fatalf("bad campaign name: %v, %d registrations", err, calls)
	}
}
