// Package campaign keeps what Herald knows about a campaign beyond its jobs: its metadata in
// the herald-campaigns bucket (template, how many jobs imports queued, whether an operator
// canceled it), a watcher that lets workers drop the unsent jobs of a canceled campaign
// without a lookup per job, and the operator's view (counts by state and channel, rate,
// estimated cost).
//
// Campaigns belong to a tenant: two tenants may use one name, and neither reads, cancels or
// pre-cancels the other's. A tenant has at most a bounded number of entries
// (HERALD_CAMPAIGNS_MAX_PER_TENANT), and an entry lives HERALD_STATUS_TTL after its last
// change (the bucket's MaxAge), as the records of its jobs do.
package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
)

// ErrNotFound is returned for a campaign Herald has no metadata and no jobs for.
var ErrNotFound = errors.New("campaign not found")

// ErrInvalidName is returned for a name that cannot be a campaign (job.campaign rules).
var ErrInvalidName = errors.New("campaign name must be 1-128 characters of A-Z a-z 0-9 . _ : -")

// ErrInvalidTenant is returned for a tenant that cannot be one (job.tenant rules).
var ErrInvalidTenant = errors.New("tenant must be 1-63 characters of a-z 0-9 -")

// ErrTooMany is returned (wrapped in a *LimitError) when a new campaign would take a tenant
// past its cap.
var ErrTooMany = errors.New("too many campaigns")

// DefaultMaxPerTenant is the cap on a tenant's entries when none is configured
// (HERALD_CAMPAIGNS_MAX_PER_TENANT's default).
const DefaultMaxPerTenant = 1000

// LimitError says that tenant already has Max campaigns, so a new one is refused. Existing
// campaigns can still be updated and canceled.
type LimitError struct {
	Tenant string
	Max    int
}

// Error names the tenant, the limit and its variable, and how entries go away.
func (e *LimitError) Error() string {
	return fmt.Sprintf("tenant %s already has %d campaigns, the most HERALD_CAMPAIGNS_MAX_PER_TENANT allows: "+
		"a campaign is forgotten HERALD_STATUS_TTL after its last change", e.Tenant, e.Max)
}

// Unwrap makes errors.Is(err, ErrTooMany) hold.
func (e *LimitError) Unwrap() error { return ErrTooMany }

var validName = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Bucket keys. A campaign's key is "t=<tenant>.<name>", the name with '.' written "=2E" and
// ':' "=3A" (a KV key allows neither ':' nor empty tokens, and one token after the tenant
// lets "t=<tenant>.*" list exactly one tenant's campaigns). Names never contain '=', so the
// escapes decode unambiguously, and keys written before tenancy (the bare name, always
// without '=') can never be mistaken for a tenant's: they are read as the default tenant's.
const (
	keyPrefix = "t="
	escDot    = "=2E"
	escColon  = "=3A"
)

var (
	encoder = strings.NewReplacer(".", escDot, ":", escColon)
	decoder = strings.NewReplacer(escDot, ".", escColon, ":")
)

// Key is the bucket key of tenant's campaign name ("" is the default tenant).
func Key(tenant, name string) string {
	return keyPrefix + job.TenantOr(tenant) + "." + encoder.Replace(name)
}

// TenantFilter is the key filter matching every campaign of tenant.
func TenantFilter(tenant string) string { return keyPrefix + job.TenantOr(tenant) + ".*" }

// ParseKey is the inverse of Key. A legacy key (a bare name, from before campaigns were per
// tenant) is the default tenant's campaign of that name. ok is false for a key that is
// neither.
func ParseKey(key string) (tenant, name string, legacy, ok bool) {
	rest, tenanted := strings.CutPrefix(key, keyPrefix)
	if !tenanted {
		return job.DefaultTenant, key, true, validName.MatchString(key)
	}
	tenant, enc, found := strings.Cut(rest, ".")
	if !found || !job.ValidTenant(tenant) || strings.Contains(enc, ".") {
		return "", "", false, false
	}
	name = decoder.Replace(enc)
	return tenant, name, false, validName.MatchString(name) && encoder.Replace(name) == enc
}

// legacyKey is the pre-tenancy key of a default-tenant campaign, if the name can be one (a
// name with ':' or an empty dot-token never could be stored).
func legacyKey(tenant, name string) (string, bool) {
	if job.TenantOr(tenant) != job.DefaultTenant || strings.Contains(name, ":") || name[0] == '.' ||
		name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return "", false
	}
	return name, true
}

