package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// SubjectPrefix starts the subject of every sender's Status. No stream captures it
// (HERALD_EVENTS holds herald.events.status.> and herald.events.inbound only), so a Status is
// a core NATS message: not stored, and a worker that misses one reads Redis within
// RefreshEvery.
const SubjectPrefix = "herald.events.sender."

// SubjectAll matches every sender's Status subject.
const SubjectAll = SubjectPrefix + "*"

// Subject is the subject of a sender's Status: herald.events.sender.<id>.
func Subject(id string) string { return SubjectPrefix + id }

// ErrNotPublished wraps a failure to publish a Status that was recorded: the change is in
// Redis, and the workers read it within RefreshEvery.
var ErrNotPublished = errors.New("health: status not published")

// Publisher sends a core NATS message; *nats.Conn is one.
type Publisher interface {
	Publish(subject string, data []byte) error
}

var _ Publisher = (*nats.Conn)(nil)

// Publish sends st on Subject(st.Sender).
func Publish(ctx context.Context, pub Publisher, st Status) error {
	if err := ValidID(st.Sender); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("sender status: %w", err)
	}
	if err := pub.Publish(Subject(st.Sender), data); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotPublished, st.Sender, err)
	}
	return nil
}

// Events is the part of a [Store] a Reporter uses.
type Events interface {
	Record(ctx context.Context, sender, kind string, ev Event) error
	Latest(ctx context.Context, senders []string) (map[string]map[string]Event, error)
}

var _ Events = (*Store)(nil)

// Reporter records a sender's health news in its Store, judges the sender anew and publishes
// its Status (every time, changed or not: a Status is small, and the repeat heals a worker
// that missed the previous one), logging the change.
type Reporter struct {
	Store Events
	// Pub publishes each Status; nil publishes nothing (the workers then learn from Redis
	// within RefreshEvery).
	Pub Publisher
	Log *slog.Logger
	// Now is the clock Judge reads; nil is time.Now.
	Now func() time.Time
}

// Report records ev as the latest of evKind for sender (of fleet kind senderKind) and
// publishes the sender's Status. The Status is returned even when publishing failed (the
// error then wraps ErrNotPublished).
func (r *Reporter) Report(ctx context.Context, sender, senderKind, evKind string, ev Event) (Status, error) {
	return r.change(ctx, sender, senderKind, func() error { return r.Store.Record(ctx, sender, evKind, ev) })
}

// change reads the sender's Status, applies write, judges again, publishes and logs.
func (r *Reporter) change(ctx context.Context, sender, senderKind string, write func() error) (Status, error) {
	before, err := r.status(ctx, sender, senderKind)
	if err != nil {
		return Status{}, err
	}
	if err := write(); err != nil {
		return before, err
	}
	after, err := r.status(ctx, sender, senderKind)
	if err != nil {
		return before, err
	}
	logChange(r.logger(), before, after)
	if r.Pub == nil {
		return after, nil
	}
	return after, Publish(ctx, r.Pub, after)
}

func (r *Reporter) status(ctx context.Context, sender, senderKind string) (Status, error) {
	evs, err := r.Store.Latest(ctx, []string{sender})
	if err != nil {
		return Status{}, err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	return Judge(sender, senderKind, evs[sender], now()), nil
}

func (r *Reporter) logger() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// logChange writes the log line of a change: Warn when the sender leaves its pool, Info when
// it returns or its health changes otherwise.
func logChange(log *slog.Logger, before, after Status) {
	attrs := []any{"sender", after.Sender, "health", after.Health, "reason", after.Reason}
	if !after.Until.IsZero() {
		attrs = append(attrs, "until", after.Until)
	}
	switch {
	case before.Usable && !after.Usable:
		log.Warn("sender leaves its pool", attrs...)
	case !before.Usable && after.Usable:
		log.Info("sender returns to its pool", attrs...)
	case before.Health != after.Health || before.Reason != after.Reason:
		log.Info("sender health", attrs...)
	}
}
