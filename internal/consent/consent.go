// Package consent keeps Herald's opt-out list. An opt-out event on herald.events.optout (in
// the HERALD_OPTOUT stream, kept without an age limit) is the truth; the Redis set the
// workers check in their claim script is a cache of it, written after the event and rebuilt
// from the stream when it is found empty.
package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
)

// Actions of an opt-out event.
const (
	Stop  = "stop"
	Start = "start"
)

// DefaultStopWords and DefaultStartWords are used when HERALD_STOP_WORDS and
// HERALD_START_WORDS are not set. A message opts out only when it is one of these words
// (case and surrounding punctuation ignored), so "не останавливайте доставку" stops nothing.
var (
	DefaultStopWords  = []string{"STOP", "СТОП", "ОТПИСАТЬСЯ", "ОТПИСКА", "UNSUBSCRIBE", "STOPALL", "CANCEL"}
	DefaultStartWords = []string{"START", "СТАРТ", "ПОДПИСАТЬСЯ", "UNSTOP", "SUBSCRIBE"}
)

// Words recognises STOP and START messages.
type Words struct {
	stop, start map[string]bool
}

// NewWords returns a matcher; nil lists take the defaults.
func NewWords(stop, start []string) *Words {
	if len(stop) == 0 {
		stop = DefaultStopWords
	}
	if len(start) == 0 {
		start = DefaultStartWords
	}
	w := &Words{stop: map[string]bool{}, start: map[string]bool{}}
	for _, s := range stop {
		w.stop[normalize(s)] = true
	}
	for _, s := range start {
		w.start[normalize(s)] = true
	}
	return w
}

// Match returns Stop, Start or "" for an inbound message text.
func (w *Words) Match(text string) string {
	n := normalize(text)
	switch {
	case n == "":
		return ""
	case w.stop[n]:
		return Stop
	case w.start[n]:
		return Start
	}
	return ""
}

func normalize(s string) string {
	s = strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) })
	return strings.ToUpper(strings.ReplaceAll(s, "Ё", "Е"))
}

// Event is one opt-out change, as published on herald.events.optout.
type Event struct {
	// Phone is the recipient in E.164.
	Phone string `json:"phone"`
	// Action is Stop or Start.
	Action string `json:"action"`
	// Source says who decided: "inbound:white", "inbound:grey", "inbound:sms", "operator".
	Source string `json:"source"`
	// Ref identifies the cause (the inbound message id); it makes a repeated webhook one event.
	Ref string    `json:"ref,omitempty"`
	At  time.Time `json:"at"`
}

// ErrInvalid is returned for an event with a bad phone number or action.
var ErrInvalid = errors.New("consent: invalid event")

// Publisher is the JetStream call Record makes.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Record publishes ev (the truth) and then applies it to the Redis set. When the publish
// fails nothing changes and the error is returned, so the caller can answer "retry".
func Record(ctx context.Context, js Publisher, rdb redis.UniversalClient, ev Event) error {
	if ev.Action != Stop && ev.Action != Start {
		return fmt.Errorf("%w: action %q is neither stop nor start", ErrInvalid, ev.Action)
	}
	if !strings.HasPrefix(ev.Phone, "+") || len(ev.Phone) < 8 {
		return fmt.Errorf("%w: phone must be E.164", ErrInvalid)
	}
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	data, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: streams.SubjectOptOut, Data: data, Header: nats.Header{}}
	if ev.Ref != "" {
		msg.Header.Set(streams.HeaderMsgID, "optout:"+ev.Action+":"+ev.Ref)
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("consent: publish opt-out event: %w", err)
	}
	return apply(ctx, rdb, ev)
}

func apply(ctx context.Context, rdb redis.UniversalClient, ev Event) error {
	var err error
	if ev.Action == Stop {
		err = rdb.SAdd(ctx, status.KeySuppressed, ev.Phone).Err()
	} else {
		err = rdb.SRem(ctx, status.KeySuppressed, ev.Phone).Err()
	}
	if err != nil {
		return fmt.Errorf("consent: update the suppression set: %w", err)
	}
	return nil
}

// Suppressed tells whether phone is on the list.
func Suppressed(ctx context.Context, rdb redis.UniversalClient, phone string) (bool, error) {
	return rdb.SIsMember(ctx, status.KeySuppressed, phone).Result()
}

// Rebuild refills an empty Redis suppression set from the opt-out stream (Redis lost its
// data, or was replaced). It returns how many numbers are suppressed after replaying the
// events in order; a non-empty set is left alone and reported as -1.
func Rebuild(ctx context.Context, js jetstream.JetStream, rdb redis.UniversalClient, log *slog.Logger) (int, error) {
	n, err := rdb.Exists(ctx, status.KeySuppressed).Result()
	if err != nil {
		return 0, fmt.Errorf("consent: check the suppression set: %w", err)
	}
	if n > 0 {
		return -1, nil
	}
	stream, err := js.Stream(ctx, streams.OptOutStream)
	if err != nil {
		return 0, fmt.Errorf("consent: opt-out stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("consent: opt-out stream: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return 0, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.SubjectOptOut}})
	if err != nil {
		return 0, fmt.Errorf("consent: replay opt-outs: %w", err)
	}
	set := map[string]bool{}
	start := time.Now()
	for read := 0; ; read++ {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return 0, fmt.Errorf("consent: replay opt-outs: %w", err)
		}
		var seq uint64
		got := 0
		for m := range batch.Messages() {
			got++
			md, _ := m.Metadata()
			if md != nil {
				seq = md.Sequence.Stream
			}
			var ev Event
			if json.Unmarshal(m.Data(), &ev) != nil {
				log.Warn("consent: unreadable opt-out event skipped")
				continue
			}
			set[ev.Phone] = ev.Action == Stop
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return 0, fmt.Errorf("consent: replay opt-outs: %w", err)
		}
		if seq >= last || got == 0 {
			break
		}
		if read%50 == 49 {
			log.Info("consent: rebuilding the suppression set", "events", seq, "of", last)
		}
	}
	var members []any
	for p, stop := range set {
		if stop {
			members = append(members, p)
		}
	}
	if len(members) > 0 {
		pipe := rdb.TxPipeline()
		for i := 0; i < len(members); i += 1000 {
			pipe.SAdd(ctx, status.KeySuppressed, members[i:min(i+1000, len(members))]...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("consent: write the suppression set: %w", err)
		}
	}
	log.Info("consent: suppression set rebuilt from the opt-out stream", "suppressed", len(members), "events", last, "took", time.Since(start).Round(time.Millisecond))
	return len(members), nil
}
