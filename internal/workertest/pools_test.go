package workertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/routing"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/white"
	"github.com/herald-notify/herald/internal/workertest"
	"github.com/herald-notify/herald/worker"
)

// The pool: tenant "pool" sends from two white numbers of two WABAs and one SMS account.
const (
	poolTenant       = "pool"
	numA, numB       = "300400001", "300400002"
	wabaA, wabaB     = "waba-a", "waba-b"
	onlyInB          = "only_in_b" // a template approved in WABA B, pending in A
	poolSMSSenderKey = "sms:pool-sms"
)

// TestPools: the worker's routing through a tenant's pool, one delivery at a time on real
// NATS, Redis and the simulator.
func TestPools(t *testing.T) {
	t.Parallel()
	env := workertest.Start(t, workertest.Options{Sim: func(c *sim.Config) { c.PhoneNumberIDs = []string{numA, numB} }})
	ctx := context.Background()
	// The tenant's catalogue: the sample templates, and one approved in WABA B alone.
	kv, err := env.JS.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		t.Fatal(err)
	}
	if err := templates.PutSamples(ctx, kv, poolTenant, "other"); err != nil {
		t.Fatal(err)
	}
	def, err := templates.Get(ctx, kv, poolTenant, "order_ready", "ru")
	if err != nil {
		t.Fatal(err)
	}
	def.Name, def.ID, def.Version = onlyInB, "", 0
	def.WABAs = map[string]templates.WABAReview{wabaA: {Status: "PENDING"}, wabaB: {Status: templates.StatusApproved}}
	if _, err := templates.Put(ctx, kv, poolTenant, def); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := env.Catalogue.LookupIn(poolTenant, onlyInB, "ru", wabaB)
		return err == nil
	}, "the catalogue sees the template of WABA B")

	aff := routing.NewAffinity(env.RDB, time.Hour)
	newWorker := func(t *testing.T) *workertest.Worker {
		wc := func(num string) worker.Sender {
			return worker.White{Client: white.New(white.Config{BaseURL: env.SimURL, PhoneNumberID: num, Token: workertest.Token}, nil)}
		}
		return env.For(t).NewWorker(workertest.WorkerOptions{Config: func(c *worker.Config) {
			c.Routes = []worker.Route{
				{ID: "a", Channel: job.ChannelWhite, Sender: wc(numA), WABA: wabaA, PhoneNumberID: numA, Limit: worker.ChannelLimit{Sender: "white:" + numA}},
				{ID: "b", Channel: job.ChannelWhite, Sender: wc(numB), WABA: wabaB, PhoneNumberID: numB, Limit: worker.ChannelLimit{Sender: "white:" + numB}},
				{ID: "pool-sms", Channel: job.ChannelSMS, Limit: worker.ChannelLimit{Sender: poolSMSSenderKey},
					Sender: worker.SMS{Client: sms.NewKannel(sms.KannelConfig{URL: env.SimURL + "/cgi-bin/sendsms", DLRURL: "http://127.0.0.1:9/webhooks/sms"}, nil)}},
			}
			c.Pools = map[string][]string{poolTenant: {"a", "b", "pool-sms"}, "other": {"pool-sms"}}
			c.Affinity = aff
		}})
	}
	// from lists the business numbers a job's white sends came from, with their status.
	from := func(id string) []string {
		var out []string
		for _, m := range env.Calls(id) {
			if m.Channel == job.ChannelWhite {
				out = append(out, fmt.Sprintf("%s:%d", m.PhoneNumberID, m.HTTPStatus))
			} else {
				out = append(out, fmt.Sprintf("%s:%d", m.Channel, m.HTTPStatus))
			}
		}
		return out
	}
	tests := []struct {
		name     string
		sticky   string // the customer's sticky sender before the job
		rule     *sim.Rule
		edit     func(j *job.Job)
		state    string
		history  []string
		calls    []string
		letter   string // the DLQ reason, "" none
		stickyTo string // the sticky sender after the job
		// next feeds another job (another customer) to the same worker and wants these calls
		next []string
	}{
		{name: "the sticky number", sticky: "b", state: status.Sent,
			history: []string{"white:sent"}, calls: []string{numB + ":200"}, stickyTo: "b"},
		{name: "a pinned sender beats the sticky one", sticky: "b", edit: func(j *job.Job) { j.Sender = "a" }, state: status.Sent,
			history: []string{"white:sent"}, calls: []string{numA + ":200"}, stickyTo: "a"},
		{name: "a sender of another tenant cannot be pinned", edit: func(j *job.Job) { j.Sender = "zz" }, state: status.Failed,
			history: []string{"white:failed:unknown_sender"}, letter: "rejected"},
		{name: "a template goes only through numbers whose WABA approved it", sticky: "a",
			edit: func(j *job.Job) { j.Template = onlyInB }, state: status.Sent,
			history: []string{"white:sent"}, calls: []string{numB + ":200"}, stickyTo: "b"},
		{name: "a refused number leaves the pool: the job moves to the other one", sticky: "a",
			rule: &sim.Rule{Code: 131031, PhoneNumberID: numA}, state: status.Sent,
			history: []string{"white:sent"}, calls: []string{numA + ":403", numB + ":200"}, stickyTo: "b",
			next: []string{numB + ":200"}},
		{name: "a tenant without white numbers goes by SMS", edit: func(j *job.Job) { j.Tenant = "other" }, state: status.Sent,
			history: []string{"white:failed:not_configured", "sms:sent"}, calls: []string{"sms:202"}},
	}
	// Quiet hours per tenant: the deployment's hold pool's bulk job at night, the tenant
	// whose fleet entry turns them off sends it.
	t.Run("quiet hours per tenant", func(t *testing.T) {
		t.Parallel()
		env := env.For(t)
		night := time.Date(2026, 11, 25, 3, 0, 0, 0, time.FixedZone("MSK", 3*3600))
		clock := &workertest.Clock{}
		clock.Set(night)
		hours, _ := worker.ParseQuietHours("21:00-09:00")
		off, _ := worker.ParseQuietHours("off")
		w := newWorker(t)
		w = env.NewWorker(workertest.WorkerOptions{Config: func(c *worker.Config) {
			*c = w.Config
			c.QuietHours, c.TenantQuietHours, c.Now = hours, map[string]worker.QuietHours{"other": off}, clock.Now
		}})
		for _, tc := range []struct {
			tenant, state string
		}{{poolTenant, status.Scheduled}, {"other", status.Sent}} {
			j := workertest.OrderReady("quiet-"+tc.tenant, recipient())
			j.Tenant, j.Priority = tc.tenant, job.PriorityBulk
			r := env.Feed(t.Context(), w, workertest.Data(t, j))
			one(t, r, workertest.Ack)
			if rec := must(t, r); rec.State != tc.state {
				t.Errorf("tenant %s: bulk job at 03:00 is %s (%s), want %s", tc.tenant, rec.State, rec.Reason, tc.state)
			}
		}
	})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := env.For(t)
			w := newWorker(t)
			to := recipient()
			j := workertest.OrderReady(fmt.Sprintf("pool-%d", i), to)
			j.Tenant = poolTenant
			if tt.edit != nil {
				tt.edit(j)
			}
			if tt.sticky != "" {
				if err := aff.Stick(ctx, poolTenant, job.ChannelWhite, to, tt.sticky); err != nil {
					t.Fatal(err)
				}
			}
			if tt.rule != nil {
				rule := *tt.rule
				rule.To = digits(to)
				env.Sim.AddRule(rule)
			}
			r := env.Feed(t.Context(), w, workertest.Data(t, j))
			want := workertest.Ack
			if tt.letter != "" {
				want = workertest.TermWithReason
			}
			one(t, r, want)
			if rec := must(t, r); rec.State != tt.state || !equal(states(rec), tt.history) {
				t.Fatalf("record %s %v, want %s %v", rec.State, states(rec), tt.state, tt.history)
			}
			if got := from(j.ID); !equal(got, tt.calls) {
				t.Fatalf("provider calls %v, want %v", got, tt.calls)
			}
			if tt.letter != "" && (len(r.Letters) != 1 || r.Letters[0].Reason != tt.letter) {
				t.Fatalf("letters %+v, want one %q", r.Letters, tt.letter)
			}
			if tt.stickyTo != "" {
				if _, last, err := aff.Look(ctx, poolTenant, job.ChannelWhite, to, nil); err != nil || last != tt.stickyTo {
					t.Fatalf("sticky sender %q (%v), want %q", last, err, tt.stickyTo)
				}
			}
			if tt.next == nil {
				return
			}
			n := workertest.OrderReady(fmt.Sprintf("pool-%d-next", i), recipient())
			n.Tenant = poolTenant
			if err := aff.Stick(ctx, poolTenant, job.ChannelWhite, n.To, "a"); err != nil {
				t.Fatal(err)
			}
			one(t, env.Feed(t.Context(), w, workertest.Data(t, n)), workertest.Ack)
			if got := from(n.ID); !equal(got, tt.next) {
				t.Fatalf("next job's provider calls %v, want %v (the refused number is left alone)", got, tt.next)
			}
		})
	}
}
