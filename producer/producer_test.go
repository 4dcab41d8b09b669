package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/producer"
)

// setup starts a nats-server, provisions Herald's streams as every process does at start and
// returns a producer on it with the HERALD_JOBS stream to inspect.
func setup(t *testing.T, opts ...producer.Option) (*producer.Producer, jetstream.Stream) {
	t.Helper()
	n := testutil.StartNATS(t)
	_, js := n.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Options{}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	s, err := js.Stream(t.Context(), streams.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	return producer.New(js, opts...), s
}

// subjects returns the number of stored messages per subject of the jobs stream.
func subjects(t *testing.T, s jetstream.Stream) map[string]uint64 {
	t.Helper()
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Subjects == nil {
		return map[string]uint64{}
	}
	return info.State.Subjects
}

func newJob(id string) *producer.Job {
	return &producer.Job{ID: id, To: "+79001234567", Template: "order_ready", Params: map[string]string{"order": "123456"}}
}

// decodeStored parses a stored job with the worker's strict rules.
func decodeStored(t *testing.T, data []byte) *job.Job {
	t.Helper()
	j, err := job.Decode(data, job.Options{DefaultRegion: "RU", DefaultLanguage: "ru"})
	if err != nil {
		t.Fatalf("stored job does not decode: %v\n%s", err, data)
	}
	return j
}

func TestPublish(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		job         *producer.Job
		subject     string
		wantTo      string
		wantPrio    string
		wantLang    string
		wantChannel []string
	}{
		{
			name:     "transactional by default",
			job:      newJob("order-1-ready"),
			subject:  streams.SubjectTransactional,
			wantTo:   "+79001234567",
			wantPrio: "transactional", wantLang: "ru",
		},
		{
			name: "bulk",
			job: &producer.Job{ID: "promo-1", To: "+79001234567", Template: "balance_expiry", Language: "en_US",
				Priority: "bulk", Channels: []string{"grey", "sms"}},
			subject:  streams.SubjectBulk,
			wantTo:   "+79001234567",
			wantPrio: "bulk", wantLang: "en_US", wantChannel: []string{"grey", "sms"},
		},
		{
			name:     "national number is normalised",
			job:      &producer.Job{ID: "national-1", To: "8 (900) 123-45-67", Text: "Ваш заказ готов"},
			subject:  streams.SubjectTransactional,
			wantTo:   "+79001234567",
			wantPrio: "transactional",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, s := setup(t)
			res, err := p.Publish(t.Context(), tc.job)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if res.ID != tc.job.ID || res.Duplicate || res.Scheduled || res.Sequence == 0 {
				t.Fatalf("result = %+v", res)
			}
			msg, err := s.GetMsg(t.Context(), res.Sequence)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Subject != tc.subject {
				t.Fatalf("subject = %q, want %q", msg.Subject, tc.subject)
			}
			// The tenant is part of the dedupe key: one tenant's id never blocks another's.
			if got := msg.Header.Get(streams.HeaderMsgID); got != tc.job.Ref() {
				t.Fatalf("Nats-Msg-Id = %q, want %q", got, tc.job.Ref())
			}
			if msg.Header.Get(streams.HeaderSchedule) != "" {
				t.Fatal("an immediate job carries Nats-Schedule")
			}
			stored := decodeStored(t, msg.Data)
			if stored.ID != tc.job.ID || stored.To != tc.wantTo || stored.Priority != tc.wantPrio ||
				stored.Language != tc.wantLang || !slices.Equal(stored.Channels, tc.wantChannel) {
				t.Fatalf("stored job = %+v", stored)
			}
			// Publish normalised the caller's job in place, and what is stored is its encoding.
			want, _ := tc.job.Encode()
			if string(msg.Data) != string(want) || tc.job.To != tc.wantTo {
				t.Fatalf("stored %s, caller's job encodes to %s", msg.Data, want)
			}

			again, err := p.Publish(t.Context(), tc.job)
			if err != nil {
				t.Fatalf("republish: %v", err)
			}
			if !again.Duplicate || again.Sequence != res.Sequence {
				t.Fatalf("republish result = %+v, want duplicate of sequence %d", again, res.Sequence)
			}
			if got := subjects(t, s); got[tc.subject] != 1 || len(got) != 1 {
				t.Fatalf("stream subjects = %v, want one message on %s", got, tc.subject)
			}
		})
	}
}

