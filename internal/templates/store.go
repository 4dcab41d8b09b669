package templates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
)

// Bucket is the NATS KV bucket that holds the catalogue (created by provisioning).
const Bucket = "herald-templates"

// Key is the catalogue key of a tenant's template: "<tenant>.<name>.<language>", e.g.
// "shop.order_ready.ru" or "default.hello_world.en_US"; tenant "" is job.DefaultTenant.
// Tenants ([a-z0-9-]), names ([a-z0-9_]) and languages ([A-Za-z_]) hold no dot and only
// characters a NATS key allows, so a key splits back unambiguously, and one tenant's keys
// are the subject filter "<tenant>.*.*".
func Key(tenant, name, language string) string {
	return job.TenantOr(tenant) + "." + name + "." + language
}

// legacyKey is the key of a template stored before tenancy, "<name>.<language>": the
// default tenant's, read as such until a write or Migrate moves it to its tenant's key.
func legacyKey(name, language string) string { return name + "." + language }

// splitKey reads a catalogue key: tenant, name and language, with legacy set for an
// untenanted "<name>.<language>" key (whose tenant is the default one).
func splitKey(key string) (tenant, name, language string, legacy, ok bool) {
	parts := strings.Split(key, ".")
	switch {
	case len(parts) == 3 && job.ValidTenant(parts[0]):
		return parts[0], parts[1], parts[2], false, true
	case len(parts) == 2:
		return job.DefaultTenant, parts[0], parts[1], true, true
	}
	return "", "", "", false, false
}

// checkTenant normalises the tenant a catalogue call is for.
func checkTenant(tenant string) (string, error) {
	tenant = job.TenantOr(tenant)
	if !job.ValidTenant(tenant) {
		return "", fmt.Errorf("%w: tenant %q: must be 1-%d lower-case letters, digits and hyphens", ErrInvalidDefinition, tenant, job.MaxTenantLen)
	}
	return tenant, nil
}

// read returns the stored entry of tenant's name in language. For the default tenant an
// entry stored before tenancy stands in when its own key is missing (legacy is then true).
// Neither: jetstream.ErrKeyNotFound.
func read(ctx context.Context, kv jetstream.KeyValue, tenant, name, language string) (e jetstream.KeyValueEntry, legacy bool, err error) {
	e, err = kv.Get(ctx, Key(tenant, name, language))
	if errors.Is(err, jetstream.ErrKeyNotFound) && tenant == job.DefaultTenant {
		e, err = kv.Get(ctx, legacyKey(name, language))
		legacy = err == nil
	}
	return e, legacy, err
}

// write stores data under key: over prev, the entry read, at its revision, or as a new key
// when there was none or prev is a legacy entry. A legacy entry is then deleted (unless it
// changed since it was read): the new key shadows it anyway, and one copy is less to go
// stale.
func write(ctx context.Context, kv jetstream.KeyValue, key string, data []byte, prev jetstream.KeyValueEntry, legacy bool) error {
	var err error
	if prev == nil || legacy {
		_, err = kv.Create(ctx, key, data)
	} else {
		_, err = kv.Update(ctx, key, data, prev.Revision())
	}
	if err == nil && legacy {
		_ = kv.Delete(ctx, prev.Key(), jetstream.LastRevision(prev.Revision()))
	}
	return err
}

// Put validates d and stores it as tenant's (Key(tenant, d.Name, d.Language); d.Tenant is
// ignored) as the next version: 1 for a new template (or one that was deleted), the stored
// version + 1 otherwise. It uses the key's revision for optimistic concurrency, so two
// concurrent puts of one template get two different versions and neither is lost. d is not
// modified; the stored definition, with its Tenant, Version and UpdatedAt, is returned.
// Validation errors wrap ErrInvalidDefinition.
//
// Put is authoritative about the status: only what comes from Meta (the template listing of
// `herald templates sync`) and Herald's own samples go through it. Use Propose for an
// operator's or a tenant's definition. Either way the last APPROVED version is carried along
// in Approved while the stored one is not approved.
func Put(ctx context.Context, kv jetstream.KeyValue, tenant string, d *Definition) (*Definition, error) {
	return put(ctx, kv, tenant, d, false)
}

// Propose registers a tenant's definition, which Meta has not reviewed: it is stored PENDING
// whatever d.Status says, since only Meta approves a template (its webhook or the listing
// `herald templates sync` reads). An APPROVED version is immutable: a change to the content
// of an approved template is a new pending version, and workers go on sending the approved
// one. Proposing what is stored already changes nothing. A definition without Meta's id
// keeps the stored one's (Meta keeps a template's id across edits).
func Propose(ctx context.Context, kv jetstream.KeyValue, tenant string, d *Definition) (*Definition, error) {
	return put(ctx, kv, tenant, d, true)
}

