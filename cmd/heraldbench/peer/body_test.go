package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestBodyIsHeralds compares the peer's body of e2e job 7 with Herald's, byte for byte:
// ../testdata/order_ready_7.json, which heraldbench's TestHeraldBodyGolden checks against
// Herald's own Cloud API client.
func TestBodyIsHeralds(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("../testdata/order_ready_7.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Body(BenchJob("e2e-", 7))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSuffix(want, []byte("\n"))) {
		t.Errorf("Body:\n got %s\nwant %s", got, want)
	}
}

func TestBodyRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Job)
		want   string
	}{
		{"unknown template", func(j *Job) { j.Template = "nope" }, `template: unknown template "nope"`},
		{"missing parameter", func(j *Job) { delete(j.Params, "until") }, "params.until: missing"},
		{"missing button", func(j *Job) { delete(j.Buttons, "0") }, "buttons.0: missing"},
		{"letters in the number", func(j *Job) { j.To = "+7900abc" }, "to: not an E.164 number (8 characters)"},
		{"no number", func(j *Job) { j.To = "" }, "to: not an E.164 number (0 characters)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := BenchJob("peer-", 1)
			tt.change(&j)
			if _, err := Body(j); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Body = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
