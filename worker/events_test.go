package worker_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/herald-notify/herald/worker"
)

// TestEventJSON: the hand-written encoding is byte for byte encoding/json's.
func TestEventJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 23, 59, 58, 123456789, time.UTC)
	tests := []worker.Event{
		{ID: "a", State: "sent", At: at},
		{ID: "order-1", State: "failed", Channel: "white", ProviderMessageID: "wamid.HBg=", Reason: "<b>&\"quoted\"\n\u2028",
			Code: "131026", Campaign: "черная пятница", Tenant: "t1", Metadata: map[string]string{"z": "1", "a": "<>", "ключ": "\x01"},
			Attempts: 3, At: at.Add(-time.Hour)},
		{ID: "\xff bad utf-8", State: "delivered", Attempts: 0, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{ID: "empty-meta", State: "queued", Metadata: map[string]string{}, At: at},
	}
	for _, e := range tests {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzEventJSON(f *testing.F) {
	f.Add("id", "sent", "white", "wamid.1", "reason", "131026", "camp", "tenant", "k", "v", 2, int64(1_700_000_000_123_456_789))
	f.Fuzz(func(t *testing.T, id, state, ch, pmid, reason, code, camp, tenant, k, v string, attempts int, nanos int64) {
		e := worker.Event{ID: id, State: state, Channel: ch, ProviderMessageID: pmid, Reason: reason, Code: code,
			Campaign: camp, Tenant: tenant, Metadata: map[string]string{k: v}, Attempts: attempts, At: time.Unix(0, nanos).UTC()}
		want, err := json.Marshal(e)
		if err != nil {
			return // a time encoding/json refuses; the worker's clock never gives one
		}
		if got := e.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
		}
	})
}
