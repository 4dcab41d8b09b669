package templates

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
)

// Backoff between attempts to watch the bucket again after a watch ended.
const (
	rewatchMin = 250 * time.Millisecond
	rewatchMax = 30 * time.Second
)

// Catalogue is a worker's in-memory copy of the herald-templates bucket, kept current by a
// KV watch so that an added, changed, paused or deleted template reaches every worker
// without a restart. Each tenant has its own templates: a lookup names the tenant, and
// finds nothing of another tenant's. Lookups read an immutable snapshot through an atomic
// pointer, so the hot path takes no lock; each change publishes a new snapshot.
type Catalogue struct {
	kv     jetstream.KeyValue
	logger *slog.Logger
	state  atomic.Pointer[snapshot]
}

// legacyTenant holds, in a snapshot, the entries stored before tenancy (key
// "<name>.<language>"): the default tenant's, behind its own keys. It is no valid tenant
// name, so no tenant's entries can be mistaken for them.
const legacyTenant = ""

// tenantMap is one immutable state of the catalogue: tenant -> name -> language ->
// definition.
type tenantMap = map[string]map[string]map[string]*Definition

// snapshot is one immutable state of the catalogue.
type snapshot struct {
	byTenant tenantMap
}

// NewCatalogue returns a catalogue of the bucket kv; call Start to load and watch it. A nil
// logger discards logs.
func NewCatalogue(kv jetstream.KeyValue, logger *slog.Logger) *Catalogue {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Catalogue{kv: kv, logger: logger}
	c.state.Store(&snapshot{byTenant: tenantMap{}})
	return c
}

// Start loads every definition in the bucket and returns once they are all in, then keeps
// watching the bucket in a goroutine until ctx is done. If the watch ends (its consumer
// could not be recreated), the goroutine watches again with a backoff and reloads the whole
// bucket, keeping the last state meanwhile. Call Start once.
func (c *Catalogue) Start(ctx context.Context) error {
	w, err := c.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("templates: watch %s: %w", c.kv.Bucket(), err)
	}
	if err := c.load(ctx, w); err != nil {
		_ = w.Stop()
		return err
	}
	go c.follow(ctx, w)
	return nil
}

// Lookup returns tenant's APPROVED definition of name in language ("" is the default
// tenant), approved in at least one WABA: LookupIn with waba "". Errors: ErrUnknownTemplate,
// ErrUnknownLanguage (listing the languages the tenant has it in), ErrNotApproved (naming
// the status). The definition is shared: read it, never change it.
func (c *Catalogue) Lookup(tenant, name, language string) (*Definition, error) {
	return c.LookupIn(tenant, name, language, "")
}

// LookupIn is Lookup for a job sent through a sender of the WhatsApp Business Account waba:
// the definition must be approved in that WABA (Definition.ApprovedIn; "" is any WABA). A
// version that waits for review there leaves the last version approved there in use. The
// errors are Lookup's; ErrNotApproved names the status in that WABA, or that the WABA has
// no review of the template.
func (c *Catalogue) LookupIn(tenant, name, language, waba string) (*Definition, error) {
	d, err := c.Definition(tenant, name, language)
	if err != nil {
		return nil, err
	}
	return d.sendable(waba)
}

// ApprovedWABAs returns, sorted, the WABAs in which tenant's name in language (or the
// approved version it carries along) is approved: the WABAs whose senders may send it, for
// a caller that picks a sender among a pool. Nil when the template is unknown, approved
// nowhere, or has no review per WABA recorded; in that last case its Status decides for
// every WABA, so ask LookupIn (with the sender's WABA) rather than read nil as "nowhere".
func (c *Catalogue) ApprovedWABAs(tenant, name, language string) []string {
	d, err := c.Definition(tenant, name, language)
	if err != nil {
		return nil
	}
	out := d.approvedWABAs()
	if d.Approved != nil {
		out = append(out, d.Approved.approvedWABAs()...)
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}

// Definition returns tenant's definition of name in language whatever its status ("" is
// the default tenant): channels that need no approval (grey, SMS) still render the text of
// a paused template.
func (c *Catalogue) Definition(tenant, name, language string) (*Definition, error) {
	tenant = job.TenantOr(tenant)
	m := c.state.Load().byTenant
	if d := m[tenant][name][language]; d != nil {
		return d, nil
	}
	if tenant == job.DefaultTenant {
		if d := m[legacyTenant][name][language]; d != nil {
			return d, nil
		}
	}
	langs := slices.Collect(maps.Keys(m[tenant][name]))
	if tenant == job.DefaultTenant {
		langs = append(langs, slices.Collect(maps.Keys(m[legacyTenant][name]))...)
	}
	if len(langs) == 0 {
		return nil, unknownTemplate(tenant, name)
	}
	slices.Sort(langs)
	return nil, fmt.Errorf("%w: %s has no %q version; it exists in %s", ErrUnknownLanguage, name, language,
		strings.Join(slices.Compact(langs), ", "))
}

// List returns every definition tenant has ("" is the default tenant), whatever its
// status, sorted by name then language.
func (c *Catalogue) List(tenant string) []*Definition {
	tenant = job.TenantOr(tenant)
	m := c.state.Load().byTenant
	var defs []*Definition
	for _, langs := range m[tenant] {
		for _, d := range langs {
			defs = append(defs, d)
		}
	}
	if tenant == job.DefaultTenant {
		for name, langs := range m[legacyTenant] {
			for lang, d := range langs {
				if m[tenant][name][lang] == nil {
					defs = append(defs, d)
				}
			}
		}
	}
	sortDefs(defs)
	return defs
}

// load reads the watcher's initial values, up to the nil entry that ends them, into a fresh
// state and publishes it whole: deletions missed while not watching are dropped too.
func (c *Catalogue) load(ctx context.Context, w jetstream.KeyWatcher) error {
	m := tenantMap{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("templates: watch %s: closed before the initial values", c.kv.Bucket())
			}
			if e == nil {
				c.state.Store(&snapshot{byTenant: m})
				c.logger.Info("template catalogue loaded", "bucket", c.kv.Bucket(), "templates", count(m), "tenants", len(m))
				return nil
			}
			c.apply(m, e, true)
		}
	}
}