// Meta is a campaign's record in the bucket.
type Meta struct {
	Name string `json:"name"`
	// Tenant owns the campaign ("" in entries written before campaigns were per tenant: the
	// default tenant's).
	Tenant   string `json:"tenant,omitempty"`
	Template string `json:"template,omitempty"`
	Language string `json:"language,omitempty"`
	// Queued counts jobs imports published for the campaign (re-runs add only new rows).
	Queued    int64      `json:"queued"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	Canceled  *time.Time `json:"canceled_at,omitempty"`
	// CanceledBy names who canceled it: "tenant:<name>" or "operator:<name>" through the
	// API, "cli" otherwise.
	CanceledBy string `json:"canceled_by,omitempty"`
}

// KV is the part of jetstream.KeyValue the package uses.
type KV interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	ListKeysFiltered(ctx context.Context, filters ...string) (jetstream.KeyLister, error)
}

// Limited is the bucket with its cap on each tenant's campaigns: Update and Cancel refuse a
// new campaign past it. Any other KV has DefaultMaxPerTenant.
type Limited struct {
	jetstream.KeyValue
	// Max is HERALD_CAMPAIGNS_MAX_PER_TENANT; 0 or less is DefaultMaxPerTenant.
	Max int
}

// MaxPerTenant is the cap.
func (l Limited) MaxPerTenant() int {
	if l.Max <= 0 {
		return DefaultMaxPerTenant
	}
	return l.Max
}

// MaxPerTenant is kv's cap on each tenant's campaigns.
func MaxPerTenant(kv KV) int {
	if l, ok := kv.(interface{ MaxPerTenant() int }); ok {
		return l.MaxPerTenant()
	}
	return DefaultMaxPerTenant
}

func check(tenant, name string) error {
	if !validName.MatchString(name) {
		return ErrInvalidName
	}
	if tenant != "" && !job.ValidTenant(tenant) {
		return ErrInvalidTenant
	}
	return nil
}

// Get returns tenant's campaign's metadata, or ErrNotFound; another tenant's campaign of the
// same name is not found.
func Get(ctx context.Context, kv KV, tenant, name string) (*Meta, error) {
	if err := check(tenant, name); err != nil {
		return nil, err
	}
	_, m, _, err := load(ctx, kv, tenant, name)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, ErrNotFound
	}
	return m, nil
}

// load reads tenant's campaign: the key it is (or will be) stored under, its metadata (nil
// when there is none) and its revision. A default-tenant campaign stored before tenancy
// stays under its legacy key.
func load(ctx context.Context, kv KV, tenant, name string) (string, *Meta, uint64, error) {
	key := Key(tenant, name)
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		if lk, ok := legacyKey(tenant, name); ok {
			if le, lerr := kv.Get(ctx, lk); lerr == nil {
				key, e, err = lk, le, nil
			} else if !errors.Is(lerr, jetstream.ErrKeyNotFound) {
				err = lerr
			}
		}
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return key, nil, 0, nil
	}
	if err != nil {
		return "", nil, 0, fmt.Errorf("campaign %s: %w", name, err)
	}
	m := &Meta{Name: name}
	if err := json.Unmarshal(e.Value(), m); err != nil {
		// A damaged entry is rewritten, not fatal: keep its revision.
		m = &Meta{Name: name, CreatedAt: time.Now().UTC()}
	}
	return key, m, e.Revision(), nil
}

// Update changes tenant's campaign's metadata with fn under optimistic concurrency (several
// importers or operators at once lose nothing), creating it when missing. A new campaign
// past the tenant's cap (MaxPerTenant(kv)) is refused with a *LimitError. The cap is checked
// before the create, so creates racing each other may pass it by a few.
func Update(ctx context.Context, kv KV, tenant, name string, fn func(*Meta)) (*Meta, error) {
	if err := check(tenant, name); err != nil {
		return nil, err
	}
	tenant = job.TenantOr(tenant)
	counted := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		key, m, rev, err := load(ctx, kv, tenant, name)
		if err != nil {
			return nil, err
		}
		if m == nil {
			if !counted {
				if err := underCap(ctx, kv, tenant); err != nil {
					return nil, err
				}
				counted = true
			}
			m = &Meta{Name: name, CreatedAt: time.Now().UTC()}
		}
		m.Name = name
		if !strings.HasPrefix(key, keyPrefix) {
			m.Tenant = "" // a legacy entry stays legacy: its key says it is the default tenant's
		} else {
			m.Tenant = tenant
		}
		fn(m)
		m.UpdatedAt = time.Now().UTC()
		data, _ := json.Marshal(m)
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return m, nil
		}
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
			(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			continue
		}
		return nil, fmt.Errorf("campaign %s: %w", name, err)
	}
}

// underCap counts tenant's live campaigns, stopping at the cap. Entries written before
// tenancy are not counted: they expire with the bucket's MaxAge.
func underCap(ctx context.Context, kv KV, tenant string) error {
	limit := MaxPerTenant(kv)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kl, err := kv.ListKeysFiltered(ctx, TenantFilter(tenant))
	if err != nil {
		return fmt.Errorf("campaigns of tenant %s: %w", tenant, err)
	}
	defer func() { _ = kl.Stop() }()
	// A listing may name a key twice while it is written to.
	seen := make(map[string]struct{}, min(limit, 64))
	for k := range kl.Keys() {
		seen[k] = struct{}{}
		if len(seen) >= limit {
			return &LimitError{Tenant: tenant, Max: limit}
		}
	}
	return ctx.Err()
}

// Cancel marks tenant's campaign canceled: workers settle its unsent jobs as canceled.
// Canceling twice keeps the first time. A campaign not seen yet is canceled ahead (its jobs
// will not go out), and counts against the tenant's cap.
func Cancel(ctx context.Context, kv KV, tenant, name, by string) (*Meta, error) {
	return Update(ctx, kv, tenant, name, func(m *Meta) {
		if m.Canceled == nil {
			now := time.Now().UTC()
			m.Canceled, m.CanceledBy = &now, by
		}
	})
}

// Watcher follows the bucket and answers "is this tenant's campaign canceled?" without I/O
// or locks: Canceled runs for every job.
type Watcher struct {
	// canceled maps tenant → canceled name → the keys saying so (a default-tenant campaign
	// may have a legacy key and a tenant key). It holds canceled campaigns only, and is
	// replaced on a change, copying the top level (one pointer per tenant) and that one
	// tenant's names: a change costs what one tenant has, never the whole bucket.
	canceled atomic.Pointer[map[string]map[string]uint8]
	log      *slog.Logger
}

// Which keys say a campaign is canceled.
const (
	byKey    uint8 = 1 << iota // t=<tenant>.<name>
	byLegacy                   // the bare name, from before tenancy
)

// Watch starts following the bucket until ctx ends; it returns once the current contents
// are loaded, having logged one summary line for them.
func Watch(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) (*Watcher, error) {
	w := &Watcher{log: log}
	start := time.Now()
	kw, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch campaigns: %w", err)
	}
	// The initial values go into a map of our own, published once: no copy per entry.
	initial := map[string]map[string]uint8{}
	var entries, skipped int
	ready := make(chan struct{})
	go func() {
		defer func() { _ = kw.Stop() }()
		loaded := false
		defer func() {
			if !loaded {
				close(ready)
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-kw.Updates():
				if !ok {
					return
				}
				switch {
				case e == nil: // initial values done
					if !loaded {
						loaded = true
						w.canceled.Store(&initial)
						close(ready)
					}
				case !loaded:
					tenant, name, bit, canceled, ok := decode(e)
					if !ok {
						skipped++
						continue
					}
					entries++
					if canceled {
						if initial[tenant] == nil {
							initial[tenant] = map[string]uint8{}
						}
						initial[tenant][name] |= bit
					}
				default:
					w.apply(e)
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if w.canceled.Load() == nil { // the watch ended before its initial values
		return nil, fmt.Errorf("watch campaigns: ended before the bucket was read")
	}
	cur := *w.canceled.Load()
	canceled := 0
	for _, names := range cur {
		canceled += len(names)
	}
	log.Info("campaigns loaded", "entries", entries, "canceled", canceled, "tenants_with_canceled", len(cur),
		"skipped_keys", skipped, "took", time.Since(start).Round(time.Millisecond))
	return w, nil
}

// decode reads an entry: whose campaign, which key kind, and whether it says canceled (a
// delete, a purge or an expiry says not).
func decode(e jetstream.KeyValueEntry) (tenant, name string, bit uint8, canceled, ok bool) {
	tenant, name, legacy, ok := ParseKey(e.Key())
	if !ok {
		return "", "", 0, false, false
	}
	bit = byKey
	if legacy {
		bit = byLegacy
	}
	var m Meta
	if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &m) == nil {
		canceled = m.Canceled != nil
	}
	return tenant, name, bit, canceled, true
}

// apply records one change after the initial load (only the watch goroutine writes).
func (w *Watcher) apply(e jetstream.KeyValueEntry) {
	tenant, name, bit, canceled, ok := decode(e)
	if !ok {
		return
	}
	cur := *w.canceled.Load()
	was := cur[tenant][name]
	now := was &^ bit
	if canceled {
		now |= bit
	}
	if now == was {
		return
	}
	names := maps.Clone(cur[tenant])
	if names == nil {
		names = map[string]uint8{}
	}
	next := maps.Clone(cur)
	if now == 0 {
		delete(names, name)
	} else {
		names[name] = now
	}
	if len(names) == 0 {
		delete(next, tenant)
	} else {
		next[tenant] = names
	}
	w.canceled.Store(&next)
	if was == 0 {
		w.log.Info("campaign canceled: its unsent jobs will not be sent", "tenant", tenant, "campaign", name)
	}
}

// Canceled tells whether tenant's campaign name is canceled ("" is the default tenant); the
// campaign "" never is.
func (w *Watcher) Canceled(tenant, name string) bool {
	if w == nil || name == "" {
		return false
	}
	cur := w.canceled.Load()
	if cur == nil {
		return false
	}
	return (*cur)[job.TenantOr(tenant)][name] != 0
}

// Prices estimate a campaign's cost (HERALD_PRICE_*).
type Prices struct {
	Currency                                      string
	Marketing, Utility, Authentication, SMS, Grey float64
}

// View is what `herald campaign show` and GET /v1/campaigns/{name} report.
type View struct {
	Name string `json:"name"`
	// Tenant owns the campaign (the caller's).
	Tenant   string `json:"tenant,omitempty"`
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
