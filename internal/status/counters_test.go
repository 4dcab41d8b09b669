package status_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
)

// TestCampaignCountersMatchRecords runs every path that creates or changes a campaign's
// records, concurrently and repeated as redeliveries and client retries repeat them: jobs
// posted one by one (Create), posted in batches (CreateMany, each batch written twice as
// after a lost reply), imported (no API record: the worker's Begin creates it), a worker
// racing the API for the same job, redelivered copies, sends and their reports, cancels
// (Settle) and DLQ replays (BeginReplay after a failure). Then the counters must equal the
// records counted by state, and none may be negative.
func TestCampaignCountersMatchRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	const camp = "counted"
	const n = 240
	jobs := make([]*job.Job, n)
	for i := range jobs {
		jobs[i] = newJob(fmt.Sprintf("cnt-%03d", i), 1000+i)
		jobs[i].Campaign = camp
	}
	rec := func(j *job.Job) *status.Record { return status.NewRecord(j, status.Queued, cascade, time.Now()) }
	var wg sync.WaitGroup
	fail := func(format string, args ...any) { t.Errorf(format, args...) }
	// The API: a third posted one by one, a third in batches of 20 (twice each); the last
	// third is imported, so only workers create those records.
	for i := 0; i < n/3; i++ {
		wg.Go(func() {
			for range 2 {
				if _, _, err := e.store.Create(ctx, rec(jobs[i])); err != nil {
					fail("Create %s: %v", jobs[i].ID, err)
				}
			}
		})
	}
	for b := n / 3; b < 2*n/3; b += 20 {
		wg.Go(func() {
			var recs []*status.Record
			for _, j := range jobs[b : b+20] {
				recs = append(recs, rec(j))
			}
			for range 2 {
				if err := e.store.CreateMany(ctx, recs); err != nil {
					fail("CreateMany: %v", err)
				}
			}
		})
	}
	// Workers, at the same time: two copies of every job (a redelivery), each claiming,
	// sending and recording, or waiting for the other's outcome.
	for i, j := range jobs {
		for copy := range 2 {
			wg.Go(func() {
				owner := fmt.Sprintf("w%d-%d", copy, i)
				adm, err := e.store.Begin(ctx, j, owner, time.Minute, cascade)
				if err != nil {
					fail("Begin %s: %v", j.ID, err)
					return
				}
				if adm.Verdict != status.Claimed {
					// Busy (the other copy holds the claim: this one would be redelivered
					// later) or done.
					return
				}
				switch i % 4 {
				case 0: // canceled before sending
					if _, _, err := e.store.Settle(ctx, j, owner, status.Canceled, "campaign canceled", cascade); err != nil {
						fail("Settle %s: %v", j.ID, err)
					}
				case 1: // failed for good, replayed later
					o := status.Outcome{Mode: status.ModeFailed, Channel: "white", Attempts: 1, Reason: "131026"}
					for range 2 { // recorded twice: a lost reply
						if _, _, err := e.store.Attempt(ctx, j.Ref(), owner, o); err != nil {
							fail("Attempt %s: %v", j.ID, err)
						}
					}
				default: // sent, then reported delivered and read, some reports twice
					o := status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: "wamid." + j.ID}
					for range 2 {
						if _, _, err := e.store.Attempt(ctx, j.Ref(), owner, o); err != nil {
							fail("Attempt %s: %v", j.ID, err)
						}
					}
					for _, st := range []string{status.Delivered, status.Read, status.Delivered} {
						if _, _, _, err := e.store.Apply(ctx, status.Report{JobRef: j.Ref(), MessageID: "wamid." + j.ID, State: st, Channel: "white"}); err != nil {
							fail("Apply %s: %v", j.ID, err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	// DLQ replays of the failed ones, each replayed twice; half are canceled then.
	for i, j := range jobs {
		if i%4 != 1 {
			continue
		}
		for copy := range 2 {
			owner := fmt.Sprintf("replay%d-%d", copy, i)
			adm, err := e.store.BeginReplay(ctx, j, owner, time.Minute, cascade)
			if err != nil {
				t.Fatal(err)
			}
			if adm.Verdict != status.Claimed {
				continue
			}
			if i%8 == 1 {
				if _, _, err := e.store.Settle(ctx, j, owner, status.Canceled, "campaign canceled", cascade); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, _, err := e.store.Settle(ctx, j, owner, "", "", cascade); err != nil { // released: still queued
				t.Fatal(err)
			}
		}
	}
	if t.Failed() {
		return
	}

	refs := make([]string, n)
	for i, j := range jobs {
		refs[i] = j.Ref()
	}
	recs, err := e.store.GetMany(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i, r := range recs {
		if r == nil {
			t.Fatalf("%s has no record", refs[i])
		}
		want[r.State]++
	}
	c, err := e.store.Campaign(ctx, "shop", camp)
	if err != nil {
		t.Fatal(err)
	}
	var got, total []string
	for st, v := range c.States {
		if v < 0 {
			t.Errorf("counter %s is negative: %d", st, v)
		}
		got = append(got, fmt.Sprintf("%s=%d", st, v))
	}
	for st, v := range want {
		total = append(total, fmt.Sprintf("%s=%d", st, v))
		if c.States[st] != v {
			t.Errorf("counter %s = %d, records %d", st, c.States[st], v)
		}
	}
	if len(c.States) != len(want) {
		t.Errorf("counters %s, records %s", strings.Join(got, " "), strings.Join(total, " "))
	}
	if c.Channels["white"] != int64(n/2) {
		t.Errorf("white sends counted %d, want %d", c.Channels["white"], n/2)
	}
}