func put(ctx context.Context, kv jetstream.KeyValue, tenant string, d *Definition, propose bool) (*Definition, error) {
	tenant, err := checkTenant(tenant)
	if err != nil {
		return nil, err
	}
	nd := d.clone()
	nd.Tenant = tenant
	nd.Approved = nil
	if propose {
		// Nor does a proposal carry reviews: those come from Meta, per WABA.
		nd.Status, nd.WABAs = StatusPending, nil
	}
	if err := nd.Validate(); err != nil {
		return nil, err
	}
	key := Key(tenant, nd.Name, nd.Language)
	id := nd.ID
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		nd.ID, nd.Approved = id, nil
		entry, legacy, err := read(ctx, kv, tenant, nd.Name, nd.Language)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			entry, nd.Version = nil, 1
		case err != nil:
			return nil, fmt.Errorf("templates: get %s: %w", key, err)
		default:
			// An unparseable stored value must not block its fix: the version is read on its
			// own, the rest only when it parses.
			var pv struct {
				Version int `json:"version"`
			}
			_ = json.Unmarshal(entry.Value(), &pv)
			nd.Version = pv.Version + 1
			if prev, err := ParseDefinition(entry.Value()); err == nil {
				prev.setTenant(tenant)
				if propose && SameContent(prev, nd) {
					return prev, nil
				}
				if propose && nd.ID == "" {
					nd.ID = prev.ID
				}
				approved := prev.Approved
				if prev.Status == StatusApproved {
					approved = prev.clone()
					approved.Approved = nil
				}
				// Only a version in review keeps the approved one in use: a paused or disabled
				// template is stopped as a whole (per WABA, when reviews are kept per WABA).
				if approved != nil {
					approved.Tenant = tenant
					nd.Approved = approved
					if err := nd.Validate(); err != nil {
						return nil, err
					}
				}
			}
		}
		nd.settle()
		nd.UpdatedAt = time.Now().UTC()
		data, err := json.Marshal(nd)
		if err != nil {
			return nil, fmt.Errorf("templates: encode %s: %w", key, err)
		}
		err = write(ctx, kv, key, data, entry, legacy)
		if conflict(err) {
			continue // written concurrently: read it again and take the next version
		}
		if err != nil {
			return nil, fmt.Errorf("templates: store %s: %w", key, err)
		}
		return nd, nil
	}
}

// conflict reports whether a write lost an optimistic-concurrency race: the key was created
// or changed since it was read. Create on a deleted key and replicated (R3) streams report
// it as a bare wrong-last-sequence API error, hence the codes.
func conflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Get returns tenant's stored definition of name in language, whatever its status. A
// missing key is ErrUnknownLanguage when the tenant has the template in other languages
// (listed in the error), else ErrUnknownTemplate: another tenant's templates do not count.
func Get(ctx context.Context, kv jetstream.KeyValue, tenant, name, language string) (*Definition, error) {
	tenant = job.TenantOr(tenant)
	if !job.ValidTenant(tenant) || !validName(name) {
		return nil, unknownTemplate(tenant, name)
	}
	if !validLanguage(language) {
		return nil, unknownLanguage(ctx, kv, tenant, name, language)
	}
	key := Key(tenant, name, language)
	entry, _, err := read(ctx, kv, tenant, name, language)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, unknownLanguage(ctx, kv, tenant, name, language)
	}
	if err != nil {
		return nil, fmt.Errorf("templates: get %s: %w", key, err)
	}
	d, err := ParseDefinition(entry.Value())
	if err != nil {
		return nil, fmt.Errorf("templates: stored %s: %w", entry.Key(), err)
	}
	d.setTenant(tenant)
	return d, nil
}

// unknownTemplate is the error for a template tenant does not have.
func unknownTemplate(tenant, name string) error {
	return fmt.Errorf("%w: %q (tenant %s)", ErrUnknownTemplate, name, tenant)
}

// unknownLanguage builds the error for a missing key: ErrUnknownLanguage listing the
// languages tenant has name in, or ErrUnknownTemplate.
func unknownLanguage(ctx context.Context, kv jetstream.KeyValue, tenant, name, language string) error {
	filters := []string{Key(tenant, name, "*")}
	if tenant == job.DefaultTenant {
		filters = append(filters, legacyKey(name, "*"))
	}
	kl, err := kv.ListKeysFiltered(ctx, filters...)
	if err != nil {
		return fmt.Errorf("templates: list languages of %s: %w", name, err)
	}
	var langs []string
	for k := range kl.Keys() {
		if _, _, lang, _, ok := splitKey(k); ok {
			langs = append(langs, lang)
		}
	}
	if err := ctx.Err(); err != nil {
		return err // the lister stopped early
	}
	if len(langs) == 0 {
		return unknownTemplate(tenant, name)
	}
	slices.Sort(langs)
	langs = slices.Compact(langs)
	return fmt.Errorf("%w: %s has no %q version; it exists in %s", ErrUnknownLanguage, name, language, strings.Join(langs, ", "))
}

