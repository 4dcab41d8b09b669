package worker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/streams"
)

// StreamOptions size the JetStream resources EnsureStreams creates (replicas, duplicate
// window, retention, the consumers' ack wait and pending limit); zero values take the
// defaults `herald worker` uses. AckWait must equal Config.AckWait.
type StreamOptions = streams.Options

// JobsStream is the work-queue stream the producer publishes jobs to: a message is deleted
// once a worker acknowledges it, so its message count is the backlog.
const JobsStream = streams.JobsStream

// StatusSubjectPrefix starts the subject of every status event: an Event is published on
// StatusSubjectPrefix + its state (herald.events.status.sent, ...).
const StatusSubjectPrefix = streams.SubjectStatusPrefix

// EnsureStreams creates, or updates to opts, everything the producer and the workers need on
// js: the job, event, opt-out and dead-letter streams, the two worker consumers and the
// template and campaign buckets. `herald api`, `herald worker` and `herald dev` call it at
// start; a service that runs a Worker or publishes with producer without them calls it
// itself. It is safe to run from any number of processes at once.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	if err := streams.Ensure(ctx, js, opts); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}