func TestPublishInvalid(t *testing.T) {
	t.Parallel()
	p, s := setup(t)
	for _, tc := range []struct {
		name   string
		job    *producer.Job
		fields []string
	}{
		{"everything wrong", &producer.Job{ID: "bad id!", To: "12", Priority: "urgent"}, []string{"id", "priority", "template", "to"}},
		{"unknown channel", &producer.Job{ID: "bad-channel", To: "+79001234567", Text: "hi", Channels: []string{"pigeon"}}, []string{"channels"}},
		{"template and text", &producer.Job{ID: "both", To: "+79001234567", Template: "t", Text: "x"}, []string{"text"}},
		{"media without url", &producer.Job{ID: "media", To: "+79001234567", Template: "t", Media: &producer.Media{Type: "image"}}, []string{"media.url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := p.Publish(t.Context(), tc.job)
			if !errors.Is(err, producer.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			var verr *producer.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err is %T, want *ValidationError", err)
			}
			var got []string
			for _, f := range verr.Fields {
				if f.Reason == "" {
					t.Errorf("field %s has no reason", f.Field)
				}
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tc.fields) {
				t.Fatalf("invalid fields = %v, want %v (%v)", got, tc.fields, err)
			}
			if res.ID != tc.job.ID || res.Sequence != 0 {
				t.Fatalf("result = %+v", res)
			}
		})
	}
	if got := subjects(t, s); len(got) != 0 {
		t.Fatalf("invalid jobs were published: %v", got)
	}
}

func TestPublishScheduled(t *testing.T) {
	t.Parallel()
	msk := time.FixedZone("MSK", 3*3600)
	// send_at an hour ahead of the real clock, so that the server does not fire the schedule
	// during the test; the producer's clock decides whether it is "in the future".
	sendAt := time.Now().Add(time.Hour).Truncate(time.Second).In(msk)
	for _, tc := range []struct {
		name      string
		now       time.Time
		priority  string
		scheduled bool
		target    string
	}{
		{"future transactional", sendAt.Add(-time.Minute), "", true, streams.SubjectTransactional},
		{"future bulk", sendAt.Add(-time.Minute), "bulk", true, streams.SubjectBulk},
		{"past send_at is queued now", sendAt.Add(time.Second), "", false, streams.SubjectTransactional},
		{"send_at exactly now is queued now", sendAt, "", false, streams.SubjectTransactional},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, s := setup(t, producer.WithClock(func() time.Time { return tc.now }))
			j := newJob("scheduled-1")
			j.Priority = tc.priority
			at := sendAt
			j.SendAt = &at
			res, err := p.Publish(t.Context(), j)
			if err != nil {
				t.Fatal(err)
			}
			if res.Scheduled != tc.scheduled {
				t.Fatalf("Scheduled = %v, want %v", res.Scheduled, tc.scheduled)
			}
			msg, err := s.GetMsg(t.Context(), res.Sequence)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Header.Get(streams.HeaderMsgID) != j.Ref() {
				t.Fatalf("Nats-Msg-Id = %q", msg.Header.Get(streams.HeaderMsgID))
			}
			if !tc.scheduled {
				if msg.Subject != tc.target || msg.Header.Get(streams.HeaderSchedule) != "" {
					t.Fatalf("immediate job on %s with schedule %q", msg.Subject, msg.Header.Get(streams.HeaderSchedule))
				}
				return
			}
			if msg.Subject != streams.DelayedSubject(j.Ref()) {
				t.Fatalf("subject = %q, want herald.delayed.%s", msg.Subject, j.ID)
			}
			wantAt := "@at " + sendAt.UTC().Format(time.RFC3339)
			if got := msg.Header.Get(streams.HeaderSchedule); got != wantAt || !strings.HasSuffix(got, "Z") {
				t.Fatalf("Nats-Schedule = %q, want %q", got, wantAt)
			}
			if got := msg.Header.Get(streams.HeaderScheduleTarget); got != tc.target {
				t.Fatalf("Nats-Schedule-Target = %q, want %q", got, tc.target)
			}
			if decodeStored(t, msg.Data).SendAt == nil {
				t.Fatal("stored job lost its send_at")
			}
			if got := subjects(t, s); got[tc.target] != 0 {
				t.Fatalf("a scheduled job is already on %s: %v", tc.target, got)
			}
		})
	}
}

