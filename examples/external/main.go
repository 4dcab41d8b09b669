// Command heraldexternal uses Herald from another module, through its public packages only:
// the compiler refuses any import of github.com/herald-notify/herald/internal/... here, so
// this program building at all shows that producer and worker name every type they use.
//
// It starts an in-process JetStream server on a loopback port, creates Herald's streams with
// worker.EnsureStreams, publishes jobs with producer, and runs a worker.Worker on its own
// implementation of every interface the worker takes: an in-memory Store (claims, attempts,
// settling), a fixed Templates map, a white Sender that records what it sends, a JetStream
// wrapper and a Limiter. It waits until every job has been handled, checks that each was
// sent exactly once, stops the worker and exits 0; any failure exits 1. `make test` runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/producer"
	"github.com/herald-notify/herald/worker"
)

func main() {
	start := time.Now()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "heraldexternal: FAIL:", err)
		os.Exit(1)
	}
	fmt.Printf("ok in %s\n", time.Since(start).Round(time.Millisecond))
}

// Bounds: the whole run takes well under a second; these only keep a broken run from hanging.
const (
	runTimeout  = 30 * time.Second
	waitTimeout = 20 * time.Second
)

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "heraldexternal-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := startNATS(dir)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := worker.EnsureStreams(ctx, js, worker.StreamOptions{}); err != nil {
		return err
	}

	tpl, err := newTemplates()
	if err != nil {
		return err
	}
	changed := make(chan struct{}, 1) // a record, a send or an event changed: look again
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	store := newMemStore(notify)
	store.openWindow("+79005550010") // wrote to us today: free-form text may go
	store.optOut("+79005550099")
	sender := newSender(notify, "order-1002-ready") // its first call fails: retried
	wjs := &countingJetStream{js: js}
	lim := &memLimiter{next: map[string]time.Time{}}

	// Status events, as a business system follows them.
	events := newEventLog(notify)
	sub, err := nc.Subscribe(worker.StatusSubjectPrefix+">", events.add)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	w := worker.New(wjs, store, tpl, map[string]worker.Sender{worker.ChannelWhite: sender}, worker.Config{
		Channels:        []string{worker.ChannelWhite},
		Concurrency:     16,
		ShutdownTimeout: 5 * time.Second,
		RetryBaseDelay:  20 * time.Millisecond,
		RetryMaxDelay:   100 * time.Millisecond,
		Jobs:            worker.JobOptions{DefaultRegion: "RU", DefaultLanguage: "en"},
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// Jobs naming no tenant are the "default" tenant's.
		Campaigns: canceledCampaigns{"default": {"spring_sale": true}, "other-shop": {"summer_sale": true}},
		Limiter:   lim,
		Limits:    map[string]worker.ChannelLimit{worker.ChannelWhite: {Sender: "white:example", Rate: 200}},
	})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()

	// Publish: templates (positional and named), a bulk job, a text job inside the window,
	// a job of a canceled campaign and one to a recipient who opted out.
	var jobs []*producer.Job
	for i := range 8 {
		n := 1000 + i
		jobs = append(jobs, &producer.Job{
			ID: fmt.Sprintf("order-%d-ready", n), To: fmt.Sprintf("+7 900 555-%04d", i),
			Template: "order_ready", Params: map[string]string{"1": fmt.Sprint(n), "2": "Tekstilshchikov St. 20"},
		})
	}
	jobs = append(jobs,
		&producer.Job{ID: "bonus-anna", To: "+79005550020", Template: "bonus_expiring", Priority: producer.PriorityBulk,
			Params: map[string]string{"name": "Anna", "amount": "350"}},
		&producer.Job{ID: "reply-10", To: "+79005550010", Text: "Your parcel is at the pickup point until Friday."},
		&producer.Job{ID: "sale-1", To: "+79005550030", Template: "bonus_expiring", Priority: producer.PriorityBulk,
			Campaign: "spring_sale", Params: map[string]string{"name": "Ivan", "amount": "100"}},
		&producer.Job{ID: "optout-99", To: "+79005550099", Template: "order_ready", Params: map[string]string{"1": "99", "2": "Lenina St. 1"}},
	)
	want := map[string]string{} // job id → the state it must end in
	for _, j := range jobs {
		want[j.ID] = worker.StateSent
	}
	want["sale-1"] = worker.StateCanceled
	want["optout-99"] = worker.StateSuppressed

	p := producer.New(js, producer.WithDefaults("RU", "en"))
	results, err := p.PublishBatch(ctx, jobs)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for _, r := range results {
		if r.Err != nil {
			return fmt.Errorf("publish %s: %w", r.ID, r.Err)
		}
	}
	// The job id is the idempotency key: publishing a job again queues nothing.
	again, err := p.Publish(ctx, &producer.Job{ID: jobs[0].ID, To: jobs[0].To, Template: jobs[0].Template, Params: jobs[0].Params})
	if err != nil {
		return fmt.Errorf("publish again: %w", err)
	}
	if !again.Duplicate {
		return fmt.Errorf("job %s published twice was not reported as a duplicate", again.ID)
	}
	// An invalid job is refused before it is published, naming the field.
	var verr *producer.ValidationError
	if _, err := p.Publish(ctx, &producer.Job{ID: "bad", To: "not a number", Text: "x"}); !errors.As(err, &verr) || !errors.Is(err, producer.ErrInvalid) {
		return fmt.Errorf("an invalid job: got %v, want a validation error", err)
	}

	// Wait until every job reached its state, was sent as often as it should (once, or never)
	// and had its event published.
	finished := func() (bool, error) {
		for id, state := range want {
			n := sender.count(id)
			if n > 1 {
				return false, fmt.Errorf("job %s sent %d times", id, n)
			}
			if (state == worker.StateSent) != (n == 1) {
				return false, nil
			}
			if store.state(id) != state || !events.has(id, state) {
				return false, nil
			}
		}
		return true, nil
	}
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		ok, err := finished()
		if err != nil {
			return err
		}
		if ok {
			break
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("jobs not all handled within %s:\n%s", waitTimeout, summary(jobs, want, store, sender, events))
		case err := <-done:
			return fmt.Errorf("worker stopped early: %v", err)
		}
	}

	// Stop: Run drains what is in flight and returns.
	stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
	case <-time.After(10 * time.Second):
		return errors.New("worker did not stop within 10s")
	}
	if ok, err := finished(); !ok || err != nil {
		return fmt.Errorf("after stopping: %v", err)
	}
	if err := acked(ctx, js); err != nil {
		return err
	}
	fmt.Print(summary(jobs, want, store, sender, events))
	sent := 0
	for id := range want {
		sent += sender.count(id)
	}
	fmt.Printf("%d jobs, %d sent once each; provider calls %d (%d failed and retried), JetStream publishes by the worker %d, limiter reservations %d\n",
		len(want), sent, sender.calls(), sender.calls()-sent, wjs.published.Load(), lim.reserved.Load())
	return nil
}

