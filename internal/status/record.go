package status

import (
	"time"

	"github.com/herald-notify/herald/internal/job"
)

// Notification states (docs/contracts.md).
const (
	Queued     = "queued"
	Scheduled  = "scheduled"
	Sent       = "sent"
	Delivered  = "delivered"
	Read       = "read"
	Failed     = "failed"
	Expired    = "expired"
	Suppressed = "suppressed"
	Rejected   = "rejected"
	Canceled   = "canceled"
)

// Terminal tells whether a state is final.
func Terminal(state string) bool {
	switch state {
	case Failed, Expired, Suppressed, Rejected, Canceled:
		return true
	}
	return false
}

// Attempt is one channel attempt (or one retry of it) in a record's history.
type Attempt struct {
	Channel           string `json:"channel"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	// State: sent, delivered, read, failed, retry (a passing failure, retried later) or
	// unknown (the worker died during the provider call).
	State    string `json:"state"`
	Code     string `json:"code,omitempty"`
	Reason   string `json:"reason,omitempty"`
	At       string `json:"at"`
	StatusAt string `json:"status_at,omitempty"`
	// Statuses are the provider's reports that changed the attempt's state, in the order
	// they were applied, each with its time: a message sent, then delivered, then read is
	// the attempt and two statuses.
	Statuses []StatusChange `json:"statuses,omitempty"`
}

// StatusChange is one state change of an attempt reported by the provider.
type StatusChange struct {
	State  string `json:"state"`
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// At is when Herald applied the report (a report that came before the send was
	// recorded: when the send was).
	At string `json:"at"`
}

// Claim is a worker's lease on a job while it sends.
type Claim struct {
	Owner   string `json:"owner"`
	Until   int64  `json:"until"`
	Channel string `json:"channel,omitempty"`
}

// Record is the status of one notification.
type Record struct {
	ID                string            `json:"id"`
	State             string            `json:"state"`
	Reason            string            `json:"reason,omitempty"`
	To                string            `json:"to,omitempty"`
	Template          string            `json:"template,omitempty"`
	Priority          string            `json:"priority,omitempty"`
	Campaign          string            `json:"campaign,omitempty"`
	Tenant            string            `json:"tenant,omitempty"`
	Channels          []string          `json:"channels,omitempty"`
	Channel           string            `json:"channel,omitempty"`
	ChannelIdx        int               `json:"channel_idx"`
	Attempts          int               `json:"attempts"`
	ProviderMessageID string            `json:"provider_message_id,omitempty"`
	SendAt            string            `json:"send_at,omitempty"`
	CreatedAt         string            `json:"created_at,omitempty"`
	UpdatedAt         string            `json:"updated_at,omitempty"`
	History           []Attempt         `json:"history,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	Claim             *Claim            `json:"claim,omitempty"`
	Resume            bool              `json:"resume,omitempty"`
	Early             map[string]string `json:"early,omitempty"`
	// EarlyChannels names the channel of each parked report in Early (by message id).
	EarlyChannels map[string]string `json:"early_ch,omitempty"`
	// Op names the last outcome recorded (delivery, mode, channel index, attempts) and OpOld
	// the state before it, so that recording it again answers as the first time.
	Op    string `json:"op,omitempty"`
	OpOld string `json:"op_old,omitempty"`
	// DeadLetter is the DLQ reason of a failed job whose worker dead-letters it (empty for a
	// job failed by a provider report, which has no letter): a redelivery writes the letter
	// again if the first publish was lost.
	DeadLetter string `json:"dlq,omitempty"`
}

// Ref is the record's tenant-qualified id (job.Ref), which keys it in Redis.
func (r *Record) Ref() string { return job.Ref(r.Tenant, r.ID) }

// NewRecord is the first record of a job; a job without a tenant belongs to the default one.
func NewRecord(j *job.Job, state string, channels []string, now time.Time) *Record {
	r := &Record{
		ID: j.ID, State: state, To: j.To, Template: j.Template, Priority: j.Priority,
		Campaign: j.Campaign, Tenant: job.TenantOr(j.Tenant), Channels: channels, Metadata: j.Metadata,
		CreatedAt: now.UTC().Format(time.RFC3339Nano),
	}
	if len(channels) > 0 {
		r.Channel = channels[0]
	}
	if j.SendAt != nil {
		r.SendAt = j.SendAt.UTC().Format(time.RFC3339)
	}
	r.UpdatedAt = r.CreatedAt
	return r
}
