// Package smstest is the conformance suite every SMS driver runs (Kannel in internal/sms,
// SMPP in internal/smpp, NATS in internal/smsnats), the way every river driver runs
// riverdrivertest.Exercise: the worker treats the drivers as interchangeable behind one Send
// method, so what it relies on is checked once, here, against each driver's real peer.
//
// A driver's conformance_test.go calls Exercise with a function building a Harness: a fresh
// driver connected to a fresh peer, a view of what the peer received, and the faults the
// peer can be made to show. Only behaviour all drivers promise is checked; what one driver
// does of its own (Kannel's answer texts, SMPP command statuses, NATS deduplication) stays
// in that driver's tests.
package smstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/testutil"
)

// Driver is the method set every SMS driver has (see package sms).
type Driver interface {
	Send(ctx context.Context, m sms.Message) (provider.Result, error)
}

// Sender is the sender id every harness configures its driver with, so that the suite can
// check the peer sees it; it fits an alphanumeric SMPP source address (at most 11 characters).
const Sender = "HeraldTest"

// MinTimeout is the least driver timeout a harness may configure: the suite's caller
// deadline (callerDeadline) must end well before the driver's own one does.
const MinTimeout = time.Second

// Harness is what a driver's test gives the suite: a fresh driver connected to a fresh peer,
// and a way to see what the peer received and to make the peer misbehave. Every field but
// Skip is required.
type Harness struct {
	// Driver is configured with From Sender, its own per-call deadline Timeout, and its
	// defaults otherwise (MaxSegments sms.DefaultMaxSegments, which the suite checks).
	Driver Driver
	// Timeout is the driver's own per-call deadline, at least MinTimeout: a stalled peer
	// must end a Send with a Retry about then.
	Timeout time.Duration
	// Received returns every message the peer got so far, whole (see Reassemble for a peer
	// that sees parts), in arrival order. It is called only from the test's goroutine, so it
	// may fail the test.
	Received func() []Delivery
	// Down takes the peer away for the rest of the test, as a crash or a cut network would:
	// connections drop and new ones are refused or go unanswered.
	Down func()
	// Stall makes the peer take what the driver sends, connections open, and never answer,
	// for the rest of the test.
	Stall func()
	// Skip lists the subtests this driver is known to fail, by name relative to Exercise's
	// test as go test prints it ("LongTextSplitsIntoSegments/a_surrogate_pair_is_never_split"),
	// each with its reason (the issue). They are skipped with it, so the gap shows in every
	// run until the driver is fixed; a name that is no subtest fails the suite.
	Skip map[string]string
}

// Delivery is one message as the peer got it.
type Delivery struct {
	// To is the recipient as the peer reads it: "+<digits>" for an international number.
	To string
	// From is the sender id.
	From string
	// Text is the whole text, its parts joined.
	Text string
	// Encoding is the alphabet the peer was told the text is in.
	Encoding sms.Encoding
	// Segments is the part count: parts received, or what the peer was told to split into.
	Segments int
}

// Timing of the suite. arrival bounds the wait for a message to reach a peer behind a
// store-and-forward gateway (Kannel queues before its SMSC link); the rest bound how long a
// failing Send may take on a loaded machine running the race detector.
const (
	arrival        = 15 * time.Second
	callerDeadline = 200 * time.Millisecond
	prompt         = time.Second     // a Send whose ctx already ended
	slack          = 3 * time.Second // beyond the driver's own Timeout
	concurrency    = 50
)

// Exercise runs the conformance suite against the driver newHarness builds. Each subtest
// calls t.Parallel and then newHarness, so it has a driver and a peer of its own; cases of
// one subtest share them, each with its own recipient.
func Exercise(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	root, known := t.Name(), subtestNames()
	for _, st := range subtests {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if h.Driver == nil || h.Received == nil || h.Down == nil || h.Stall == nil {
				t.Fatalf("smstest: incomplete Harness %+v", h)
			}
			if h.Timeout < MinTimeout {
				t.Fatalf("smstest: Harness.Timeout %s is below MinTimeout %s", h.Timeout, MinTimeout)
			}
			for name := range h.Skip {
				if !known[name] {
					t.Fatalf("smstest: Harness.Skip names %q, which is no subtest: one of %v", name, slices.Sorted(maps.Keys(known)))
				}
			}
			s := &suite{h: h, root: root}
			s.skip(t)
			st.run(s, t)
		})
	}
}

