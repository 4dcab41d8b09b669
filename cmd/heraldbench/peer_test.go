package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/white"
	"github.com/herald-notify/herald/worker"
)

// peerGolden is Herald's Cloud API body of e2e job sampleJob. The peer module's test
// (cmd/heraldbench/peer, body_test.go) checks that its Body writes the same bytes, so a change
// of Herald's request shows here first: update the file (HERALDBENCH_UPDATE_GOLDEN=1) and the
// peer's Body with it.
var peerGolden = filepath.Join("testdata", "order_ready_7.json")

// TestHeraldBodyGolden sends e2e job sampleJob through Herald's own Cloud API client (as the
// floor does) to a recording server and compares the body with peerGolden.
func TestHeraldBodyGolden(t *testing.T) {
	t.Parallel()
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"messages":[{"id":"wamid.1"}]}`)
	}))
	defer srv.Close()
	var def *templates.Definition
	for _, d := range templates.SampleDefinitions() {
		if d.Name == "order_ready" {
			def = d
		}
	}
	cfg := config.Defaults()
	j, err := job.Decode(floorJob("e2e-7", e2eJob("")(sampleJob).To, sampleJob), cfg.JobOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sender := worker.White{Client: white.New(white.Config{BaseURL: srv.URL, PhoneNumberID: benchPhoneID, Token: benchToken}, nil)}
	if _, err := sender.Send(ctx, worker.Message{Job: j, Template: def}); err != nil {
		t.Fatal(err)
	}
	body := <-got
	if os.Getenv("HERALDBENCH_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(peerGolden, append(body, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(peerGolden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, bytes.TrimSuffix(want, []byte("\n"))) {
		t.Errorf("Herald's body of job %d changed (update %s and the peer's Body):\n got %s\nwant %s", sampleJob, peerGolden, body, want)
	}
}

func TestSameBody(t *testing.T) {
	t.Parallel()
	base := `{"to":"79000000007","type":"template","template":{"name":"order_ready","components":[{"type":"body"}]},"biz_opaque_callback_data":"e2e-7"}`
	tests := []struct {
		name, other string
		wantErr     string // "" for equal
	}{
		{"same", base, ""},
		{"other job id", strings.Replace(base, "e2e-7", "peer-7", 1), ""},
		{"no job id", strings.Replace(base, `,"biz_opaque_callback_data":"e2e-7"`, "", 1), ""},
		{"keys in another order", `{"type":"template","to":"79000000007","template":{"components":[{"type":"body"}],"name":"order_ready"}}`, ""},
		{"other recipient", strings.Replace(base, "79000000007", "79000000008", 1), "differs"},
		{"other component", strings.Replace(base, `"body"`, `"header"`, 1), "differs"},
		{"not JSON", `{"to":`, "second body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := sameBody(json.RawMessage(base), json.RawMessage(tt.other))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("sameBody: %v, want equal", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("sameBody = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestPeerArrivals(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	arr := func(ids ...string) []arrival {
		var out []arrival
		for i, id := range ids {
			out = append(out, arrival{JobID: id, At: base.Add(time.Duration(i) * time.Millisecond)})
		}
		return out
	}
	tests := []struct {
		name string
		in   []arrival
		n    int
		want []string
	}{
		{"only the peer's", arr("e2e-0", "peer-0", "e2e-1", "peer-1"), 2, []string{"peer-0", "peer-1"}},
		{"a repeat counts once, the first", arr("peer-1", "peer-0", "peer-1"), 2, []string{"peer-1", "peer-0"}},
		{"out of range and malformed", arr("peer-2", "peer--1", "peer-x", "peer-0"), 2, []string{"peer-0"}},
		{"none", arr("e2e-0"), 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, a := range peerArrivals(tt.in, tt.n) {
				got = append(got, a.JobID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("peerArrivals = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadEnqueueReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, log string
		want      enqueueReport
		wantErr   bool
	}{
		{"report last", "a warning\n{\"jobs\":5,\"seconds\":0.5,\"cpu_seconds\":0.25}\n", enqueueReport{Jobs: 5, Seconds: 0.5, CPUSeconds: 0.25}, false},
		{"no report", "peer: -redis: required\n", enqueueReport{}, true},
		{"empty", "", enqueueReport{}, true},
		{"zero seconds", "{\"jobs\":5,\"seconds\":0}\n", enqueueReport{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "peer-enqueue.log")
			if err := os.WriteFile(path, []byte(tt.log), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readEnqueueReport(path)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Errorf("readEnqueueReport = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
