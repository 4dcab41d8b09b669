package workertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/streams"
)

// Kind is what a call on a [Msg] did to the delivery.
type Kind int

// The kinds of calls. None is the absence of a final one: the delivery is left to
// JetStream, which redelivers it after the ack wait.
const (
	None Kind = iota
	Ack
	DoubleAck
	Nak
	NakWithDelay
	Term
	TermWithReason
	// InProgress only resets the ack wait; it is never a disposition.
	InProgress
)

var kindNames = [...]string{"None", "Ack", "DoubleAck", "Nak", "NakWithDelay", "Term", "TermWithReason", "InProgress"}

// String names the kind as its method on jetstream.Msg.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Final tells whether a call of this kind settles the delivery (JetStream accepts one).
func (k Kind) Final() bool { return k != None && k != InProgress }

// Disposition is what happened to a delivery in the end: its first final call, or None.
type Disposition struct {
	Kind Kind
	// Delay is NakWithDelay's delay.
	Delay time.Duration
	// Reason is TermWithReason's reason.
	Reason string
}

// String shows the disposition as the call that made it.
func (d Disposition) String() string {
	switch d.Kind {
	case NakWithDelay:
		return fmt.Sprintf("NakWithDelay(%s)", d.Delay)
	case TermWithReason:
		return fmt.Sprintf("TermWithReason(%q)", d.Reason)
	}
	return d.Kind.String()
}

// Call is one recorded call on a Msg.
type Call struct {
	Kind   Kind
	Delay  time.Duration
	Reason string
	At     time.Time
	// Err is what the call returned: ErrMsgAlreadyAckd for a final call after the first,
	// as a real JetStream message answers (the server would ignore it).
	Err error
	// AfterReturn marks a call made after Process returned (see [Msg.Returned]): the
	// executor promises to have decided by then, so such a call is a leak.
	AfterReturn bool
}

// Msg is a fake [jetstream.Msg] for feeding one delivery to an executor. It records every
// call, is safe for concurrent use (the worker's heartbeat calls InProgress from its own
// goroutine) and behaves like a real message where the worker could tell: the first final
// call wins and later ones fail with jetstream.ErrMsgAlreadyAckd.
type Msg struct {
	data    []byte
	subject string
	reply   string
	headers nats.Header
	md      jetstream.MsgMetadata
	mdErr   error

	mu       sync.Mutex
	calls    []Call
	returned bool
	final    chan struct{} // closed at the first final call
}

var _ jetstream.Msg = (*Msg)(nil)

// MsgOption sets up a Msg.
type MsgOption func(*Msg)

// Delivered sets NumDelivered: 1 is a first delivery, more a redelivery.
func Delivered(n uint64) MsgOption { return func(m *Msg) { m.md.NumDelivered = n } }

// StreamSeq sets the stream sequence (the worker derives the claim owner and DLQ letter
// ids from it: a redelivery keeps its message's sequence).
func StreamSeq(seq uint64) MsgOption { return func(m *Msg) { m.md.Sequence.Stream = seq } }

// Subject sets the subject the message was received on (default: the job subject of the
// data's priority).
func Subject(s string) MsgOption { return func(m *Msg) { m.subject = s } }

// Header adds a header (Herald-Replay, Herald-Check, traceparent...).
func Header(key, value string) MsgOption { return func(m *Msg) { m.headers.Add(key, value) } }

// Timestamp sets the time the message was stored (default: now).
func Timestamp(t time.Time) MsgOption { return func(m *Msg) { m.md.Timestamp = t } }

// MetadataError makes Metadata fail, as for a message that did not come from JetStream.
func MetadataError(err error) MsgOption { return func(m *Msg) { m.mdErr = err } }

// NewMsg returns a first delivery (NumDelivered 1, stream sequence 1) of data on the job
// subject of its priority.
func NewMsg(data []byte, opts ...MsgOption) *Msg {
	m := &Msg{data: data, headers: nats.Header{}, final: make(chan struct{})}
	m.md = jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: 1, Consumer: 1},
		NumDelivered: 1,
		Timestamp:    time.Now(),
		Stream:       streams.JobsStream,
	}
	for _, o := range opts {
		o(m)
	}
	if m.subject == "" {
		m.subject = streams.SubjectFor(peekString(data, "priority"))
	}
	if m.md.Consumer == "" {
		m.md.Consumer = streams.ConsumerTransactional
		if m.subject == streams.SubjectBulk {
			m.md.Consumer = streams.ConsumerBulk
		}
	}
	m.reply = "$JS.ACK." + m.md.Stream + "." + m.md.Consumer + ".fake"
	return m
}

