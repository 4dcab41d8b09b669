package status_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
)

// archiveEnv is a store with the history bucket on a real nats-server, over a real
// redis-server, with a hot TTL short enough for Redis to expire records during a test.
type archiveEnv struct {
	env
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// hot is the tests' HERALD_HOT_TTL: short, so real Redis expiry takes the records out.
const hot = 300 * time.Millisecond

func newArchiveEnv(t *testing.T) archiveEnv {
	t.Helper()
	c := testutil.StartRedis(t).Client(t)
	_, js := testutil.StartNATS(t).Connect(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := streams.Ensure(ctx, js, streams.Options{HistoryMaxAge: ttl}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, streams.HistoryKV)
	if err != nil {
		t.Fatal(err)
	}
	// The record times come from this clock; leases and expiry from Redis's.
	clock := func() time.Time { return time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC) }
	store := status.NewStore(c, ttl, clock).WithArchive(status.NewArchive(t.Context(), kv, nil), hot)
	return archiveEnv{env: env{store: store, rdb: c}, js: js, kv: kv}
}

// gone waits until Redis has dropped key (its hot TTL ran out).
func (e archiveEnv) gone(t *testing.T, key string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() bool {
		n, err := e.rdb.Exists(t.Context(), key).Result()
		return err == nil && n == 0
	}, "%s still in Redis", key)
}

// finish takes j to a finished state along path and returns the record.
func (e archiveEnv) finish(t *testing.T, j *job.Job, msg, path string) *status.Record {
	t.Helper()
	switch path {
	case "delivered":
		e.sent(t, j, msg)
		if _, rec, _, err := e.store.Apply(t.Context(), status.Report{JobRef: j.Ref(), MessageID: msg, State: status.Delivered, Channel: "white"}); err != nil || rec.State != status.Delivered {
			t.Fatalf("Apply delivered = %v, %v", rec, err)
		}
	case "failed":
		e.begin(t, j, "w1", time.Minute)
		e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeFailed, Channel: "white", Attempts: 1, Code: "131050", Reason: "stopped marketing", DeadLetter: "permanent"})
	case "sent on the last channel":
		e.begin(t, j, "w1", time.Minute)
		e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeFallback, Channel: "white", Attempts: 1, Code: "131026", NextChannel: "sms"})
		e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeSent, Channel: "sms", ChannelIdx: 1, Attempts: 1, ProviderMessageID: msg, Segments: 1})
	case "canceled":
		if _, _, err := e.store.Settle(t.Context(), j, "w1", status.Canceled, "campaign canceled", cascade); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no path %q", path)
	}
	return e.get(t, j.ID)
}

// TestArchiveFinishedRecord: a finished record leaves Redis after the hot TTL, leaving only
// its tombstone; Get and GetMany still read it (from the history), a republished id is a
// duplicate for every way a record is created, and nothing brings the record back to Redis.
func TestArchiveFinishedRecord(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t)
	for i, path := range []string{"delivered", "failed", "sent on the last channel", "canceled"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			j := newJob(fmt.Sprintf("arch-%d.x:y", i), 100+i)
			want := e.finish(t, j, fmt.Sprintf("wamid.arch-%d", i), path)
			if !status.Finished(want) {
				t.Fatalf("record %+v is not finished", want)
			}
			e.gone(t, status.RecordKey(j.Ref()))
			if n, _ := e.rdb.Exists(t.Context(), "herald:d:{"+j.Ref()+"}").Result(); n != 1 {
				t.Fatalf("no tombstone left for %s", j.Ref())
			}

			got := e.get(t, j.ID)
			if got.State != want.State || got.UpdatedAt != want.UpdatedAt || len(got.History) != len(want.History) || got.To != j.To {
				t.Fatalf("Get from the history = %+v, want %+v", got, want)
			}
			many, err := e.store.GetMany(t.Context(), []string{ref("arch-none"), j.Ref()})
			if err != nil || many[0] != nil || many[1] == nil || many[1].State != want.State {
				t.Fatalf("GetMany = %v, %v; want [nil, %s]", many, err, want.State)
			}

			// The id republished: refused by the claim, by the API's create and by a settle,
			// each answering with the finished record.
			if adm := e.begin(t, j, "w2", time.Minute); adm.Verdict != status.Done || adm.Record.State != want.State {
				t.Fatalf("Begin after the record left Redis = %s %s, want done %s", adm.Verdict, adm.Record.State, want.State)
			}
			created, existing, err := e.store.Create(t.Context(), status.NewRecord(j, status.Queued, cascade, time.Now()))
			if err != nil || created || existing.State != want.State {
				t.Fatalf("Create = %v, %+v, %v; want the existing %s record", created, existing, err, want.State)
			}
			if old, rec, err := e.store.Settle(t.Context(), j, "w4", status.Rejected, "malformed", cascade); err != nil || old != want.State || rec.State != want.State {
				t.Fatalf("Settle = %s, %+v, %v; want %s unchanged", old, rec, err, want.State)
			}
			if err := e.store.CreateMany(t.Context(), []*status.Record{status.NewRecord(j, status.Queued, cascade, time.Now())}); err != nil {
				t.Fatal(err)
			}
			if n, _ := e.rdb.Exists(t.Context(), status.RecordKey(j.Ref())).Result(); n != 0 {
				t.Fatalf("the record of %s is back in Redis", j.Ref())
			}

			// A replay from the DLQ: a failed job that reached nobody starts again from the
			// history's copy (its attempts kept); anything else stays a duplicate.
			adm, err := e.store.BeginReplay(t.Context(), j, "w3", time.Minute, cascade)
			if err != nil {
				t.Fatal(err)
			}
			if path != "failed" {
				if adm.Verdict != status.Done {
					t.Fatalf("BeginReplay of a %s job = %s, want done", path, adm.Verdict)
				}
				return
			}
			if adm.Verdict != status.Claimed || adm.Record.State == status.Failed || len(adm.Record.History) != len(want.History) {
				t.Fatalf("BeginReplay of a failed job after its record left Redis = %s %s with %d attempts, want claimed with the %d of the history",
					adm.Verdict, adm.Record.State, len(adm.Record.History), len(want.History))
			}
			if n, _ := e.rdb.Exists(t.Context(), status.RecordKey(j.Ref())).Result(); n != 1 {
				t.Fatalf("the replayed record of %s is not in Redis", j.Ref())
			}
			if again, err := e.store.BeginReplay(t.Context(), j, "w4", time.Minute, cascade); err != nil || again.Verdict == status.Claimed {
				t.Fatalf("a second replay while the first holds the claim = %+v, %v; want it refused", again, err)
			}
		})
	}
}