// suite is one subtest's harness and the name of Exercise's test, which Skip names are
// relative to.
type suite struct {
	h    Harness
	root string
}

// skip skips t when the harness lists it as a known failure.
func (s *suite) skip(t *testing.T) {
	t.Helper()
	if reason, ok := s.h.Skip[strings.TrimPrefix(t.Name(), s.root+"/")]; ok {
		t.Skipf("known failure of this driver: %s", reason)
	}
}

// textCase is a text the peer must get intact, in the encoding and part count sms.Analyze
// gives it (and the case states, so that a change to Analyze cannot pass unnoticed).
type textCase struct {
	name     string
	text     string
	enc      sms.Encoding
	segments int
}

var (
	gsm7Cases = []textCase{
		{"ASCII", "Your order 123456 is ready for pickup until 21:00.", sms.GSM7, 1},
		{"basic table beyond ASCII", "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà", sms.GSM7, 1},
		{"extension table", "Pay €5 {cash} [card] a\\b ^ ~ | ok", sms.GSM7, 1},
		{"line breaks", "Line one\nLine two\r\nLine three", sms.GSM7, 1},
	}
	ucs2Cases = []textCase{
		{"Cyrillic", "Заказ 123456 ждёт вас до 21.02.2021", sms.UCS2, 1},
		{"emoji outside the BMP", "Ваш заказ в пути 🚚📦 скоро будет 😀", sms.UCS2, 1},
		{"Chinese", "您的验证码是 123456，五分钟内有效。", sms.UCS2, 1},
		{"one character GSM-7 lacks", "Order `123` is ready", sms.UCS2, 1},
	}
	longCases = []textCase{
		{"160 GSM-7 septets fit one SMS", strings.Repeat("a", 160), sms.GSM7, 1},
		{"161 GSM-7 septets take two", strings.Repeat("b", 161), sms.GSM7, 2},
		{"extension characters count twice", strings.Repeat("{", 81), sms.GSM7, 2},
		{"three GSM-7 parts", strings.Repeat("Your parcel is waiting. ", 15), sms.GSM7, 3},
		{"an escape sequence is never split", strings.Repeat("a", 152) + "€" + strings.Repeat("b", 152), sms.GSM7, 3},
		{"70 UCS-2 units fit one SMS", strings.Repeat("ж", 70), sms.UCS2, 1},
		{"71 UCS-2 units take two", strings.Repeat("ж", 71), sms.UCS2, 2},
		{"three UCS-2 parts", strings.Repeat("Съешь же ещё этих мягких булок. ", 5), sms.UCS2, 3},
		{"a surrogate pair is never split", strings.Repeat("Ж", 66) + "😀" + strings.Repeat("я", 66), sms.UCS2, 3},
		{"six GSM-7 parts, the default maximum", strings.Repeat("c", 153*sms.DefaultMaxSegments), sms.GSM7, sms.DefaultMaxSegments},
		{"six UCS-2 parts, the default maximum", strings.Repeat("я", 67*sms.DefaultMaxSegments), sms.UCS2, sms.DefaultMaxSegments},
	}
)

// subtests are the suite's checks, in order; cases, when set, are its texts (for the names
// Harness.Skip may use).
var subtests = []struct {
	name  string
	cases []textCase
	run   func(s *suite, t *testing.T)
}{
	{"GSM7ArrivesIntact", gsm7Cases, func(s *suite, t *testing.T) { s.texts(t, gsm7Cases, 100) }},
	{"UCS2ArrivesIntact", ucs2Cases, func(s *suite, t *testing.T) { s.texts(t, ucs2Cases, 200) }},
	{"LongTextSplitsIntoSegments", longCases, func(s *suite, t *testing.T) { s.texts(t, longCases, 300) }},
	{"TooManySegmentsIsAJobErrorAndNothingIsSent", nil, (*suite).tooManySegments},
	{"InvalidMessageIsAJobErrorAndNothingIsSent", nil, (*suite).invalidMessage},
	{"PeerDownIsRetry", nil, (*suite).peerDown},
	{"PeerStalledIsRetryAtTheDriversTimeout", nil, (*suite).peerStalled},
	{"CanceledContextReturnsAtOnceUnclassified", nil, (*suite).canceled},
	{"CallerDeadlineEndsAStalledSendUnclassified", nil, (*suite).callerDeadline},
	{"ConcurrentSendsArriveExactlyOnce", nil, (*suite).concurrent},
}

