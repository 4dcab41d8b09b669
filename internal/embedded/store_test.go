package embedded_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/embedded"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// open starts herald dev's Redis-compatible store of the kind named ("embedded" or
// "redis-server") in dir.
func open(t *testing.T, kind, dir string) embedded.Redis {
	t.Helper()
	bin := "none"
	if kind == "redis-server" {
		p, err := testutil.RedisServerPath()
		if err != nil {
			t.Fatal(err)
		}
		bin = p
	}
	r, got, err := embedded.OpenRedis(context.Background(), dir, bin, nil)
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	if !strings.HasPrefix(got, kind) {
		t.Fatalf("opened %q, want %s", got, kind)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func client(t *testing.T, r embedded.Redis) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var kinds = []string{"embedded", "redis-server"}

// TestKeepsEveryTypeAcrossRestart writes each kind of key Herald uses, stops the store
// cleanly, starts it again on the same directory and reads them back, TTLs counted down.
func TestKeepsEveryTypeAcrossRestart(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			r := open(t, kind, dir)
			c := client(t, r)
			must(t, c.Set(ctx, "s", "value", time.Hour).Err())
			must(t, c.Set(ctx, "short", "gone", 50*time.Millisecond).Err())
			must(t, c.HSet(ctx, "h", "a", "1", "b", "2").Err())
			must(t, c.SAdd(ctx, "set", "x", "y").Err())
			must(t, c.ZAdd(ctx, "z", redis.Z{Score: 1.5, Member: "m"}).Err())
			must(t, c.RPush(ctx, "l", "1", "2").Err())
			// The short key expires while the store is down or before the snapshot.
			testutil.Eventually(t, 5*time.Second, func() bool { return c.Exists(ctx, "short").Val() == 0 }, "short key never expired")
			must(t, r.Close())

			c2 := client(t, open(t, kind, dir))
			if v := c2.Get(ctx, "s").Val(); v != "value" {
				t.Errorf("s = %q after restart", v)
			}
			if ttl := c2.PTTL(ctx, "s").Val(); ttl <= 0 || ttl > time.Hour {
				t.Errorf("s TTL = %s after restart, want (0, 1h]", ttl)
			}
			if n := c2.Exists(ctx, "short").Val(); n != 0 {
				t.Errorf("the expired key came back")
			}
			if h := c2.HGetAll(ctx, "h").Val(); h["a"] != "1" || h["b"] != "2" || len(h) != 2 {
				t.Errorf("h = %v after restart", h)
			}
			if m := c2.SMembers(ctx, "set").Val(); len(m) != 2 {
				t.Errorf("set = %v after restart", m)
			}
			if s := c2.ZScore(ctx, "z", "m").Val(); s != 1.5 {
				t.Errorf("z score = %v after restart", s)
			}
			if l := c2.LRange(ctx, "l", 0, -1).Val(); strings.Join(l, ",") != "1,2" {
				t.Errorf("l = %v after restart", l)
			}
		})
	}
}

// TestNeverTwiceAcrossRestart is the guarantee herald dev makes with each store: a job
// sent before a restart is, after it, a duplicate for the API (Create finds the record) and
// a finished job for a worker's redelivery (Begin answers done), so it is not sent again.
func TestNeverTwiceAcrossRestart(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			r := open(t, kind, dir)
			st := status.NewStore(client(t, r), 24*time.Hour, nil)
			j := &job.Job{ID: "order-123456-ready", To: "+79001234567", Template: "order_ready", Campaign: "tour"}
			channels := []string{"white", "sms"}
			if created, _, err := st.Create(ctx, status.NewRecord(j, status.Queued, channels, time.Now())); err != nil || !created {
				t.Fatalf("create: %v %v", created, err)
			}
			adm, err := st.Begin(ctx, j, "w1", time.Minute, channels)
			if err != nil || adm.Verdict != status.Claimed {
				t.Fatalf("begin: %v %v", adm.Verdict, err)
			}
			if _, _, err := st.Attempt(ctx, j.Ref(), "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", ProviderMessageID: "wamid.1", Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			must(t, r.Close())

			st2 := status.NewStore(client(t, open(t, kind, dir)), 24*time.Hour, nil)
			created, existing, err := st2.Create(ctx, status.NewRecord(j, status.Queued, channels, time.Now()))
			if err != nil || created || existing == nil || existing.State != status.Sent {
				t.Fatalf("create after restart: created %v, existing %+v, %v; want the sent record", created, existing, err)
			}
			adm, err = st2.Begin(ctx, j, "w2", time.Minute, channels)
			if err != nil || adm.Verdict != status.Done {
				t.Fatalf("begin after restart: %v %v, want done", adm.Verdict, err)
			}
			c, err := st2.Campaign(ctx, j.Tenant, j.Campaign)
			if err != nil || c.States[status.Sent] != 1 || len(c.States) != 1 || c.Channels["white"] != 1 {
				t.Fatalf("campaign after restart: %+v %v", c, err)
			}
		})
	}
}

// TestSnapshotWhileRunning: the embedded store writes its snapshot while commands arrive,
// not only on Close, so a crash keeps what is older than SnapshotInterval.
func TestSnapshotWhileRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c := client(t, open(t, "embedded", dir))
	must(t, c.Set(ctx, "k", "v", 0).Err())
	path := filepath.Join(dir, "store", embedded.SnapshotFile)
	testutil.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), `"k":"k"`)
	}, "no snapshot with the key in %s", path)
	// A copy of the directory as a crash would leave it: the key is there.
	crash := t.TempDir()
	b, err := os.ReadFile(path)
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(crash, "store"), 0o755))
	must(t, os.WriteFile(filepath.Join(crash, "store", embedded.SnapshotFile), b, 0o644))
	if v := client(t, open(t, "embedded", crash)).Get(ctx, "k").Val(); v != "v" {
		t.Fatalf("k = %q from the running store's snapshot", v)
	}
}

// TestBadSnapshotRefused: a snapshot that cannot be read stops the start, naming the file,
// rather than starting empty and forgetting which jobs were sent.
func TestBadSnapshotRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "store", embedded.SnapshotFile)
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte("{not json"), 0o644))
	_, _, err := embedded.OpenRedis(context.Background(), dir, "none", nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming %s", err, path)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
