// Package smsnats is the nats SMS driver (HERALD_SMS_DRIVER=nats): it hands each SMS, as
// JSON, to an existing SMS integration that consumes a NATS subject (HERALD_SMS_SUBJECT), and
// listens for the delivery reports that integration publishes on herald.sms.status.
//
// Messages are published through JetStream with the job id as Nats-Msg-Id, so a stream that
// captures the subject deduplicates a re-sent job (a worker that died after the publish and
// before the ack) and keeps the SMS while the integration is down. A stream is required: core
// NATS would drop the SMS silently when no integration happens to be subscribed, and could not
// deduplicate. Without one, Send fails with a Sender error wrapping ErrNoStream; EnsureStream
// creates one for deployments where the integration does not bring its own.
package smsnats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
)

// Defaults applied by New and Subscribe to zero fields.
const (
	DefaultSubject       = "herald.sms.outbound"
	DefaultStatusSubject = "herald.sms.status"
	DefaultTimeout       = 5 * time.Second
	// DefaultStream is the stream EnsureStream creates when none captures the subject.
	DefaultStream = "HERALD_SMS"
	// DefaultQueue is the queue group of Subscribe: each report is handled by one Herald
	// process of the fleet, not by all of them.
	DefaultQueue = "herald-sms-status"
)

// MessageIDPrefix starts every Result.MessageID of this driver: "nats:<job id>". Reports are
// applied with the same id, so they match the attempt Send recorded.
const MessageIDPrefix = "nats:"

// ErrNoStream is wrapped in the Sender-kind *provider.Error Send returns when no JetStream
// stream captures the subject: every SMS would fail the same way until one is configured.
var ErrNoStream = errors.New("smsnats: no stream captures the SMS subject")