// List returns every definition tenant has, whatever its status, sorted by name then
// language. It reads the tenant's keys with one watcher rather than a get per key.
func List(ctx context.Context, kv jetstream.KeyValue, tenant string) ([]*Definition, error) {
	tenant = job.TenantOr(tenant)
	if !job.ValidTenant(tenant) {
		return nil, nil
	}
	filters := []string{Key(tenant, "*", "*")}
	if tenant == job.DefaultTenant {
		filters = append(filters, legacyKey("*", "*"))
	}
	w, err := kv.WatchFiltered(ctx, filters, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("templates: list %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	// By name.language: a tenant's own key wins over a legacy one, whichever comes first.
	defs := map[string]*Definition{}
	own := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("templates: list %s: watcher closed", kv.Bucket())
			}
			if e == nil { // all current values delivered
				out := slices.Collect(maps.Values(defs))
				sortDefs(out)
				return out, nil
			}
			_, name, lang, legacy, ok := splitKey(e.Key())
			if !ok || legacy && own[legacyKey(name, lang)] {
				continue
			}
			d, err := ParseDefinition(e.Value())
			if err != nil {
				return nil, fmt.Errorf("templates: stored %s: %w", e.Key(), err)
			}
			d.setTenant(tenant)
			defs[legacyKey(name, lang)] = d
			own[legacyKey(name, lang)] = !legacy
		}
	}
}

func sortDefs(defs []*Definition) {
	slices.SortFunc(defs, func(a, b *Definition) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Language, b.Language)
	})
}

// Review is Meta's verdict on a template: a message_template_status_update webhook, or the
// status in its template listing.
type Review struct {
	// TemplateID is Meta's id of the template; "" matches by name and language alone.
	TemplateID string
	// Name and Language name the template; Status is the new one (APPROVED, PAUSED,
	// DISABLED, REJECTED...), in any case.
	Name, Language, Status string
	// WABA is the WhatsApp Business Account that reviewed it (a webhook's entry id): the
	// review is recorded in Definition.WABAs under it. "" sets the definition's Status
	// alone, which decides only while no review per WABA is recorded.
	WABA string
	// Category is the template's category in that WABA, when Meta names it.
	Category string
}

// SetStatus records Meta's review r on tenant's stored definition of r.Name in r.Language,
// keeping its version: the content did not change. Workers watching the bucket see it at
// once. A definition that records another Meta template id than r's is not the one Meta
// means: ErrOtherTemplate, nothing changed. A template the tenant does not have gives
// ErrUnknownTemplate or ErrUnknownLanguage.
func SetStatus(ctx context.Context, kv jetstream.KeyValue, tenant string, r Review) (*Definition, error) {
	tenant, err := checkTenant(tenant)
	if err != nil {
		return nil, err
	}
	if !validName(r.Name) {
		return nil, unknownTemplate(tenant, r.Name)
	}
	if !validLanguage(r.Language) {
		return nil, unknownLanguage(ctx, kv, tenant, r.Name, r.Language)
	}
	key := Key(tenant, r.Name, r.Language)
	status := strings.ToUpper(r.Status)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entry, legacy, err := read(ctx, kv, tenant, r.Name, r.Language)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, unknownLanguage(ctx, kv, tenant, r.Name, r.Language)
		}
		if err != nil {
			return nil, fmt.Errorf("templates: get %s: %w", key, err)
		}
		d, err := ParseDefinition(entry.Value())
		if err != nil {
			return nil, fmt.Errorf("templates: stored %s: %w", entry.Key(), err)
		}
		d.setTenant(tenant)
		if id := d.metaID(r.WABA); r.TemplateID != "" && id != "" && id != r.TemplateID {
			return nil, fmt.Errorf("%w: %s of tenant %s is Meta template %s, the review is of %s", ErrOtherTemplate, legacyKey(r.Name, r.Language), tenant, id, r.TemplateID)
		}
		// Approved: this version is the one to send now. Paused or disabled: Meta stops the
		// template as a whole, older versions included. Rejected or pending: the last
		// approved version (if any) stays in use. Per WABA when the review names one.
		if r.WABA != "" {
			if !d.record(r.WABA, WABAReview{Status: status, ID: r.TemplateID, Category: r.Category}) {
				return d, nil // a repeated webhook
			}
		} else {
			if d.Status == status {
				return d, nil // a repeated webhook
			}
			d.Status = status
		}
		d.settle()
		d.UpdatedAt = time.Now().UTC()
		data, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("templates: encode %s: %w", key, err)
		}
		err = write(ctx, kv, key, data, entry, legacy)
		if conflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("templates: store %s: %w", key, err)
		}
		return d, nil
	}
}

