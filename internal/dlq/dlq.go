// Package dlq reads and replays HERALD_DLQ, the dead letters workers publish for jobs that
// can never be sent as they are (invalid, rejected by the provider, every channel failed).
package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/streams"
)

// DeadLetter is one message of HERALD_DLQ.
type DeadLetter struct {
	Seq   uint64 `json:"seq"`
	JobID string `json:"job_id,omitempty"`
	// Tenant is the job's tenant (a letter of a job without one, or from before tenants,
	// is the default tenant's).
	Tenant   string    `json:"tenant,omitempty"`
	Reason   string    `json:"reason"`
	Error    string    `json:"error"`
	Attempts string    `json:"attempts"`
	Subject  string    `json:"subject"`
	At       time.Time `json:"at"`
	Data     []byte    `json:"-"`
}

// Read reads every dead letter (optionally of one reason) with an ordered consumer.
func Read(ctx context.Context, js jetstream.JetStream, reason string) ([]DeadLetter, error) {
	filter := streams.SubjectDLQPrefix + ">"
	if reason != "" {
		filter = streams.DLQSubject(reason)
	}
	s, err := js.Stream(ctx, streams.DLQStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, err
	}
	var out []DeadLetter
	for {
		batch, err := c.FetchNoWait(500)
		if err != nil {
			return out, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, _ := m.Metadata()
			h := m.Headers()
			tenant := h.Get(streams.HeaderTenant)
			if tenant == "" && h.Get(streams.HeaderJobID) != "" {
				tenant = job.DefaultTenant
			}
			out = append(out, DeadLetter{Seq: md.Sequence.Stream, JobID: h.Get(streams.HeaderJobID), Tenant: tenant, Reason: h.Get(streams.HeaderReason),
				Error: h.Get(streams.HeaderError), Attempts: h.Get(streams.HeaderAttempts), Subject: h.Get(streams.HeaderSubject),
				At: md.Timestamp, Data: m.Data()})
			if md.NumPending == 0 {
				return out, batch.Error()
			}
		}
		if got == 0 {
			return out, batch.Error()
		}
	}
}

// OfTenant keeps the letters of one tenant ("" keeps every letter).
func OfTenant(letters []DeadLetter, tenant string) []DeadLetter {
	if tenant == "" {
		return letters
	}
	var out []DeadLetter
	for _, l := range letters {
		if l.Tenant == tenant {
			out = append(out, l)
		}
	}
	return out
}

// Replay republishes dead letters (all, or those whose job id is in ids) to their
// original subject and deletes them from the DLQ. A replayed job keeps its id: the workers'
// claim guarantees it is never sent twice.
func Replay(ctx context.Context, js jetstream.JetStream, letters []DeadLetter, ids map[string]bool) (int, error) {
	s, err := js.Stream(ctx, streams.DLQStream)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range letters {
		if len(ids) > 0 && !ids[l.JobID] {
			continue
		}
		// Skip a letter already replayed (and so deleted) by an earlier call.
		if _, err := s.GetMsg(ctx, l.Seq); errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		subj := l.Subject
		if subj != streams.SubjectBulk {
			subj = streams.SubjectTransactional
		}
		msg := &nats.Msg{Subject: subj, Data: l.Data, Header: nats.Header{}}
		// A fresh Nats-Msg-Id: the original id is still in the duplicate window when a
		// replay follows a failure quickly, and the claim is what stops a second send.
		msg.Header.Set(streams.HeaderMsgID, fmt.Sprintf("replay:%d:%s", l.Seq, l.JobID))
		msg.Header.Set(streams.HeaderReplay, "1")
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			return n, err
		}
		if err := s.DeleteMsg(ctx, l.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeMessageNotFound {
				return n, err
			}
		}
		n++
	}
	return n, nil
}