// TestScheduleFires publishes a job due in two seconds with the real clock and waits for the
// server to move it onto the job subject, where a worker's consumer receives it.
func TestScheduleFires(t *testing.T) {
	t.Parallel()
	n := testutil.StartNATS(t)
	_, js := n.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), streams.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	p := producer.New(js)
	sendAt := time.Now().Add(2 * time.Second)
	j := newJob("due-in-2s")
	j.SendAt = &sendAt
	res, err := p.Publish(t.Context(), j)
	if err != nil || !res.Scheduled {
		t.Fatalf("Publish = %+v, %v; want scheduled", res, err)
	}
	if got := subjects(t, s); got[streams.SubjectTransactional] != 0 {
		t.Fatalf("job on the job subject before its time: %v", got)
	}

	cons, err := js.Consumer(t.Context(), streams.JobsStream, streams.ConsumerTransactional)
	if err != nil {
		t.Fatal(err)
	}
	var msg jetstream.Msg
	testutil.Eventually(t, 10*time.Second, func() bool {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			msg = m
		}
		return msg != nil
	}, "scheduled job never reached %s", streams.SubjectTransactional)

	md, err := msg.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	// The schedule is written with whole seconds.
	if md.Timestamp.Before(sendAt.Truncate(time.Second)) {
		t.Fatalf("job delivered at %s, before its send_at %s", md.Timestamp, sendAt)
	}
	if msg.Subject() != streams.SubjectTransactional {
		t.Fatalf("subject = %q", msg.Subject())
	}
	// The server drops Nats-Msg-Id from the produced message, so the dedupe entry of the
	// schedule does not swallow it.
	h := msg.Headers()
	if h.Get(streams.HeaderMsgID) != "" || h.Get(streams.HeaderSchedule) != "" || h.Get("Nats-Scheduler") != streams.DelayedSubject(j.Ref()) {
		t.Fatalf("headers of the produced job = %v", h)
	}
	if got := decodeStored(t, msg.Data()); got.ID != j.ID {
		t.Fatalf("produced job = %+v", got)
	}
	if err := msg.DoubleAck(t.Context()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return subjects(t, s)[streams.DelayedSubject(j.Ref())] == 0
	}, "the one-shot schedule message was not removed")

	// The id is still remembered: publishing the job again queues nothing.
	again, err := p.Publish(t.Context(), newJob("due-in-2s"))
	if err != nil || !again.Duplicate {
		t.Fatalf("republish after the schedule fired = %+v, %v; want duplicate", again, err)
	}
	if got := subjects(t, s); len(got) != 0 {
		t.Fatalf("stream after ack = %v, want empty", got)
	}
}