// startNATS starts a JetStream server in dir on a random loopback port.
func startNATS(dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: filepath.Join(dir, "jetstream"), NoLog: true, NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats-server not ready within 10s")
	}
	return ns, nil
}

// acked waits until the worker consumers hold no job: every message was acknowledged.
func acked(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, worker.JobsStream)
	if err != nil {
		return fmt.Errorf("jobs stream: %w", err)
	}
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("jobs stream: %w", err)
		}
		if info.State.Msgs == 0 { // a work queue: a message is deleted once acknowledged
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d jobs never acknowledged", info.State.Msgs)
		case <-time.After(20 * time.Millisecond): // polling the server's count; nothing to wait on
		}
	}
}

func summary(jobs []*producer.Job, want map[string]string, store *memStore, s *sender, ev *eventLog) string {
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprintf(&b, "%-16s %-10s sent %d time(s), events %v", j.ID, store.state(j.ID), s.count(j.ID), ev.states(j.ID))
		if text := s.text(j.ID); text != "" {
			fmt.Fprintf(&b, ": %q", text)
		}
		if store.state(j.ID) != want[j.ID] {
			fmt.Fprintf(&b, " (want %s)", want[j.ID])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Templates: a fixed catalogue.

// templatesMap is the Templates of this service: definitions known at build time, per
// tenant (each tenant's templates belong to its own WhatsApp Business Account).
type templatesMap map[string]map[string]*worker.Definition // tenant → name.language → definition

var _ worker.Templates = templatesMap{}

// defaultTenant is the tenant the worker names for a job that names none: this service's
// jobs do not.
const defaultTenant = "default"

// newTemplates builds the catalogue: one definition in Go, one from the Graph API's JSON.
func newTemplates() (templatesMap, error) {
	order := &worker.Definition{
		Name: "order_ready", Language: "en", Status: worker.TemplateApproved, Category: "UTILITY",
		Components: []worker.TemplateComponent{{
			Type:    worker.ComponentBody,
			Text:    "Your order {{1}} is waiting for you at {{2}}.",
			Example: &worker.TemplateExample{BodyText: [][]string{{"123456", "Tekstilshchikov St. 20"}}},
		}},
	}
	if err := order.Validate(); err != nil {
		return nil, fmt.Errorf("template order_ready: %w", err)
	}
	bonus, err := worker.ParseDefinition([]byte(`{
		"name": "bonus_expiring", "language": "en", "status": "APPROVED", "category": "UTILITY",
		"parameter_format": "NAMED",
		"components": [{"type": "BODY", "text": "Hello {{name}}, your {{amount}} bonus points expire soon.",
			"example": {"body_text_named_params": [{"param_name": "name", "example": "Anna"}, {"param_name": "amount", "example": "350"}]}}]
	}`))
	if err != nil {
		return nil, fmt.Errorf("template bonus_expiring: %w", err)
	}
	return templatesMap{defaultTenant: {"order_ready.en": order, "bonus_expiring.en": bonus}}, nil
}

// LookupIn returns tenant's approved definition (what WhatsApp may be sent). This service
// sends from one number, so every definition belongs to its one WhatsApp Business Account
// and waba is not looked at.
func (t templatesMap) LookupIn(tenant, name, language, _ string) (*worker.Definition, error) {
	d, err := t.Definition(tenant, name, language)
	if err != nil {
		return nil, err
	}
	if d.Status != worker.TemplateApproved {
		return nil, fmt.Errorf("%w: %s.%s is %s", worker.ErrNotApproved, name, language, d.Status)
	}
	return d, nil
}

// Definition returns tenant's definition whatever its status; another tenant's templates
// are not looked at.
func (t templatesMap) Definition(tenant, name, language string) (*worker.Definition, error) {
	defs := t[tenant]
	if d, ok := defs[name+"."+language]; ok {
		return d, nil
	}
	for key := range defs {
		if strings.HasPrefix(key, name+".") {
			return nil, fmt.Errorf("%w: %s has no %s version", worker.ErrUnknownLanguage, name, language)
		}
	}
	return nil, fmt.Errorf("%w: %q of tenant %s", worker.ErrUnknownTemplate, name, tenant)
}

// canceledCampaigns names, per tenant, the campaigns an operator canceled
// (Config.Campaigns): two tenants may use one campaign name, and one's cancel is not the
// other's.
type canceledCampaigns map[string]map[string]bool

// Canceled tells whether tenant's campaign was canceled.
func (c canceledCampaigns) Canceled(tenant, name string) bool { return c[tenant][name] }

// Sender: the white channel, recorded instead of sent.

// sender renders each job as the Cloud API would receive it and records it.
type sender struct {
	notify func()
	mu     sync.Mutex
	sent   map[string]int    // job id → successful sends
	texts  map[string]string // job id → the text the recipient reads
	failOn map[string]bool   // job ids whose next call fails with a passing error
	tries  int
}

var _ worker.Sender = (*sender)(nil)

func newSender(notify func(), failOnce ...string) *sender {
	s := &sender{notify: notify, sent: map[string]int{}, texts: map[string]string{}, failOn: map[string]bool{}}
	for _, id := range failOnce {
		s.failOn[id] = true
	}
	return s
}

// Send renders m (the template's Cloud API components and its text) and records the send.
func (s *sender) Send(ctx context.Context, m worker.Message) (worker.Result, error) {
	j := m.Job
	text := j.Text
	if m.Template != nil {
		in := worker.TemplateInput{Params: j.Params, Media: j.Media, Buttons: j.Buttons}
		if _, err := m.Template.RenderWhite(in); err != nil {
			return worker.Result{}, &worker.ProviderError{Kind: worker.KindJob, Code: "template", Reason: err.Error(), Err: err}
		}
		t, err := m.Template.RenderText(in)
		if err != nil {
			return worker.Result{}, &worker.ProviderError{Kind: worker.KindJob, Code: "template", Reason: err.Error(), Err: err}
		}
		text = t
	} else if !m.WindowOpen {
		return worker.Result{}, &worker.ProviderError{Kind: worker.KindChannel, Code: "window_closed",
			Reason: "free-form text only inside the 24-hour window"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	s.tries++
	if s.failOn[j.ID] {
		delete(s.failOn, j.ID)
		return worker.Result{}, &worker.ProviderError{Kind: worker.KindRetry, Code: "http_503", Reason: "provider busy (simulated)"}
	}
	s.sent[j.ID]++
	s.texts[j.ID] = text
	return worker.Result{MessageID: "ext-" + j.ID}, nil
}

func (s *sender) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[id]
}

func (s *sender) text(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.texts[id]
}

func (s *sender) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries
}

// JetStream: the worker's connection, wrapped.

// countingJetStream is the worker's JetStream: the real one, counting what the worker
// publishes (status events, dead letters, schedules).
type countingJetStream struct {
	js        jetstream.JetStream
	published atomic.Int64
}

var _ worker.JetStream = (*countingJetStream)(nil)

// Consumer returns a worker consumer.
func (c *countingJetStream) Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error) {
	return c.js.Consumer(ctx, stream, consumer)
}

// PublishMsg publishes and waits for the acknowledgement.
func (c *countingJetStream) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	c.published.Add(1)
	return c.js.PublishMsg(ctx, msg, opts...)
}

