// Package campaign keeps what Herald knows about a campaign beyond its jobs: its metadata in
// the herald-campaigns bucket (template, how many jobs imports queued, whether an operator
// canceled it), a watcher that lets workers drop the unsent jobs of a canceled campaign
// without a lookup per job, and the operator's view (counts by state and channel, rate,
// estimated cost).
package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/status"
)

// ErrNotFound is returned for a campaign Herald has no metadata and no jobs for.
var ErrNotFound = errors.New("campaign not found")

// ErrInvalidName is returned for a name that cannot be a campaign (job.campaign rules).
var ErrInvalidName = errors.New("campaign name must be 1-128 characters of A-Z a-z 0-9 . _ : -")

var validName = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Meta is a campaign's record in the bucket.
type Meta struct {
	Name     string `json:"name"`
	Template string `json:"template,omitempty"`
	Language string `json:"language,omitempty"`
	// Queued counts jobs imports published for the campaign (re-runs add only new rows).
	Queued    int64      `json:"queued"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	Canceled  *time.Time `json:"canceled_at,omitempty"`
	// CanceledBy names who canceled it (the tenant or "cli").
	CanceledBy string `json:"canceled_by,omitempty"`
}

// KV is the part of jetstream.KeyValue the package uses.
type KV interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
}

// Get returns a campaign's metadata, or ErrNotFound.
func Get(ctx context.Context, kv KV, name string) (*Meta, error) {
	if !validName.MatchString(name) {
		return nil, ErrInvalidName
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("campaign %s: %w", name, err)
	}
	var m Meta
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, fmt.Errorf("campaign %s: stored value: %w", name, err)
	}
	return &m, nil
}

// Update changes a campaign's metadata with fn under optimistic concurrency (several
// importers or operators at once lose nothing), creating it when missing.
func Update(ctx context.Context, kv KV, name string, fn func(*Meta)) (*Meta, error) {
	if !validName.MatchString(name) {
		return nil, ErrInvalidName
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var m Meta
		var rev uint64
		e, err := kv.Get(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			m = Meta{Name: name, CreatedAt: time.Now().UTC()}
		case err != nil:
			return nil, fmt.Errorf("campaign %s: %w", name, err)
		default:
			if err := json.Unmarshal(e.Value(), &m); err != nil {
				m = Meta{Name: name, CreatedAt: time.Now().UTC()}
			}
			rev = e.Revision()
		}
		fn(&m)
		m.UpdatedAt = time.Now().UTC()
		data, _ := json.Marshal(m)
		if rev == 0 {
			_, err = kv.Create(ctx, name, data)
		} else {
			_, err = kv.Update(ctx, name, data, rev)
		}
		if err == nil {
			return &m, nil
		}
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
			(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			continue
		}
		return nil, fmt.Errorf("campaign %s: %w", name, err)
	}
}

// Cancel marks a campaign canceled: workers settle its unsent jobs as canceled. Canceling
// twice keeps the first time.
func Cancel(ctx context.Context, kv KV, name, by string) (*Meta, error) {
	return Update(ctx, kv, name, func(m *Meta) {
		if m.Canceled == nil {
			now := time.Now().UTC()
			m.Canceled, m.CanceledBy = &now, by
		}
	})
}

// Watcher follows the bucket and answers "is this campaign canceled?" without I/O.
type Watcher struct {
	canceled atomic.Pointer[map[string]bool]
	log      *slog.Logger
}

// Watch starts following the bucket until ctx ends; it returns once the current contents
// are loaded.
func Watch(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) (*Watcher, error) {
	w := &Watcher{log: log}
	empty := map[string]bool{}
	w.canceled.Store(&empty)
	kw, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch campaigns: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		defer func() { _ = kw.Stop() }()
		loaded := false
		for {
			select {
			case <-ctx.Done():
				if !loaded {
					close(ready)
				}
				return
			case e, ok := <-kw.Updates():
				if !ok {
					if !loaded {
						close(ready)
					}
					return
				}
				if e == nil { // initial values done
					if !loaded {
						loaded = true
						close(ready)
					}
					continue
				}
				w.apply(e)
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return w, nil
}

func (w *Watcher) apply(e jetstream.KeyValueEntry) {
	cur := *w.canceled.Load()
	var m Meta
	canceled := false
	if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &m) == nil {
		canceled = m.Canceled != nil
	}
	if cur[e.Key()] == canceled {
		return
	}
	next := make(map[string]bool, len(cur)+1)
	for k, v := range cur {
		if v {
			next[k] = v
		}
	}
	if canceled {
		next[e.Key()] = true
		w.log.Info("campaign canceled: its unsent jobs will not be sent", "campaign", e.Key())
	} else {
		delete(next, e.Key())
	}
	w.canceled.Store(&next)
}

// Canceled tells whether a campaign is canceled; "" never is.
func (w *Watcher) Canceled(name string) bool {
	if w == nil || name == "" {
		return false
	}
	return (*w.canceled.Load())[name]
}

// Prices estimate a campaign's cost (HERALD_PRICE_*).
type Prices struct {
	Currency                                      string
	Marketing, Utility, Authentication, SMS, Grey float64
}

// View is what `herald campaign show` and GET /v1/campaigns/{name} report.
type View struct {
	Name     string `json:"name"`
	Template string `json:"template,omitempty"`
	Category string `json:"category,omitempty"`
	// Queued is what imports published; Seen how many jobs Herald has a record of; Pending
	// the published jobs no worker has picked up yet.
	Queued  int64            `json:"queued"`
	Seen    int64            `json:"seen"`
	Pending int64            `json:"pending"`
	States  map[string]int64 `json:"states"`
	// Channels counts messages sent per channel.
	Channels map[string]int64 `json:"channels"`
	// Rate is messages sent per second between the first and the last send.
	Rate      float64    `json:"rate"`
	FirstSent *time.Time `json:"first_sent,omitempty"`
	LastSent  *time.Time `json:"last_sent,omitempty"`
	// SMSSegments is the number of SMS parts sent (a long or Cyrillic text is several).
	SMSSegments int64 `json:"sms_segments,omitempty"`
	// Cost is the estimate by channel and in total, in Currency: a WhatsApp template message
	// at its category's price, an SMS segment at the SMS price, a grey message at the grey
	// price.
	Cost     map[string]float64 `json:"cost"`
	Total    float64            `json:"cost_total"`
	Currency string             `json:"currency"`
	Canceled *time.Time         `json:"canceled_at,omitempty"`
}

// Build assembles a view from the metadata (nil when an API caller sent the jobs without an
// import), the counters and the template's category.
func Build(name string, meta *Meta, c status.CampaignCounters, category string, p Prices) View {
	v := View{Name: name, States: c.States, Channels: c.Channels, Category: category, Currency: p.Currency,
		Cost: map[string]float64{}}
	if meta != nil {
		v.Template, v.Queued, v.Canceled = meta.Template, meta.Queued, meta.Canceled
	}
	for _, n := range c.States {
		v.Seen += n
	}
	v.Pending = max(0, v.Queued-v.Seen)
	if !c.FirstSent.IsZero() {
		f, l := c.FirstSent, c.LastSent
		v.FirstSent, v.LastSent = &f, &l
		var sent int64
		for _, n := range c.Channels {
			sent += n
		}
		if d := l.Sub(f).Seconds(); d > 0 {
			v.Rate = float64(sent) / d
		}
	}
	white := p.Utility
	switch category {
	case "MARKETING":
		white = p.Marketing
	case "AUTHENTICATION":
		white = p.Authentication
	}
	for ch, n := range c.Channels {
		price := 0.0
		switch ch {
		case "white":
			price = white
		case "sms":
			price = p.SMS
		case "grey":
			price = p.Grey
		}
		// Parts are recorded for every SMS sent since Herald counted them; a campaign that
		// began before that has fewer parts than messages, and is billed at least per message.
		billed := max(n, c.Parts[ch])
		if ch == "sms" {
			v.SMSSegments = c.Parts[ch]
		}
		v.Cost[ch] = float64(billed) * price
		v.Total += v.Cost[ch]
	}
	return v
}
