package sim_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
)

// TestWebhookSlowReceiverGetsEveryStatus: a receiver that does not answer in time (herald
// dev busy with a large batch) is retried past maxAttempts, unlike one that refuses
// (TestWebhookDropCounted), so every status still arrives once it catches up.
func TestWebhookSlowReceiverGetsEveryStatus(t *testing.T) {
	t.Parallel()
	const slowCalls = 8 // more than the attempts a refusing receiver gets
	var calls atomic.Int64
	release := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= slowCalls {
			// Answers only after the client gave up (the server may not notice that it did).
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(recv.Close)
	t.Cleanup(func() { close(release) }) // runs first: no handler outlives the test
	s, srv := start(t, sim.Config{WebhookURL: recv.URL, HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	if r := send(t, srv, textBody("79001234567", "")); r.status != 200 {
		t.Fatalf("send: %d", r.status)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return s.Stats().Webhooks.Statuses == 3 },
		"statuses delivered = %d, want 3 (%+v)", s.Stats().Webhooks.Statuses, s.Stats().Webhooks)
	if st := s.Stats().Webhooks; st.Dropped != 0 || st.Retries < slowCalls {
		t.Errorf("stats %+v, want none dropped and the timed-out calls retried", st)
	}
}