// PublishMsgAsync publishes without waiting.
func (c *countingJetStream) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	c.published.Add(1)
	return c.js.PublishMsgAsync(msg, opts...)
}

// PublishAsyncComplete is closed once every asynchronous publish is acknowledged.
func (c *countingJetStream) PublishAsyncComplete() <-chan struct{} {
	return c.js.PublishAsyncComplete()
}

// Limiter: one process, so the schedule lives in memory.

// memLimiter spaces each sender's sends 1/Rate apart (no burst), as Herald's Redis limiter
// does for a fleet; it keeps no daily windows.
type memLimiter struct {
	mu       sync.Mutex
	next     map[string]time.Time // sender → its next free slot
	reserved atomic.Int64
}

var _ worker.Limiter = (*memLimiter)(nil)

// Reserve books the sender's next slot if it is within the request's horizon.
func (l *memLimiter) Reserve(ctx context.Context, r worker.LimitRequest) (worker.LimitDecision, error) {
	if r.Rate <= 0 || r.Sender == "" {
		return worker.LimitDecision{}, fmt.Errorf("limiter: invalid request for %q at %v/s", r.Sender, r.Rate)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	at := now
	if next := l.next[r.Sender]; next.After(now) {
		at = next
	}
	if wait := at.Sub(now); wait > r.Horizon {
		return worker.LimitDecision{RetryAfter: max(wait-r.Horizon, time.Millisecond), Reason: worker.ReasonRate}, nil
	}
	l.next[r.Sender] = at.Add(time.Duration(float64(time.Second) / r.Rate))
	l.reserved.Add(1)
	return worker.LimitDecision{Allowed: true, Delay: at.Sub(now), At: at}, nil
}

// SlowSender would lower the sender's rate after a provider throughput error; the recorded
// sender never returns one.
func (l *memLimiter) SlowSender(ctx context.Context, sender string, factor float64, d time.Duration) error {
	return nil
}

// HoldRecipient would hold one recipient after a provider pair-rate error; see SlowSender.
func (l *memLimiter) HoldRecipient(ctx context.Context, sender, recipient string, d time.Duration) error {
	return nil
}

// Events.

// eventLog keeps the status events received, by job.
type eventLog struct {
	notify func()
	mu     sync.Mutex
	byJob  map[string][]string
}

func newEventLog(notify func()) *eventLog {
	return &eventLog{notify: notify, byJob: map[string][]string{}}
}

func (e *eventLog) add(msg *nats.Msg) {
	var ev worker.Event
	if err := json.Unmarshal(msg.Data, &ev); err != nil {
		fmt.Fprintln(os.Stderr, "heraldexternal: bad event:", err)
		return
	}
	e.mu.Lock()
	e.byJob[ev.ID] = append(e.byJob[ev.ID], ev.State)
	e.mu.Unlock()
	e.notify()
}

func (e *eventLog) has(id, state string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.byJob[id], state)
}

func (e *eventLog) states(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := slices.Clone(e.byJob[id])
	sort.Strings(s)
	return s
}
