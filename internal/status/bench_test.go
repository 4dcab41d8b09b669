package status_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// sentRecord is a record as the scripts leave it after a white send (cjson's encoding).
const sentRecord = `{"created_at":"2026-11-24T22:17:28.123456789Z","history":[{"channel":"white","provider_message_id":"wamid.HBgLNzkwMDEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","state":"sent","at":"2026-11-24T22:17:28.234567891Z"}],"template":"order_ready","channels":["white","sms"],"tenant":"shop","campaign":"c1","channel_idx":0,"priority":"transactional","metadata":{"order_id":"123456"},"attempts":1,"state":"sent","to":"+79001234567","channel":"white","id":"order-000042-ready","provider_message_id":"wamid.HBgLNzkwMDEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","updated_at":"2026-11-24T22:17:28.234567891Z"}`

// BenchmarkRecordDecode is json.Unmarshal into a Record (Get, the API); the scripts'
// answers take the shorter way of BenchmarkDecodeAnswer.
func BenchmarkRecordDecode(b *testing.B) {
	data := []byte(sentRecord)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var r status.Record
		if err := json.Unmarshal(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBeginAttempt is the status work of one sent job: Begin, then Attempt(sent). It
// reports the Redis server's own time per job (redis_µs/job, from INFO commandstats), which
// is CPU on the Redis host that the Go side's ns/op does not show.
func BenchmarkBeginAttempt(b *testing.B) {
	rdb := testutil.StartRedis(b).Client(b)
	store := status.NewStore(rdb, time.Hour, nil)
	ctx := b.Context()
	i := 0
	run := func() {
		j := newJob("bench-"+strconv.Itoa(i), i)
		i++
		adm, err := store.Begin(ctx, j, "w1", time.Minute, cascade)
		if err != nil || adm.Verdict != status.Claimed {
			b.Fatalf("Begin: %v %v", adm.Verdict, err)
		}
		if _, _, err := store.Attempt(ctx, j.Ref(), "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1,
			ProviderMessageID: fmt.Sprintf("wamid.%040d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	run() // load the scripts
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		run()
		n++
	}
	b.StopTimer()
	b.ReportMetric(redisUsec(b, rdb)/float64(n), "redis_µs/job")
}

// redisUsec is the server time spent in scripts since the last CONFIG RESETSTAT.
func redisUsec(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(b.Context(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.SplitSeq(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_eval") {
			continue
		}
		for f := range strings.SplitSeq(line[strings.IndexByte(line, ':')+1:], ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(f), "usec="); ok {
				u, _ := strconv.ParseFloat(v, 64)
				total += u
			}
		}
	}
	return total
}
