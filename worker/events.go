package worker

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/herald-notify/herald/internal/jsonw"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
)

type (
	metricCounter    = metric.Int64Counter
	metricUpDown     = metric.Int64UpDownCounter
	float64Histogram = metric.Float64Histogram
)

// Event is the payload published on herald.events.status.<state> for every state change.
type Event struct {
	ID                string            `json:"id"`
	State             string            `json:"state"`
	Channel           string            `json:"channel,omitempty"`
	ProviderMessageID string            `json:"provider_message_id,omitempty"`
	Reason            string            `json:"reason,omitempty"`
	Code              string            `json:"code,omitempty"`
	Campaign          string            `json:"campaign,omitempty"`
	Tenant            string            `json:"tenant,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	Attempts          int               `json:"attempts"`
	At                time.Time         `json:"at"`
}

// EventFromRecord is the event announcing rec's current state.
func EventFromRecord(rec *Record) Event {
	e := Event{ID: rec.ID, State: rec.State, Channel: rec.Channel, ProviderMessageID: rec.ProviderMessageID,
		Reason: rec.Reason, Campaign: rec.Campaign, Tenant: rec.Tenant, Metadata: rec.Metadata,
		Attempts: len(rec.History), At: time.Now().UTC()}
	if n := len(rec.History); n > 0 {
		e.Code = rec.History[n-1].Code
	}
	return e
}

// AppendJSON appends the event as JSON, byte for byte what encoding/json writes (tested),
// without its reflection: one event goes out for every state change of every job.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsonw.StringHTML(b, e.ID)
	b = append(b, `,"state":`...)
	b = jsonw.StringHTML(b, e.State)
	b = jsonw.FieldHTML(b, "channel", e.Channel)
	b = jsonw.FieldHTML(b, "provider_message_id", e.ProviderMessageID)
	b = jsonw.FieldHTML(b, "reason", e.Reason)
	b = jsonw.FieldHTML(b, "code", e.Code)
	b = jsonw.FieldHTML(b, "campaign", e.Campaign)
	b = jsonw.FieldHTML(b, "tenant", e.Tenant)
	b = jsonw.MapHTML(b, "metadata", e.Metadata)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	b = append(b, `,"at":"`...)
	b = e.At.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// events publishes status events.
type events struct {
	js      EventPublisher
	log     *slog.Logger
	metrics *telemetry.Metrics
}

// EventPublisher is the part of jetstream.JetStream that publishes status events.
type EventPublisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

var _ EventPublisher = (jetstream.JetStream)(nil)

// publish sends the event for rec's state without waiting for JetStream's acknowledgement:
// the job's outcome is already in Redis (the record is the truth; events tell others), and
// waiting would put a round trip on every job. Failures reach the JetStream context's async
// error handler (logged by the app). The Nats-Msg-Id makes a repeat of the same change (a
// redelivered job) a duplicate.
func (e *events) publish(ctx context.Context, rec *status.Record) jetstream.PubAckFuture {
	return publishStatus(ctx, e.js, e.log, e.metrics, rec)
}

// PublishStatus publishes rec's state as an event, without waiting for JetStream's
// acknowledgement (see events.publish); used by the worker and the API.
func PublishStatus(ctx context.Context, js EventPublisher, log *slog.Logger, m *Metrics, rec *Record) {
	publishStatus(ctx, js, log, m, rec)
}

// publishStatus is PublishStatus returning the publish's future (failed when it could not
// be sent), for a caller that acknowledges its job only once the event is stored.
func publishStatus(ctx context.Context, js EventPublisher, log *slog.Logger, m *telemetry.Metrics, rec *status.Record) jetstream.PubAckFuture {
	e := EventFromRecord(rec)
	msg := &nats.Msg{Subject: streams.StatusSubject(rec.State), Data: e.AppendJSON(make([]byte, 0, 256)),
		Header: nats.Header{streams.HeaderMsgID: {rec.Ref() + ":" + rec.State + ":" + strconv.Itoa(len(rec.History))}}}
	f, err := js.PublishMsgAsync(msg)
	if err != nil {
		log.Warn("status event not published", "job", rec.ID, "state", rec.State, "err", err)
		return failedPublish(msg, err)
	}
	m.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Events }, "state", rec.State)
	return f
}

// failed is the future of a publish that could not even be sent (too many pending, the
// connection closed): its error is ready at once.
type failed struct {
	msg *nats.Msg
	err chan error
}

var _ jetstream.PubAckFuture = (*failed)(nil)

func failedPublish(msg *nats.Msg, err error) jetstream.PubAckFuture {
	c := make(chan error, 1)
	c <- err
	return &failed{msg: msg, err: c}
}

// Ok never delivers: the publish failed.
func (f *failed) Ok() <-chan *jetstream.PubAck { return nil }

// Err delivers the publish's error.
func (f *failed) Err() <-chan error { return f.err }

// Msg is the message that was not published.
func (f *failed) Msg() *nats.Msg { return f.msg }