// subtestNames is every name Harness.Skip may hold, as go test prints it.
func subtestNames() map[string]bool {
	names := map[string]bool{}
	for _, st := range subtests {
		names[st.name] = true
		for _, c := range st.cases {
			names[st.name+"/"+strings.ReplaceAll(c.name, " ", "_")] = true
		}
	}
	return names
}

// texts sends each case, in parallel, to a recipient of its own numbered from base.
func (s *suite) texts(t *testing.T, cases []textCase, base int) {
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s.skip(t)
			if enc, _, n := sms.Analyze(c.text); enc != c.enc || n != c.segments {
				t.Fatalf("test text is %s in %d segments by sms.Analyze, want %s in %d", enc, n, c.enc, c.segments)
			}
			m := sms.Message{JobID: fmt.Sprintf("text-%d", base+i), To: recipient(base + i), Text: c.text}
			checkSent(t, s.h, m)
		})
	}
}

// tooManySegments: a text over the default maximum is a Job error (no driver would take
// it, a shorter text is the fix) and never reaches the peer, not even its first parts.
func (s *suite) tooManySegments(t *testing.T) {
	for i, text := range []string{
		strings.Repeat("a", 153*sms.DefaultMaxSegments+1),
		strings.Repeat("ж", 67*sms.DefaultMaxSegments+1),
	} {
		_, err := send(s.h, sms.Message{JobID: fmt.Sprintf("toolong-%d", i), To: recipient(400), Text: text})
		pe := wantKind(t, err, provider.Job)
		if pe != nil && (pe.Code != "too_many_segments" || !errors.Is(err, sms.ErrTooManySegments)) {
			t.Errorf("text of %d segments: %v (code %q), want code too_many_segments wrapping sms.ErrTooManySegments", sms.DefaultMaxSegments+1, err, pe.Code)
		}
	}
	checkNothingElseSent(t, s.h)
}

// invalidMessage: a message no gateway can take is a Job error with code invalid_message
// and never reaches the peer.
func (s *suite) invalidMessage(t *testing.T) {
	cases := []struct {
		name string
		m    sms.Message
	}{
		{"no recipient", sms.Message{To: "", Text: "hi"}},
		{"letters in the number", sms.Message{To: "+7900abc4567", Text: "hi"}},
		{"words", sms.Message{To: "call me", Text: "hi"}},
		{"longer than E.164", sms.Message{To: "+1234567890123456", Text: "hi"}},
		{"empty text", sms.Message{To: recipient(500)}},
		{"text not UTF-8", sms.Message{To: recipient(501), Text: "a\xffb"}},
	}
	for i, c := range cases {
		c.m.JobID = fmt.Sprintf("invalid-%d", i)
		_, err := send(s.h, c.m)
		if pe := wantKind(t, err, provider.Job); pe != nil && pe.Code != "invalid_message" {
			t.Errorf("%s: code %q, want invalid_message", c.name, pe.Code)
		}
	}
	checkNothingElseSent(t, s.h)
}

// peerDown: with the peer gone a Send is a Retry, never a success, and ends within the
// driver's own timeout.
func (s *suite) peerDown(t *testing.T) {
	// One send first: a driver holding a connection must notice it drop, not only fail to
	// open one.
	checkSent(t, s.h, sms.Message{JobID: "down-0", To: recipient(600), Text: "before the outage"})
	s.h.Down()
	for i := 1; i <= 2; i++ {
		start := time.Now()
		res, err := send(s.h, sms.Message{JobID: fmt.Sprintf("down-%d", i), To: recipient(600), Text: "during the outage"})
		if err == nil {
			t.Fatalf("send %d with the peer down succeeded: %+v", i, res)
		}
		wantKind(t, err, provider.Retry)
		if d := time.Since(start); d > s.h.Timeout+slack {
			t.Errorf("send %d with the peer down took %s, driver timeout %s", i, d, s.h.Timeout)
		}
	}
}

