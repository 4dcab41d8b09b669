package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
)

// TestHistoryOutOfRedis follows a notification through the whole deployment (API, worker,
// simulator) past HERALD_HOT_TTL: its delivered record is archived in the history bucket;
// once Redis has dropped it (the test deletes the record and its message index, as the hot
// TTL would), the API's route still answers with it, the same id posted or republished is
// a duplicate and never sent twice, and a late read webhook, found by message id alone,
// updates the history without the record coming back into Redis.
func TestHistoryOutOfRedis(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{
		Sim:    func(c *sim.Config) { c.WebhookURL = "" }, // the test sends the statuses itself
		Config: func(c *config.Config) { c.HotTTL = time.Minute },
	})
	ctx := context.Background()
	const id = "hist-1.order:42"
	ref := job.Ref(harness.Tenant, id)
	get := func(t *testing.T) (int, status.Record) {
		t.Helper()
		code, out := call(t, http.MethodGet, h.APIURL+"/v1/notifications/"+url.PathEscape(id), harness.APIKey, nil, nil)
		var rec status.Record
		if code == http.StatusOK {
			rec = decode[status.Record](t, out)
		}
		return code, rec
	}

	body := mustJSON(t, orderJob(id, "+79001235001"))
	if code, out := postJob(t, h, body); code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, out)
	}
	var msgID string
	testutil.Eventually(t, wait, func() bool {
		if r := h.Record(id); r != nil && r.ProviderMessageID != "" {
			msgID = r.ProviderMessageID
			return true
		}
		return false
	}, "%s sent", id)
	if code, out := postSigned(t, h, statusWebhook(t, msgID, status.Delivered)); code != http.StatusOK {
		t.Fatalf("delivered webhook: %d %s", code, out)
	}

	// Delivered is finished: archived, then retired (its TTL in Redis cut to the hot TTL).
	hist, err := h.JS.KeyValue(ctx, streams.HistoryKV)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool {
		e, err := hist.Get(ctx, status.ArchiveKey(ref))
		if err != nil {
			return false
		}
		var r status.Record
		ttl, _ := h.RDB.PTTL(ctx, status.RecordKey(ref)).Result()
		return json.Unmarshal(e.Value(), &r) == nil && r.State == status.Delivered && ttl > 0 && ttl <= time.Minute
	}, "%s archived and retired", id)

	// The hot TTL passes.
	if err := h.RDB.Del(ctx, status.RecordKey(ref), "herald:m:{"+msgID+"}").Err(); err != nil {
		t.Fatal(err)
	}
	if code, rec := get(t); code != http.StatusOK || rec.State != status.Delivered || rec.ProviderMessageID != msgID || len(rec.History) != 1 {
		t.Fatalf("GET after the record left Redis: %d %+v, want it delivered from the history", code, rec)
	}

	// Posted again: the API answers with the finished record, a duplicate.
	code, out := postJob(t, h, body)
	if res := decode[map[string]any](t, out); code != http.StatusOK || res["duplicate"] != true || res["state"] != status.Delivered {
		t.Fatalf("post again: %d %s, want the delivered duplicate", code, out)
	}
	batch := mustJSON(t, map[string]any{"notifications": []any{orderJob(id, "+79001235001")}})
	code, out = call(t, http.MethodPost, h.APIURL+"/v1/notifications/batch", harness.APIKey, batch, nil)
	if res := decode[struct {
		Results []map[string]any `json:"results"`
	}](t, out); code >= 300 || len(res.Results) != 1 || res.Results[0]["duplicate"] != true {
		t.Fatalf("batch again: %d %s, want the delivered duplicate", code, out)
	}
	// Republished past JetStream's duplicate window (another Nats-Msg-Id): the worker's
	// claim meets the tombstone, and the simulator sees no second send.
	var j job.Job
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatal(err)
	}
	j.Tenant = harness.Tenant
	data, _ := json.Marshal(&j)
	msg := &nats.Msg{Subject: streams.SubjectTransactional, Data: data, Header: nats.Header{}}
	msg.Header.Set(streams.HeaderMsgID, ref+"#again")
	if _, err := h.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	cons, err := h.JS.Consumer(ctx, streams.JobsStream, streams.ConsumerTransactional)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer >= 2
	}, "the republished job handled")
	if n := h.SentPerJob()["white:"+id]; n != 1 {
		t.Fatalf("%s sent %d times on white, want once", id, n)
	}

	// A late read report, by message id alone, updates the history.
	if code, out := postSigned(t, h, statusWebhook(t, msgID, status.Read)); code != http.StatusOK {
		t.Fatalf("read webhook: %d %s", code, out)
	}
	if code, rec := get(t); code != http.StatusOK || rec.State != status.Read {
		t.Fatalf("GET after the late read: %d %+v, want read", code, rec)
	}
	if n, _ := h.RDB.Exists(ctx, status.RecordKey(ref)).Result(); n != 0 {
		t.Fatalf("the record of %s is back in Redis", ref)
	}
	if _, err := hist.Get(ctx, status.ArchiveKey(job.Ref(harness.Tenant, "no-such"))); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("history lookup of an unknown id: %v", err)
	}
}