// TestArchiveUnfinishedStays: a record a worker may still act on keeps its full TTL in
// Redis and is not in the history.
func TestArchiveUnfinishedStays(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t)
	for i, tc := range []struct {
		name string
		run  func(j *job.Job)
	}{
		{"claimed", func(j *job.Job) { e.begin(t, j, "w1", time.Minute) }},
		{"sent with a channel left", func(j *job.Job) { e.sent(t, j, "wamid.unfinished-1") }},
		{"retry", func(j *job.Job) {
			e.begin(t, j, "w1", time.Minute)
			e.attempt(t, j.ID, "w1", status.Outcome{Mode: status.ModeRetry, Channel: "white", Attempts: 1, Code: "130429"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJob(fmt.Sprintf("unfinished-%d", i), 200+i)
			tc.run(j)
			if d, _ := e.rdb.PTTL(t.Context(), status.RecordKey(j.Ref())).Result(); d <= hot {
				t.Fatalf("PTTL = %s, want the full TTL", d)
			}
			if _, err := e.kv.Get(t.Context(), status.ArchiveKey(j.Ref())); !errors.Is(err, jetstream.ErrKeyNotFound) {
				t.Fatalf("history has an unfinished record: %v", err)
			}
		})
	}
}

// TestArchiveLateReport: a report on a record already out of Redis updates its history,
// found by job ref or by the provider message id alone, counts the campaign, and never
// puts the record back into Redis.
func TestArchiveLateReport(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t)
	for i, byRef := range []bool{true, false} {
		t.Run(fmt.Sprintf("by ref %v", byRef), func(t *testing.T) {
			t.Parallel()
			j := newJob(fmt.Sprintf("late-%d", i), 300+i)
			j.Campaign = fmt.Sprintf("late-camp-%d", i)
			msg := fmt.Sprintf("wamid.late-%d", i)
			e.finish(t, j, msg, "delivered")
			e.gone(t, status.RecordKey(j.Ref()))
			e.gone(t, "herald:m:{"+msg+"}")

			r := status.Report{MessageID: msg, State: status.Read, Channel: "white"}
			if byRef {
				r.JobRef = j.Ref()
			}
			old, rec, changed, err := e.store.Apply(t.Context(), r)
			if err != nil || !changed || old != status.Delivered || rec.State != status.Read {
				t.Fatalf("Apply read = %s, %+v, %v, %v; want delivered → read", old, rec, changed, err)
			}
			if got := e.get(t, j.ID); got.State != status.Read || len(got.History[0].Statuses) != 2 {
				t.Fatalf("history record = %+v, want read with two statuses", got)
			}
			// The same report again changes nothing.
			if _, _, changed, err := e.store.Apply(t.Context(), r); err != nil || changed {
				t.Fatalf("Apply read again: changed %v, %v", changed, err)
			}
			if n, _ := e.rdb.Exists(t.Context(), status.RecordKey(j.Ref())).Result(); n != 0 {
				t.Fatal("a late report brought the record back into Redis")
			}
			if adm := e.begin(t, j, "w2", time.Minute); adm.Verdict != status.Done || adm.Record.State != status.Read {
				t.Fatalf("Begin after the late report = %s %s, want done read", adm.Verdict, adm.Record.State)
			}
			c, err := e.store.Campaign(t.Context(), j.Tenant, j.Campaign)
			if err != nil || c.States[status.Read] != 1 || c.States[status.Delivered] != 0 {
				t.Fatalf("campaign states = %v, %v; want read 1, delivered 0", c.States, err)
			}
			if _, _, _, err := e.store.Apply(t.Context(), status.Report{MessageID: "wamid.never", State: status.Read}); !errors.Is(err, status.ErrNotFound) {
				t.Fatalf("Apply on an unknown message = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestArchiveBytes measures what a finished notification costs once its record has left
// Redis (every key Redis still holds, by MEMORY USAGE, over the jobs) and what its record
// costs in the history bucket: the goal is at most 100 bytes of Redis per notification.
func TestArchiveBytes(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t)
	const n = 200
	for i := range n {
		j := newJob(fmt.Sprintf("order-%06d-ready", i), 400+i)
		e.finish(t, j, fmt.Sprintf("wamid.HBgLNzkwMDEyMzQ1NjcVAgARGBI%06dAA", i), "delivered")
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		keys, err := e.rdb.Keys(t.Context(), "herald:n:*").Result()
		return err == nil && len(keys) == 0
	}, "records still in Redis")
	testutil.Eventually(t, 20*time.Second, func() bool {
		keys, err := e.rdb.Keys(t.Context(), "herald:m:*").Result()
		return err == nil && len(keys) == 0
	}, "message index still in Redis")

	var total, tombstones int64
	iter := e.rdb.Scan(t.Context(), 0, "*", 1000).Iterator()
	for iter.Next(t.Context()) {
		b, err := e.rdb.MemoryUsage(t.Context(), iter.Val()).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		total += b
		if len(iter.Val()) > 9 && iter.Val()[:9] == "herald:d:" {
			tombstones++
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if tombstones != n {
		t.Fatalf("%d tombstones, want %d", tombstones, n)
	}
	st, err := e.kv.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	perRedis, perJS := float64(total)/n, float64(st.Bytes())/n
	t.Logf("per finished notification: %.0f bytes in Redis (every key left, campaign counters included), %.0f bytes in %s (record and message index, compressed)",
		perRedis, perJS, streams.HistoryKV)
	if perRedis > 100 {
		t.Fatalf("Redis holds %.0f bytes per finished notification, want at most 100", perRedis)
	}
}

// TestFinished: which records leave Redis after the hot TTL.
func TestFinished(t *testing.T) {
	t.Parallel()
	two := []string{"white", "sms"}
	for _, tc := range []struct {
		name string
		rec  status.Record
		want bool
	}{
		{"queued", status.Record{State: status.Queued, Channels: two}, false},
		{"sent, a channel left", status.Record{State: status.Sent, Channels: two}, false},
		{"sent on the last channel", status.Record{State: status.Sent, Channels: two, ChannelIdx: 1}, true},
		{"sent, outcome unknown", status.Record{State: status.Sent, Channels: two, ChannelIdx: 1, History: []status.Attempt{{State: "unknown"}}}, false},
		{"delivered", status.Record{State: status.Delivered, Channels: two}, true},
		{"read", status.Record{State: status.Read, Channels: two}, true},
		{"delivered, claimed", status.Record{State: status.Delivered, Claim: &status.Claim{Owner: "w"}}, false},
		{"sent, falling back", status.Record{State: status.Sent, Channels: two, ChannelIdx: 1, Resume: true}, false},
		{"sent, early report parked", status.Record{State: status.Sent, Channels: two, ChannelIdx: 1, Early: map[string]string{"m": "read"}}, false},
		{"failed", status.Record{State: status.Failed}, true},
		{"suppressed", status.Record{State: status.Suppressed}, true},
		{"canceled", status.Record{State: status.Canceled}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := status.Finished(&tc.rec); got != tc.want {
				t.Fatalf("Finished = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestArchiveKey: every job id and message id gives a valid bucket key of its own.
func TestArchiveKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"order-123_ready", "order-123_ready"},
		{"a.b:c", "a=2Eb=3Ac"},
		{"..", "=2E=2E"},
		{"wamid.HBg=/+", "wamid=2EHBg=3D=2F=2B"},
	} {
		if got := status.KeySafe(tc.in); got != tc.want {
			t.Errorf("KeySafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := status.ArchiveKey(job.Ref("shop", "a.b")); got != "n.shop.a=2Eb" {
		t.Errorf("ArchiveKey = %q", got)
	}
}