// peerStalled: a peer that never answers ends a Send at the driver's own deadline as a
// Retry with code timeout, never a success.
func (s *suite) peerStalled(t *testing.T) {
	checkSent(t, s.h, sms.Message{JobID: "stall-0", To: recipient(700), Text: "before the stall"})
	s.h.Stall()
	start := time.Now()
	res, err := send(s.h, sms.Message{JobID: "stall-1", To: recipient(700), Text: "never answered"})
	d := time.Since(start)
	if err == nil {
		t.Fatalf("send to a stalled peer succeeded: %+v", res)
	}
	if pe := wantKind(t, err, provider.Retry); pe != nil && pe.Code != "timeout" {
		t.Errorf("code %q, want timeout", pe.Code)
	}
	if d > s.h.Timeout+slack {
		t.Errorf("send to a stalled peer took %s, driver timeout %s", d, s.h.Timeout)
	}
}

// canceled: a Send whose context already ended returns at once with the context's error,
// unclassified, so the worker does not count its own stop against the channel.
func (s *suite) canceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	_, err := s.h.Driver.Send(ctx, sms.Message{JobID: "canceled", To: recipient(800), Text: "hi"})
	if d := time.Since(start); d > prompt {
		t.Errorf("send with a canceled context took %s", d)
	}
	wantCallerError(t, err, context.Canceled)
}

// callerDeadline: the caller's deadline, shorter than the driver's own, ends a Send to a
// stalled peer when it passes, with the context's error, unclassified.
func (s *suite) callerDeadline(t *testing.T) {
	checkSent(t, s.h, sms.Message{JobID: "deadline-0", To: recipient(900), Text: "before the stall"})
	s.h.Stall()
	ctx, cancel := context.WithTimeout(t.Context(), callerDeadline)
	defer cancel()
	start := time.Now()
	_, err := s.h.Driver.Send(ctx, sms.Message{JobID: "deadline-1", To: recipient(900), Text: "never answered"})
	if d := time.Since(start); d > callerDeadline+prompt {
		t.Errorf("send returned %s after a %s caller deadline (driver timeout %s)", d, callerDeadline, s.h.Timeout)
	}
	wantCallerError(t, err, context.DeadlineExceeded)
}

// concurrent: sends from many goroutines at once all succeed with distinct message ids, and
// each message reaches the peer exactly once, intact.
func (s *suite) concurrent(t *testing.T) {
	h := s.h
	// One recipient for all: concurrent long messages to one handset must not share a
	// concatenation reference, or the handset would join parts of different messages.
	to := recipient(1000)
	msgs := make([]sms.Message, concurrency)
	for i := range msgs {
		text := fmt.Sprintf("Concurrent message %d of %d", i, concurrency)
		switch i % 5 {
		case 1:
			text = fmt.Sprintf("Сообщение %d из %d", i, concurrency)
		case 2:
			text += strings.Repeat(" long", 40) // two GSM-7 parts
		case 3:
			text = fmt.Sprintf("Сообщение %d из %d", i, concurrency) + strings.Repeat(" длинное", 10) // two UCS-2 parts
		}
		msgs[i] = sms.Message{JobID: fmt.Sprintf("concurrent-%d", i), To: to, Text: text}
	}
	results := make([]provider.Result, len(msgs))
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i := range msgs {
		wg.Go(func() { results[i], errs[i] = send(h, msgs[i]) })
	}
	wg.Wait()
	ids := map[string]int{}
	for i, m := range msgs {
		if errs[i] != nil {
			t.Errorf("send %d: %v", i, errs[i])
			continue
		}
		_, _, segments := sms.Analyze(m.Text)
		if results[i].MessageID == "" || results[i].Segments != segments {
			t.Errorf("send %d: result %+v, want a message id and %d segments", i, results[i], segments)
		}
		if j, dup := ids[results[i].MessageID]; dup && results[i].MessageID != "" {
			t.Errorf("sends %d and %d both got message id %q", j, i, results[i].MessageID)
		}
		ids[results[i].MessageID] = i
	}
	if t.Failed() {
		return
	}
	want := map[string]sms.Message{}
	for _, m := range msgs {
		want[m.Text] = m
	}
	var got []Delivery
	var missing []string
	defer func() {
		if t.Failed() {
			t.Logf("the peer got %d messages; missing: %q", len(got), missing)
		}
	}()
	testutil.Eventually(t, arrival, func() bool {
		got = h.Received()
		seen := map[string]bool{}
		for _, d := range got {
			seen[d.Text] = true
		}
		missing = missing[:0]
		for text := range want {
			if !seen[text] {
				missing = append(missing, text)
			}
		}
		return len(missing) == 0
	}, "not every one of %d concurrent messages reached the peer", len(msgs))
	count := map[string]int{}
	for _, d := range got {
		count[d.Text]++
		m, ok := want[d.Text]
		if !ok {
			t.Errorf("the peer got a message nobody sent: %+v", d)
			continue
		}
		checkDelivery(t, d, m)
	}
	for text, n := range count {
		if n != 1 {
			t.Errorf("the peer got %q %d times, want once", text, n)
		}
	}
}