// follow applies changes as they come, and watches again when the watch ends, until ctx is
// done.
func (c *Catalogue) follow(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		c.updates(ctx, w)
		_ = w.Stop()
		if ctx.Err() != nil {
			return
		}
		c.logger.Warn("template catalogue watch ended; watching again", "bucket", c.kv.Bucket())
		delay := rewatchMin
		for {
			nw, err := c.kv.WatchAll(ctx)
			if err == nil {
				if err = c.load(ctx, nw); err == nil {
					w = nw
					break
				}
				_ = nw.Stop()
			}
			if ctx.Err() != nil {
				return
			}
			c.logger.Error("template catalogue watch failed; templates may be stale", "bucket", c.kv.Bucket(), "error", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(delay*2, rewatchMax)
		}
	}
}

// updates applies the watcher's changes until it is closed or ctx is done.
func (c *Catalogue) updates(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			// Copy on write, along the entry's path only: readers keep the old snapshot until
			// the new one is stored. Only this goroutine writes, so load-modify-store needs
			// no lock.
			old := c.state.Load().byTenant
			m := maps.Clone(old)
			if tenant, name, ok := c.path(e.Key()); ok {
				m[tenant] = maps.Clone(old[tenant])
				if m[tenant] != nil {
					m[tenant][name] = maps.Clone(old[tenant][name])
				}
			}
			c.apply(m, e, false)
			c.state.Store(&snapshot{byTenant: m})
		}
	}
}

// path is where a key's definition lives in a snapshot: its tenant (legacyTenant for a
// key from before tenancy) and name.
func (c *Catalogue) path(key string) (tenant, name string, ok bool) {
	tenant, name, _, legacy, ok := splitKey(key)
	if legacy {
		tenant = legacyTenant
	}
	return tenant, name, ok
}

// apply records one watch entry in m (whose inner maps along the entry's path, if any, are
// writable). A stored value that is not a valid definition, or not the one its key names
// (another template, another tenant's), is logged and ignored: the last good definition
// stays in service rather than a bad write taking a template away from the whole fleet.
func (c *Catalogue) apply(m tenantMap, e jetstream.KeyValueEntry, initial bool) {
	tenant, name, lang, legacy, ok := splitKey(e.Key())
	if !ok {
		c.logger.Error("template catalogue: key is not <tenant>.<name>.<language>; ignored", "key", e.Key())
		return
	}
	at := tenant
	if legacy {
		at = legacyTenant
	}
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		if langs := m[at][name]; langs != nil {
			delete(langs, lang)
			if len(langs) == 0 {
				delete(m[at], name)
			}
			if len(m[at]) == 0 {
				delete(m, at)
			}
		}
		if !initial {
			c.logger.Info("template removed", "key", e.Key())
		}
		return
	}
	d, err := ParseDefinition(e.Value())
	switch {
	case err != nil:
	case d.Name != name || d.Language != lang:
		err = fmt.Errorf("definition is %s", d.label())
	case !legacy && d.Tenant != "" && d.Tenant != tenant:
		err = fmt.Errorf("definition is tenant %s's", d.Tenant)
	}
	if err != nil {
		c.logger.Error("template catalogue: invalid definition ignored", "key", e.Key(), "revision", e.Revision(), "error", err)
		return
	}
	d.setTenant(tenant)
	if m[at] == nil {
		m[at] = map[string]map[string]*Definition{}
	}
	if m[at][name] == nil {
		m[at][name] = map[string]*Definition{}
	}
	m[at][name][lang] = d
	if !initial {
		c.logger.Info("template updated", "key", e.Key(), "version", d.Version, "status", d.Status)
	}
}

func count(m tenantMap) int {
	n := 0
	for _, names := range m {
		for _, langs := range names {
			n += len(langs)
		}
	}
	return n
}
