package routing_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/routing"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

func TestChoose(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	busy := now.Add(time.Second)
	later := now.Add(2 * time.Second)
	first := func(customer string, ids ...string) string { // the rendezvous winner among ids
		best, bestScore := "", math.Inf(-1)
		for _, id := range ids {
			if s := routing.Score(customer, id, 1); s > bestScore {
				best, bestScore = id, s
			}
		}
		return best
	}
	tests := []struct {
		name string
		cs   []routing.Candidate
		want string
	}{
		{"none", nil, ""},
		{"all free: the rendezvous winner", []routing.Candidate{{ID: "a"}, {ID: "b"}, {ID: "c"}}, first("+79990000001", "a", "b", "c")},
		{"the only free one beats a better score", []routing.Candidate{{ID: "a", Free: busy}, {ID: "b", Free: busy}, {ID: "c"}}, "c"},
		{"none free: the one free soonest", []routing.Candidate{{ID: "a", Free: later}, {ID: "b", Free: busy}, {ID: "c", Free: later}}, "b"},
		{"free within the horizon counts as free", []routing.Candidate{{ID: "a", Free: now.Add(time.Millisecond)}, {ID: "b", Free: busy}}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			i := routing.Choose(tt.cs, "+79990000001", now.Add(10*time.Millisecond))
			got := ""
			if i >= 0 {
				got = tt.cs[i].ID
			}
			if got != tt.want {
				t.Fatalf("Choose = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestChooseSpreadsByWeight: new customers spread over free senders in proportion to their
// rates, and a sender leaving the pool moves only its own customers.
func TestChooseSpreadsByWeight(t *testing.T) {
	t.Parallel()
	now := time.Now()
	cs := []routing.Candidate{{ID: "shop-msk", Weight: 80}, {ID: "shop-spb", Weight: 80}, {ID: "shop-ekb", Weight: 160}}
	const n = 20000
	count := map[string]int{}
	owner := make([]string, n)
	for i := range n {
		c := cs[routing.Choose(cs, fmt.Sprintf("+7999%07d", i), now)].ID
		count[c]++
		owner[i] = c
	}
	for _, c := range cs {
		want := float64(n) * c.Weight / 320
		if got := float64(count[c.ID]); math.Abs(got-want) > 0.05*want {
			t.Errorf("%s got %v customers, want about %v", c.ID, got, want)
		}
	}
	without := cs[1:] // shop-msk leaves
	for i := range n {
		c := without[routing.Choose(without, fmt.Sprintf("+7999%07d", i), now)].ID
		if owner[i] != "shop-msk" && c != owner[i] {
			t.Fatalf("customer %d moved from %s to %s although its sender stayed", i, owner[i], c)
		}
	}
}

func TestAffinity(t *testing.T) {
	t.Parallel()
	rdb := testutil.StartRedis(t).Client(t)
	ctx := context.Background()
	a := routing.NewAffinity(rdb, time.Minute)
	const to = "+79990000001"
	open, last, err := a.Look(ctx, "shop", "white", to, []string{"111", "222", ""})
	if err != nil || last != "" || open[0] || open[1] || open[2] {
		t.Fatalf("fresh Look = %v %q %v, want nothing", open, last, err)
	}
	if err := rdb.Set(ctx, status.WindowKey("222", to), "1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Stick(ctx, "shop", "white", to, "shop-spb"); err != nil {
		t.Fatal(err)
	}
	open, last, err = a.Look(ctx, "shop", "white", to, []string{"111", "222"})
	if err != nil || last != "shop-spb" || open[0] || !open[1] {
		t.Fatalf("Look = %v %q %v, want window with 222 and sticky shop-spb", open, last, err)
	}
	// Another tenant's customer of the same number is not tied to shop's sender.
	if _, last, _ := a.Look(ctx, "bank", "white", to, nil); last != "" {
		t.Fatalf("bank sees shop's sticky sender %q", last)
	}
	if ttl := rdb.TTL(ctx, routing.StickyKey("shop", "white", to)).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("sticky ttl %v, want (0, 1m]", ttl)
	}
}
