package workertest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/workertest"
)

// TestMsg holds the fake to what the worker could observe of a real message: metadata and
// subject from the options, the first final call wins and later ones are refused, and
// CheckOne tells exactly one disposition from none, two, or one made after Process returned.
func TestMsg(t *testing.T) {
	t.Parallel()
	m := workertest.NewMsg([]byte(`{"id":"a","priority":"bulk"}`), workertest.StreamSeq(7), workertest.Delivered(3),
		workertest.Header("Herald-Replay", "1"))
	md, err := m.Metadata()
	if err != nil || md.Sequence.Stream != 7 || md.NumDelivered != 3 || md.Stream != streams.JobsStream || md.Consumer != streams.ConsumerBulk {
		t.Fatalf("metadata %+v %v", md, err)
	}
	if m.Subject() != streams.SubjectBulk || m.Headers().Get("Herald-Replay") != "1" || m.Reply() == "" {
		t.Fatalf("subject %q headers %v reply %q", m.Subject(), m.Headers(), m.Reply())
	}
	if err := m.CheckOne(workertest.None); err != nil {
		t.Fatalf("untouched message: %v", err)
	}
	if err := m.InProgress(); err != nil {
		t.Fatal(err)
	}
	if err := m.NakWithDelay(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckOne(workertest.NakWithDelay); err != nil {
		t.Fatalf("one NakWithDelay: %v", err)
	}
	if d := m.Disposition(); d.Kind != workertest.NakWithDelay || d.Delay != time.Second || d.String() != "NakWithDelay(1s)" {
		t.Fatalf("disposition %v", d)
	}
	if err := m.Ack(); !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		t.Fatalf("a second final call returned %v, want ErrMsgAlreadyAckd", err)
	}
	if err := m.CheckOne(workertest.NakWithDelay); err == nil {
		t.Fatal("CheckOne accepted two final calls")
	}
	if m.Disposition().Kind != workertest.NakWithDelay || m.Finals() != 2 || m.InProgressCalls() != 1 {
		t.Fatalf("calls %v", m.Calls())
	}

	late := workertest.NewMsg(nil)
	late.Returned()
	_ = late.TermWithReason("x")
	if err := late.CheckOne(workertest.TermWithReason); err == nil {
		t.Fatal("CheckOne accepted a disposition made after Process returned")
	}
	select {
	case <-late.Disposed():
	default:
		t.Fatal("Disposed not closed by the final call")
	}
}