// recipient is a distinct valid E.164 number per n, so that cases sharing a peer can tell
// their messages apart.
func recipient(n int) string { return fmt.Sprintf("+7900123%04d", n) }

// barrier is the message checkNothingElseSent sends.
var barrier = sms.Message{JobID: "barrier", To: recipient(9999), Text: "barrier: everything sent before this has arrived"}

func send(h Harness, m sms.Message) (provider.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout+slack)
	defer cancel()
	return h.Driver.Send(ctx, m)
}

// checkSent sends m, checks the result and waits for m to reach the peer intact, once.
func checkSent(t *testing.T, h Harness, m sms.Message) {
	t.Helper()
	res, err := send(h, m)
	if err != nil {
		t.Fatalf("send %s: %v", m.JobID, err)
	}
	if _, _, segments := sms.Analyze(m.Text); res.MessageID == "" || res.Segments != segments {
		t.Errorf("send %s: result %+v, want a message id and %d segments", m.JobID, res, segments)
	}
	var all []Delivery
	defer func() {
		if t.Failed() {
			t.Logf("the peer got: %+v", all)
		}
	}()
	var got []Delivery
	testutil.Eventually(t, arrival, func() bool {
		all = h.Received()
		got = to(all, m.To)
		return len(got) > 0
	}, "message %s did not reach the peer", m.JobID)
	if len(got) != 1 {
		t.Fatalf("the peer got %d messages to %s, want 1: %+v", len(got), m.To, got)
	}
	checkDelivery(t, got[0], m)
}

// checkDelivery compares what the peer got with what was sent.
func checkDelivery(t *testing.T, d Delivery, m sms.Message) {
	t.Helper()
	if d.To != m.To || d.From != Sender {
		t.Errorf("the peer got a message to %q from %q, want to %q from %q", d.To, d.From, m.To, Sender)
	}
	if d.Text != m.Text {
		t.Errorf("the peer got text %q, want %q", d.Text, m.Text)
	}
	enc, _, segments := sms.Analyze(m.Text)
	if d.Encoding != enc || d.Segments != segments {
		t.Errorf("the peer got %q as %s in %d segments, want %s in %d", m.Text, encName(d.Encoding), d.Segments, enc, segments)
	}
}

// checkNothingElseSent sends a barrier message and, once it has arrived, checks it is all
// the peer got: a refused message, sent before it, would have reached the peer first.
func checkNothingElseSent(t *testing.T, h Harness) {
	t.Helper()
	checkSent(t, h, barrier)
	if got := h.Received(); len(got) != 1 {
		t.Errorf("the peer got %d messages, want only the barrier: %+v", len(got), got)
	}
}

// wantKind checks err is a *provider.Error of kind k and returns it (nil when it is not).
func wantKind(t *testing.T, err error, k provider.Kind) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Errorf("error %v, want a %s *provider.Error", err, k)
		return nil
	}
	if pe.Kind != k {
		t.Errorf("error %v is a %s failure, want %s", err, pe.Kind, k)
		return nil
	}
	return pe
}

// wantCallerError checks err wraps the caller's context error and is no *provider.Error:
// the worker must not count its own stop or deadline against the channel.
func wantCallerError(t *testing.T, err, target error) {
	t.Helper()
	var pe *provider.Error
	if !errors.Is(err, target) || errors.As(err, &pe) {
		t.Errorf("error %v, want a wrapped %v that is no *provider.Error", err, target)
	}
}

// to returns the deliveries to recipient.
func to(ds []Delivery, recipient string) []Delivery {
	var out []Delivery
	for _, d := range ds {
		if d.To == recipient {
			out = append(out, d)
		}
	}
	return out
}

// encName names e for a failure message; sms.Encoding.String calls anything not UCS-2
// "GSM-7", which would hide a BadEncoding.
func encName(e sms.Encoding) string {
	if e != sms.GSM7 && e != sms.UCS2 {
		return fmt.Sprintf("an unknown encoding (%d)", int(e))
	}
	return e.String()
}
