// Package provider holds what every channel adapter shares: the message a worker asks an
// adapter to send, the result of a send, and the typed failure outcomes the worker maps to
// JetStream actions (retry later with NakWithDelay, fall back to the next channel, or stop the
// job and dead-letter it).
package provider

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies a failed send.
type Kind int

// Failure kinds, from the most to the least hopeful.
const (
	// Retry: a passing failure (rate limit, 5xx, timeout); try the same channel after a delay.
	Retry Kind = iota + 1
	// Channel: this channel can never deliver this job (not on WhatsApp, outside the window,
	// undeliverable); fall back to the next channel now.
	Channel
	// Sender: the sender itself is broken (token expired, account restricted, number banned);
	// stop using this channel for every job, alert, and fall back.
	Sender
	// Job: the job can never be delivered anywhere (invalid parameter, recipient stopped
	// marketing); dead-letter it without trying other channels.
	Job
)

func (k Kind) String() string {
	switch k {
	case Retry:
		return "retry"
	case Channel:
		return "channel"
	case Sender:
		return "sender"
	case Job:
		return "job"
	}
	return "unknown"
}

// Error is a classified send failure. Adapters return it (possibly wrapped); the worker reads
// it with errors.As.
type Error struct {
	Kind Kind
	// Code is the provider's own error code as text ("131026", "http_503", "timeout").
	Code string
	// Reason is a one-line human explanation, safe for logs and status records (no tokens,
	// no full phone numbers).
	Reason string
	// After is the delay the provider asked for (Retry-After) or zero to let the worker's
	// backoff decide.
	After time.Duration
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s failure", e.Kind)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Classify returns the outcome of err: its *Error when it has one, else a Retry (an error an
// adapter did not classify is treated as passing, the safe default for a notification).
func Classify(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Kind: Retry, Code: "unclassified", Reason: err.Error(), Err: err}
}

// Result is what a successful send returns.
type Result struct {
	// MessageID is the provider's message id (a Cloud API wamid, a GREEN-API idMessage,
	// a Kannel or SMPP message id); status webhooks refer to it.
	MessageID string
	// Segments is the SMS part count, zero for other channels.
	Segments int
}