func TestPublishBatch(t *testing.T) {
	t.Parallel()
	p, s := setup(t, producer.WithMaxInFlight(64))
	const n = 5000
	invalid := map[int]bool{7: true, 1234: true, 4999: true}
	const dupOf, dup = 10, 11
	jobs := make([]*producer.Job, n)
	for i := range jobs {
		jobs[i] = newJob(fmt.Sprintf("batch-%05d", i))
		if i%10 == 3 {
			jobs[i].Priority = "bulk"
		}
	}
	jobs[7].To = "not a number"
	jobs[1234].Channels = []string{"fax"}
	jobs[4999].ID = ""
	jobs[dup].ID = jobs[dupOf].ID

	results, err := p.PublishBatch(t.Context(), jobs)
	if err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if len(results) != n {
		t.Fatalf("%d results for %d jobs", len(results), n)
	}
	seqs := map[uint64]int{}
	wantSubjects := map[string]uint64{}
	for i, r := range results {
		if r.ID != jobs[i].ID {
			t.Fatalf("result %d has id %q, want %q: results out of order", i, r.ID, jobs[i].ID)
		}
		if invalid[i] {
			if !errors.Is(r.Err, producer.ErrInvalid) || r.Sequence != 0 {
				t.Fatalf("result %d = %+v, want a validation error", i, r)
			}
			continue
		}
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
		if i == dup {
			if !r.Duplicate || r.Sequence != results[dupOf].Sequence {
				t.Fatalf("repeated id in the batch: %+v, want duplicate of sequence %d", r, results[dupOf].Sequence)
			}
			continue
		}
		if r.Duplicate || r.Scheduled || r.Sequence == 0 {
			t.Fatalf("result %d = %+v", i, r)
		}
		if prev, ok := seqs[r.Sequence]; ok {
			t.Fatalf("results %d and %d share sequence %d", prev, i, r.Sequence)
		}
		seqs[r.Sequence] = i
		wantSubjects[streams.SubjectFor(jobs[i].Priority)]++
	}
	if len(seqs) != n-len(invalid)-1 {
		t.Fatalf("%d jobs stored, want %d", len(seqs), n-len(invalid)-1)
	}
	if got := subjects(t, s); !mapsEqual(got, wantSubjects) {
		t.Fatalf("stream subjects = %v, want %v", got, wantSubjects)
	}
	for _, i := range []int{0, 3, 2500, 4998} {
		msg, err := s.GetMsg(t.Context(), results[i].Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeStored(t, msg.Data); got.ID != jobs[i].ID || msg.Subject != streams.SubjectFor(jobs[i].Priority) ||
			msg.Header.Get(streams.HeaderMsgID) != jobs[i].Ref() {
			t.Fatalf("message of job %d: %s %s %v", i, msg.Subject, msg.Data, msg.Header)
		}
	}

	// The whole batch again: every valid job is a duplicate and nothing new is stored.
	results, err = p.PublishBatch(t.Context(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if !invalid[i] && (r.Err != nil || !r.Duplicate) {
			t.Fatalf("second batch, result %d = %+v, want duplicate", i, r)
		}
	}
	if got := subjects(t, s); !mapsEqual(got, wantSubjects) {
		t.Fatalf("stream subjects after the second batch = %v, want %v", got, wantSubjects)
	}
}

func TestPublishBatchEmpty(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	results, err := p.PublishBatch(t.Context(), nil)
	if err != nil || len(results) != 0 {
		t.Fatalf("PublishBatch(nil) = %v, %v", results, err)
	}
}

// TestPublishBatchInFlightBounds: any WithMaxInFlight value still publishes every job.
// (Values below 1 are treated as 1.)
func TestPublishBatchInFlightBounds(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 0, -1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			p, s := setup(t, producer.WithMaxInFlight(n))
			jobs := []*producer.Job{newJob("a"), newJob("b"), newJob("c")}
			var results []producer.Result
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("PublishBatch with WithMaxInFlight(%d) panicked: %v", n, r)
					}
				}()
				results, err = p.PublishBatch(t.Context(), jobs)
			}()
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range results {
				if r.Err != nil || r.Sequence == 0 || r.ID != jobs[i].ID {
					t.Fatalf("result %d = %+v", i, r)
				}
			}
			if got := subjects(t, s); got[streams.SubjectTransactional] != 3 {
				t.Fatalf("stream subjects = %v, want 3 jobs", got)
			}
		})
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestTraceContext sets the global tracer provider and propagator, so it is not parallel:
// it runs before the parallel tests resume.
func TestTraceContext(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
		otel.SetTracerProvider(noop.NewTracerProvider())
		_ = tp.Shutdown(context.Background())
	})

	p, s := setup(t)
	ctx, parent := tp.Tracer("test").Start(t.Context(), "business operation")
	res, err := p.Publish(ctx, newJob("traced-1"))
	if err != nil {
		t.Fatal(err)
	}
	results, err := p.PublishBatch(ctx, []*producer.Job{newJob("traced-2")})
	if err != nil || results[0].Err != nil {
		t.Fatalf("PublishBatch: %v %v", err, results)
	}
	parent.End()

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range spans.Ended() {
		byName[sp.Name()] = sp
	}
	for _, tc := range []struct {
		seq  uint64
		span string
	}{
		{res.Sequence, "herald.publish"},
		{results[0].Sequence, "herald.publish_batch"},
	} {
		msg, err := s.GetMsg(t.Context(), tc.seq)
		if err != nil {
			t.Fatal(err)
		}
		// propagation.HeaderCarrier is an http.Header: it writes the canonical key.
		tp := msg.Header.Get("Traceparent")
		if tp == "" {
			t.Fatalf("message %d has no Traceparent header: %v", tc.seq, msg.Header)
		}
		sp, ok := byName[tc.span]
		if !ok {
			t.Fatalf("no %s span recorded", tc.span)
		}
		if sp.SpanKind() != trace.SpanKindProducer || sp.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Fatalf("%s: kind %s, parent %s; want a producer span under the caller's", tc.span, sp.SpanKind(), sp.Parent().SpanID())
		}
		want := fmt.Sprintf("00-%s-%s-01", parent.SpanContext().TraceID(), sp.SpanContext().SpanID())
		if tp != want {
			t.Fatalf("Traceparent = %q, want %q (the trace of ctx, child of the %s span)", tp, want, tc.span)
		}
		// The worker extracts it with the same carrier.
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(msg.Header)))
		if sc.TraceID() != parent.SpanContext().TraceID() {
			t.Fatalf("extracted trace %s, want %s", sc.TraceID(), parent.SpanContext().TraceID())
		}
	}
	if sp := byName["herald.publish"]; !hasAttr(sp, "herald.job_id", "traced-1") {
		t.Fatalf("herald.publish attributes = %v", sp.Attributes())
	}
}

func hasAttr(sp sdktrace.ReadOnlySpan, key, value string) bool {
	for _, kv := range sp.Attributes() {
		if string(kv.Key) == key && kv.Value.String() == value {
			return true
		}
	}
	return false
}

// TestResultJSON checks the wire form the API and CLI print.
func TestResultJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(producer.Result{ID: "a", Sequence: 3, Err: errors.New("x")})
	if err != nil || string(b) != `{"id":"a","sequence":3}` {
		t.Fatalf("json = %s, %v", b, err)
	}
}