// metaID is the Meta template id a review from waba must name: the one recorded for waba;
// for a WABA not recorded yet, the definition's own id while no WABA is recorded (a template
// has another id in each WABA, so another WABA's id proves nothing), else none.
func (d *Definition) metaID(waba string) string {
	if r, ok := d.WABAs[waba]; ok && waba != "" {
		return r.ID
	}
	if waba == "" || len(d.WABAs) == 0 {
		return d.ID
	}
	return ""
}

// Holders returns the tenants that have name in language, sorted: the candidates for a
// review of that template (see WABATenants).
func Holders(ctx context.Context, kv jetstream.KeyValue, name, language string) ([]string, error) {
	if !validName(name) || !validLanguage(language) {
		return nil, nil
	}
	return tenantsOf(ctx, kv, "*."+legacyKey(name, language), legacyKey(name, language))
}

// Tenants returns every tenant with a template in the catalogue, sorted.
func Tenants(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	return tenantsOf(ctx, kv, "*.*.*", "*.*")
}

// tenantsOf lists the tenants of the keys that match filters.
func tenantsOf(ctx context.Context, kv jetstream.KeyValue, filters ...string) ([]string, error) {
	kl, err := kv.ListKeysFiltered(ctx, filters...)
	if err != nil {
		return nil, fmt.Errorf("templates: list %s: %w", kv.Bucket(), err)
	}
	var tenants []string
	for k := range kl.Keys() {
		if t, _, _, _, ok := splitKey(k); ok {
			tenants = append(tenants, t)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the lister stopped early
	}
	slices.Sort(tenants)
	return slices.Compact(tenants), nil
}

// Migrated says what Migrate did.
type Migrated struct {
	// Found counts the entries stored before tenancy; Moved those deleted once copied (none
	// with MigrateOptions.Keep); Copies the keys written (a tenant that had its own version
	// keeps it).
	Found, Moved, Copies int
	// Kept names the entries left in place because they do not parse (fix them and run
	// Migrate again).
	Kept []string
}

// MigrateOptions adjust Migrate.
type MigrateOptions struct {
	// Also are the tenants the entries are copied to besides the default one: those whose
	// jobs used the one shared catalogue (the tenants of HERALD_API_KEYS).
	Also []string
	// Keep copies without deleting: run before the upgrade, while processes that read only
	// the untenanted keys still run (they log and ignore the tenanted ones).
	Keep bool
}

// Migrate moves the entries stored before tenancy ("<name>.<language>", read meanwhile as
// the default tenant's) to the tenanted keys: each is copied to the default tenant and to
// every tenant of o.Also, except where a tenant has its own version already, then deleted
// (unless o.Keep). It is idempotent: once nothing is left to move it does nothing. Delete
// only once every process reads tenanted keys: a process from before tenancy finds no
// templates afterwards.
func Migrate(ctx context.Context, kv jetstream.KeyValue, o MigrateOptions) (Migrated, error) {
	var res Migrated
	targets := []string{job.DefaultTenant}
	for _, t := range o.Also {
		t, err := checkTenant(t)
		if err != nil {
			return res, err
		}
		targets = append(targets, t)
	}
	slices.Sort(targets)
	targets = slices.Compact(targets)
	kl, err := kv.ListKeysFiltered(ctx, "*.*")
	if err != nil {
		return res, fmt.Errorf("templates: list %s: %w", kv.Bucket(), err)
	}
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, k := range keys {
		entry, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // moved meanwhile
		}
		if err != nil {
			return res, fmt.Errorf("templates: get %s: %w", k, err)
		}
		res.Found++
		d, err := ParseDefinition(entry.Value())
		if err != nil {
			res.Kept = append(res.Kept, k)
			continue
		}
		for _, t := range targets {
			d.setTenant(t)
			data, err := json.Marshal(d)
			if err != nil {
				return res, fmt.Errorf("templates: encode %s: %w", k, err)
			}
			_, err = kv.Create(ctx, Key(t, d.Name, d.Language), data)
			switch {
			case err == nil:
				res.Copies++
			case conflict(err): // the tenant has its own version: it stays
			default:
				return res, fmt.Errorf("templates: store %s: %w", Key(t, d.Name, d.Language), err)
			}
		}
		if o.Keep {
			continue
		}
		err = kv.Delete(ctx, k, jetstream.LastRevision(entry.Revision()))
		if err != nil && !conflict(err) {
			return res, fmt.Errorf("templates: delete %s: %w", k, err)
		}
		if err == nil {
			res.Moved++
		}
	}
	return res, nil
}