// Publisher is the JetStream call Send needs; jetstream.JetStream has it.
type Publisher interface {
	PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Config is the nats driver's configuration (HERALD_SMS_* variables).
type Config struct {
	// Subject is where SMS are published (HERALD_SMS_SUBJECT); empty means DefaultSubject.
	Subject string
	// From is the sender id passed to the integration; empty lets it choose.
	From string
	// MaxSegments is the longest SMS sent, in parts (HERALD_SMS_MAX_SEGMENTS); 0 means
	// sms.DefaultMaxSegments.
	MaxSegments int
	// Timeout bounds one publish and its ack; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Outbound is the JSON published for each SMS.
type Outbound struct {
	JobID    string `json:"job_id"`
	To       string `json:"to"`
	Text     string `json:"text"`
	Encoding string `json:"encoding"` // "gsm7" or "ucs2"
	Segments int    `json:"segments"`
	From     string `json:"from,omitempty"`
}

// Driver publishes SMS to the integration's subject. It is safe for concurrent use.
type Driver struct {
	pub Publisher
	cfg Config
}

// New returns a driver publishing through pub with cfg.
func New(pub Publisher, cfg Config) *Driver {
	if cfg.Subject == "" {
		cfg.Subject = DefaultSubject
	}
	if cfg.MaxSegments <= 0 {
		cfg.MaxSegments = sms.DefaultMaxSegments
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Driver{pub: pub, cfg: cfg}
}

// Send publishes m and returns once the stream has stored it; MessageID is "nats:<job id>",
// Segments the part count. A re-publish of a job id inside the stream's duplicate window is
// acknowledged as a duplicate and is a success too: the integration got the SMS once.
func (d *Driver) Send(ctx context.Context, m sms.Message) (provider.Result, error) {
	out, err := d.outbound(m)
	if err != nil {
		return provider.Result{}, err
	}
	data, err := json.Marshal(out)
	if err != nil {
		return provider.Result{}, fmt.Errorf("smsnats: encode: %w", err)
	}
	msg := nats.NewMsg(d.cfg.Subject)
	msg.Data = data
	msg.Header.Set("Content-Type", "application/json")

	cctx, cancel := context.WithTimeoutCause(ctx, d.cfg.Timeout, errTimeout)
	defer cancel()
	if _, err := d.pub.PublishMsg(cctx, msg, jetstream.WithMsgID(m.JobID)); err != nil {
		return provider.Result{}, d.publishError(ctx, cctx, err)
	}
	return provider.Result{MessageID: MessageIDPrefix + m.JobID, Segments: out.Segments}, nil
}

var errTimeout = errors.New("smsnats: publish timed out")

// outbound checks m as every SMS driver does (sms.Kannel's rules) and builds its JSON.
func (d *Driver) outbound(m sms.Message) (Outbound, error) {
	if m.JobID == "" {
		return Outbound{}, sms.Invalid("no job id")
	}
	to, ok := sms.E164(m.To)
	if !ok {
		return Outbound{}, sms.Invalid("recipient is not an E.164 number")
	}
	enc, segments, err := sms.CheckText(m, d.cfg.MaxSegments)
	if err != nil {
		return Outbound{}, err
	}
	o := Outbound{JobID: m.JobID, To: to, Text: m.Text, Encoding: "gsm7", Segments: segments, From: d.cfg.From}
	if enc == sms.UCS2 {
		o.Encoding = "ucs2"
	}
	return o, nil
}

// publishError classifies a failed publish; parent is the caller's context.
func (d *Driver) publishError(parent, cctx context.Context, err error) error {
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("smsnats: publish: %w", parent.Err())
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return &provider.Error{Kind: provider.Sender, Code: "no_stream",
			Reason: fmt.Sprintf("no JetStream stream captures %q (HERALD_SMS_SUBJECT)", d.cfg.Subject), Err: ErrNoStream}
	case context.Cause(cctx) == errTimeout:
		return &provider.Error{Kind: provider.Retry, Code: "timeout",
			Reason: fmt.Sprintf("no JetStream ack within %s", d.cfg.Timeout), Err: err}
	}
	// Connection loss, a full stream, a stream leader election: all pass.
	return &provider.Error{Kind: provider.Retry, Code: "publish_failed",
		Reason: provider.Sanitize("JetStream publish failed: "+err.Error(), 300), Err: err}
}

// StreamManager is the JetStream calls EnsureStream needs; jetstream.JetStream has them.
type StreamManager interface {
	StreamNameBySubject(ctx context.Context, subject string) (string, error)
	CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
}

// EnsureStream makes sure a stream captures subject: it returns the name of the stream that
// already does (the integration's own), or creates DefaultStream for it: work-queue
// retention, so each SMS is kept until the integration consumes it, file storage, and a
// 2-minute duplicate window for Nats-Msg-Id.
func EnsureStream(ctx context.Context, js StreamManager, subject string) (string, error) {
	if subject == "" {
		subject = DefaultSubject
	}
	name, err := js.StreamNameBySubject(ctx, subject)
	if err == nil {
		return name, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return "", fmt.Errorf("smsnats: look up stream for %s: %w", subject, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       DefaultStream,
		Subjects:   []string{subject},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return "", fmt.Errorf("smsnats: create stream %s for %s: %w", DefaultStream, subject, err)
	}
	return DefaultStream, nil
}

// Report is the JSON the integration publishes on herald.sms.status.
type Report struct {
	JobID     string `json:"job_id"`
	MessageID string `json:"message_id,omitempty"` // the integration's own id, logged only
	State     string `json:"state"`
	Code      string `json:"code,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Handler applies one report; an error is logged and, when the report came as a request,
// answered so that the integration can send it again.
type Handler func(ctx context.Context, r status.Report) error

// SubscribeConfig tunes Subscribe; the zero value is the defaults.
type SubscribeConfig struct {
	// Subject is where reports arrive; empty means DefaultStatusSubject.
	Subject string
	// Queue is the queue group; empty means DefaultQueue.
	Queue string
	// Logger receives malformed reports and handler errors; nil discards.
	Logger *slog.Logger
}

// ackOK and ackErr answer a report that came as a request (it has a reply subject).
var (
	ackOK  = []byte("+OK")
	ackErr = []byte("-ERR")
)

// Subscribe listens for delivery reports on core NATS and calls handle for each, with ctx
// (which should live as long as the subscription). The subscription is in place on the
// server when Subscribe returns; it is drained when ctx ends, or by the caller.
//
// Report states map to status states: delivered; failed, undelivered, undeliverable,
// rejected, expired -> failed; sent, accepted, submitted, enroute, buffered -> sent (a
// state never moves backwards, so a late one is harmless). A report with no job_id, an
// unknown state or bad JSON is logged and dropped. Report.MessageID is "nats:<job id>", the
// id Send returned, so the report matches the attempt.
func Subscribe(ctx context.Context, nc *nats.Conn, cfg SubscribeConfig, handle Handler) (*nats.Subscription, error) {
	if cfg.Subject == "" {
		cfg.Subject = DefaultStatusSubject
	}
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sub, err := nc.QueueSubscribe(cfg.Subject, cfg.Queue, func(msg *nats.Msg) {
		rep, err := ParseReport(msg.Data)
		if err != nil {
			log.WarnContext(ctx, "smsnats: malformed SMS status report dropped", "subject", msg.Subject, "err", err)
			respond(msg, ackErr)
			return
		}
		if err := handle(ctx, rep); err != nil {
			log.ErrorContext(ctx, "smsnats: SMS status report not applied", "job_ref", rep.JobRef, "state", rep.State, "err", err)
			respond(msg, ackErr)
			return
		}
		respond(msg, ackOK)
	})
	if err != nil {
		return nil, fmt.Errorf("smsnats: subscribe %s: %w", cfg.Subject, err)
	}
	// A round trip makes sure the server has the interest before the caller relies on it.
	fctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("smsnats: subscribe %s: %w", cfg.Subject, err)
	}
	context.AfterFunc(ctx, func() { _ = sub.Drain() })
	return sub, nil
}

func respond(msg *nats.Msg, data []byte) {
	if msg.Reply != "" {
		_ = msg.Respond(data) // best effort: the integration re-sends on a missing answer
	}
}

// ErrInvalidReport is wrapped by ParseReport for a report Herald cannot apply.
var ErrInvalidReport = errors.New("smsnats: invalid SMS status report")

// ParseReport decodes an integration's status report into a status.Report.
func ParseReport(data []byte) (status.Report, error) {
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return status.Report{}, fmt.Errorf("%w: %w", ErrInvalidReport, err)
	}
	r.JobID = strings.TrimSpace(r.JobID)
	if r.JobID == "" || len(r.JobID) > 192 {
		return status.Report{}, fmt.Errorf("%w: job_id missing or longer than 192 bytes", ErrInvalidReport)
	}
	if _, _, ok := job.SplitRef(r.JobID); !ok {
		r.JobID = job.Ref("", r.JobID) // a bare id, from before tenant refs: the default tenant
	}
	var state string
	switch strings.ToLower(strings.TrimSpace(r.State)) {
	case "delivered":
		state = status.Delivered
	case "failed", "undelivered", "undeliverable", "rejected", "expired":
		state = status.Failed
	case "sent", "accepted", "submitted", "enroute", "buffered":
		state = status.Sent
	default:
		return status.Report{}, fmt.Errorf("%w: unknown state %q", ErrInvalidReport, provider.Sanitize(r.State, 40))
	}
	rep := status.Report{JobRef: r.JobID, MessageID: MessageIDPrefix + r.JobID, State: state, Channel: "sms"}
	if state == status.Failed {
		rep.Code = provider.Sanitize(r.Code, 40)
		rep.Reason = "SMS not delivered"
		if reason := provider.Sanitize(r.Reason, 300); reason != "" {
			rep.Reason += ": " + reason
		}
	}
	return rep, nil
}