// Metadata returns the configured metadata (a copy: the caller may not change the Msg).
func (m *Msg) Metadata() (*jetstream.MsgMetadata, error) {
	if m.mdErr != nil {
		return nil, m.mdErr
	}
	md := m.md
	return &md, nil
}

// Data returns the message body.
func (m *Msg) Data() []byte { return m.data }

// Headers returns the message headers.
func (m *Msg) Headers() nats.Header { return m.headers }

// Subject returns the subject the message was received on.
func (m *Msg) Subject() string { return m.subject }

// Reply returns a JetStream-like ack subject.
func (m *Msg) Reply() string { return m.reply }

// Ack records an Ack.
func (m *Msg) Ack() error { return m.record(Call{Kind: Ack}) }

// DoubleAck records a DoubleAck.
func (m *Msg) DoubleAck(context.Context) error { return m.record(Call{Kind: DoubleAck}) }

// Nak records a Nak.
func (m *Msg) Nak() error { return m.record(Call{Kind: Nak}) }

// NakWithDelay records a NakWithDelay with its delay.
func (m *Msg) NakWithDelay(d time.Duration) error {
	return m.record(Call{Kind: NakWithDelay, Delay: d})
}

// InProgress records a heartbeat.
func (m *Msg) InProgress() error { return m.record(Call{Kind: InProgress}) }

// Term records a Term.
func (m *Msg) Term() error { return m.record(Call{Kind: Term}) }

// TermWithReason records a TermWithReason with its reason.
func (m *Msg) TermWithReason(reason string) error {
	return m.record(Call{Kind: TermWithReason, Reason: reason})
}

func (m *Msg) record(c Call) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c.At = time.Now()
	c.AfterReturn = m.returned
	// As a real message: nothing is accepted once a final call went out, InProgress included.
	if m.disposedLocked() {
		c.Err = jetstream.ErrMsgAlreadyAckd
	} else if c.Kind.Final() {
		close(m.final)
	}
	m.calls = append(m.calls, c)
	return c.Err
}

func (m *Msg) disposedLocked() bool {
	select {
	case <-m.final:
		return true
	default:
		return false
	}
}

// Calls returns every call so far, in order.
func (m *Msg) Calls() []Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Call(nil), m.calls...)
}

// Disposition returns the first final call, or None.
func (m *Msg) Disposition() Disposition {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.calls {
		if c.Kind.Final() {
			return Disposition{Kind: c.Kind, Delay: c.Delay, Reason: c.Reason}
		}
	}
	return Disposition{}
}

// Finals counts the final calls, the refused ones included: exactly one is what a
// delivery should get (zero when it is deliberately left to redelivery).
func (m *Msg) Finals() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if c.Kind.Final() {
			n++
		}
	}
	return n
}

// InProgressCalls counts the heartbeats.
func (m *Msg) InProgressCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if c.Kind == InProgress {
			n++
		}
	}
	return n
}

// Returned marks the end of the Process call; later calls are flagged AfterReturn.
func (m *Msg) Returned() {
	m.mu.Lock()
	m.returned = true
	m.mu.Unlock()
}

// Disposed is closed at the first final call, for waiting on an executor that runs the
// delivery on another goroutine.
func (m *Msg) Disposed() <-chan struct{} { return m.final }

// CheckOne reports an error unless the delivery got exactly one final call, of kind want,
// made before Process returned (with want None: no final call at all).
func (m *Msg) CheckOne(want Kind) error {
	var errs []error
	finals := m.Finals()
	switch {
	case want == None && finals != 0:
		errs = append(errs, fmt.Errorf("%d final calls, want none (left to redelivery): %v", finals, m.Calls()))
	case want != None && finals != 1:
		errs = append(errs, fmt.Errorf("%d final calls, want exactly one: %v", finals, m.Calls()))
	}
	if got := m.Disposition(); got.Kind != want {
		errs = append(errs, fmt.Errorf("disposition %v, want %v", got, want))
	}
	for _, c := range m.Calls() {
		if c.AfterReturn {
			errs = append(errs, fmt.Errorf("%v called after Process returned", c.Kind))
		}
	}
	return errors.Join(errs...)
}
