package templates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the NATS KV bucket that holds the catalogue (created by provisioning).
const Bucket = "herald-templates"

// Key is the catalogue key of a template: "<name>.<language>", e.g. "order_ready.ru" or
// "hello_world.en_US".
func Key(name, language string) string { return name + "." + language }

// Put validates d and stores it under Key(d.Name, d.Language) as the next version: 1 for a
// new template (or one that was deleted), the stored version + 1 otherwise. It uses the
// key's revision for optimistic concurrency, so two concurrent puts of one template get two
// different versions and neither is lost. d is not modified; the stored definition, with
// its Version and UpdatedAt, is returned. Validation errors wrap ErrInvalidDefinition.
//
// Put is authoritative about the status (the provider's listing, a sample): use Propose for
// an operator's change. Either way the last APPROVED version is carried along in Approved
// while the stored one is not approved.
func Put(ctx context.Context, kv jetstream.KeyValue, d *Definition) (*Definition, error) {
	return put(ctx, kv, d, false)
}

// Propose registers an operator's definition. An APPROVED version is immutable: a change to
// the content of an approved template is stored as a new version with status PENDING (Meta
// must review it), and workers go on sending the approved one. Proposing what is stored
// already changes nothing.
func Propose(ctx context.Context, kv jetstream.KeyValue, d *Definition) (*Definition, error) {
	return put(ctx, kv, d, true)
}

func put(ctx context.Context, kv jetstream.KeyValue, d *Definition, propose bool) (*Definition, error) {
	nd := d.clone()
	nd.Approved = nil
	if err := nd.Validate(); err != nil {
		return nil, err
	}
	key := Key(nd.Name, nd.Language)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entry, err := kv.Get(ctx, key)
		var rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			nd.Version = 1
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
			rev = entry.Revision()
			if prev, err := ParseDefinition(entry.Value()); err == nil {
				if propose && SameContent(prev, nd) {
					return prev, nil
				}
				approved := prev.Approved
				if prev.Status == StatusApproved {
					approved = prev.clone()
					approved.Approved = nil
				}
				if propose && approved != nil {
					nd.Status = StatusPending
				}
				// Only a version in review keeps the approved one in use: a paused or disabled
				// template is stopped as a whole.
				if nd.Status != StatusApproved && nd.Status != StatusPaused && nd.Status != StatusDisabled && approved != nil {
					nd.Approved = approved
					if err := nd.Validate(); err != nil {
						return nil, err
					}
				}
			}
		}
		nd.UpdatedAt = time.Now().UTC()
		data, err := json.Marshal(nd)
		if err != nil {
			return nil, fmt.Errorf("templates: encode %s: %w", key, err)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
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

// Get returns the stored definition of name in language, whatever its status. A missing
// key is ErrUnknownLanguage when the template exists in other languages (listed in the
// error), else ErrUnknownTemplate.
func Get(ctx context.Context, kv jetstream.KeyValue, name, language string) (*Definition, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTemplate, name)
	}
	if !validLanguage(language) {
		return nil, unknownLanguage(ctx, kv, name, language)
	}
	key := Key(name, language)
	entry, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, unknownLanguage(ctx, kv, name, language)
	}
	if err != nil {
		return nil, fmt.Errorf("templates: get %s: %w", key, err)
	}
	d, err := ParseDefinition(entry.Value())
	if err != nil {
		return nil, fmt.Errorf("templates: stored %s: %w", key, err)
	}
	return d, nil
}

// unknownLanguage builds the error for a missing key: ErrUnknownLanguage listing the
// languages name exists in, or ErrUnknownTemplate.
func unknownLanguage(ctx context.Context, kv jetstream.KeyValue, name, language string) error {
	kl, err := kv.ListKeysFiltered(ctx, name+".*")
	if err != nil {
		return fmt.Errorf("templates: list languages of %s: %w", name, err)
	}
	var langs []string
	for k := range kl.Keys() {
		if _, lang, ok := strings.Cut(k, "."); ok {
			langs = append(langs, lang)
		}
	}
	if err := ctx.Err(); err != nil {
		return err // the lister stopped early
	}
	if len(langs) == 0 {
		return fmt.Errorf("%w: %q", ErrUnknownTemplate, name)
	}
	slices.Sort(langs)
	langs = slices.Compact(langs)
	return fmt.Errorf("%w: %s has no %q version; it exists in %s", ErrUnknownLanguage, name, language, strings.Join(langs, ", "))
}

// List returns every stored definition, whatever its status, sorted by name then language.
// It reads the bucket with one watcher rather than a get per key.
func List(ctx context.Context, kv jetstream.KeyValue) ([]*Definition, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("templates: list %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	var defs []*Definition
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("templates: list %s: watcher closed", kv.Bucket())
			}
			if e == nil { // all current values delivered
				sortDefs(defs)
				return defs, nil
			}
			d, err := ParseDefinition(e.Value())
			if err != nil {
				return nil, fmt.Errorf("templates: stored %s: %w", e.Key(), err)
			}
			defs = append(defs, d)
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

// SetStatus records a status change Meta reported (APPROVED, PAUSED, DISABLED, REJECTED...)
// on the stored definition of name in language, keeping its version: the content did not
// change. Workers watching the bucket see it at once. An unknown template gives
// ErrUnknownTemplate or ErrUnknownLanguage (the webhook may be about a template registered
// elsewhere).
func SetStatus(ctx context.Context, kv jetstream.KeyValue, name, language, status string) (*Definition, error) {
	key := Key(name, language)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entry, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, unknownLanguage(ctx, kv, name, language)
		}
		if err != nil {
			return nil, fmt.Errorf("templates: get %s: %w", key, err)
		}
		d, err := ParseDefinition(entry.Value())
		if err != nil {
			return nil, fmt.Errorf("templates: stored %s: %w", key, err)
		}
		status = strings.ToUpper(status)
		if d.Status == status {
			return d, nil // a repeated webhook
		}
		d.Status = status
		// Approved: this version is the one to send now. Paused or disabled: Meta stops the
		// template as a whole, older versions included. Rejected or pending: the last
		// approved version (if any) stays in use.
		if status == StatusApproved || status == StatusPaused || status == StatusDisabled {
			d.Approved = nil
		}
		d.UpdatedAt = time.Now().UTC()
		data, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("templates: encode %s: %w", key, err)
		}
		_, err = kv.Update(ctx, key, data, entry.Revision())
		if conflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("templates: store %s: %w", key, err)
		}
		return d, nil
	}
}
