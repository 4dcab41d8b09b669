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
)

// Backoff between attempts to watch the bucket again after a watch ended.
const (
	rewatchMin = 250 * time.Millisecond
	rewatchMax = 30 * time.Second
)

// Catalogue is a worker's in-memory copy of the herald-templates bucket, kept current by a
// KV watch so that an added, changed, paused or deleted template reaches every worker
// without a restart. Lookups read an immutable snapshot through an atomic pointer, so the
// hot path takes no lock; each change publishes a new snapshot.
type Catalogue struct {
	kv     jetstream.KeyValue
	logger *slog.Logger
	state  atomic.Pointer[snapshot]
}

// snapshot is one immutable state of the catalogue: name -> language -> definition.
type snapshot struct {
	byName map[string]map[string]*Definition
}

// NewCatalogue returns a catalogue of the bucket kv; call Start to load and watch it. A nil
// logger discards logs.
func NewCatalogue(kv jetstream.KeyValue, logger *slog.Logger) *Catalogue {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Catalogue{kv: kv, logger: logger}
	c.state.Store(&snapshot{byName: map[string]map[string]*Definition{}})
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

// Lookup returns the APPROVED definition of name in language. Errors: ErrUnknownTemplate,
// ErrUnknownLanguage (listing the languages it has), ErrNotApproved (naming the status). The
// definition is shared: read it, never change it.
func (c *Catalogue) Lookup(name, language string) (*Definition, error) {
	d, err := c.Definition(name, language)
	if err != nil {
		return nil, err
	}
	if d.Status != StatusApproved && d.Approved != nil && d.Approved.Status == StatusApproved {
		return d.Approved, nil // a newer version waits for review: the approved one is sent
	}
	if d.Status != StatusApproved {
		status := d.Status
		if status == "" {
			status = "no status"
		}
		return nil, fmt.Errorf("%w: %s is %s", ErrNotApproved, Key(name, language), status)
	}
	return d, nil
}

// List returns every definition in the catalogue, whatever its status, sorted by name then
// language.
func (c *Catalogue) List() []*Definition {
	var defs []*Definition
	for _, langs := range c.state.Load().byName {
		for _, d := range langs {
			defs = append(defs, d)
		}
	}
	sortDefs(defs)
	return defs
}

// load reads the watcher's initial values, up to the nil entry that ends them, into a fresh
// state and publishes it whole: deletions missed while not watching are dropped too.
func (c *Catalogue) load(ctx context.Context, w jetstream.KeyWatcher) error {
	m := map[string]map[string]*Definition{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("templates: watch %s: closed before the initial values", c.kv.Bucket())
			}
			if e == nil {
				c.state.Store(&snapshot{byName: m})
				c.logger.Info("template catalogue loaded", "bucket", c.kv.Bucket(), "templates", count(m))
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
			// Copy on write: readers keep the old snapshot until the new one is stored. Only
			// this goroutine writes, so load-modify-store needs no lock.
			old := c.state.Load().byName
			m := maps.Clone(old)
			name, _, _ := strings.Cut(e.Key(), ".")
			m[name] = maps.Clone(old[name])
			c.apply(m, e, false)
			if len(m[name]) == 0 {
				delete(m, name)
			}
			c.state.Store(&snapshot{byName: m})
		}
	}
}

// apply records one watch entry in m (whose inner map for the entry's name, if any, is
// writable). A stored value that is not a valid definition is logged and ignored: the last
// good definition stays in service rather than a bad write taking a template away from the
// whole fleet.
func (c *Catalogue) apply(m map[string]map[string]*Definition, e jetstream.KeyValueEntry, initial bool) {
	name, lang, ok := strings.Cut(e.Key(), ".")
	if !ok {
		c.logger.Error("template catalogue: key is not <name>.<language>; ignored", "key", e.Key())
		return
	}
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		if langs := m[name]; langs != nil {
			delete(langs, lang)
			if len(langs) == 0 {
				delete(m, name)
			}
		}
		if !initial {
			c.logger.Info("template removed", "key", e.Key())
		}
		return
	}
	d, err := ParseDefinition(e.Value())
	if err == nil && Key(d.Name, d.Language) != e.Key() {
		err = fmt.Errorf("definition is %s", Key(d.Name, d.Language))
	}
	if err != nil {
		c.logger.Error("template catalogue: invalid definition ignored", "key", e.Key(), "revision", e.Revision(), "error", err)
		return
	}
	if m[name] == nil {
		m[name] = map[string]*Definition{}
	}
	m[name][lang] = d
	if !initial {
		c.logger.Info("template updated", "key", e.Key(), "version", d.Version, "status", d.Status)
	}
}

func count(m map[string]map[string]*Definition) int {
	n := 0
	for _, langs := range m {
		n += len(langs)
	}
	return n
}

// Definition returns the definition of name in language whatever its status: channels that
// need no approval (grey, SMS) still render the text of a paused template.
func (c *Catalogue) Definition(name, language string) (*Definition, error) {
	langs, ok := c.state.Load().byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTemplate, name)
	}
	d, ok := langs[language]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %q version; it exists in %s", ErrUnknownLanguage, name, language,
			strings.Join(slices.Sorted(maps.Keys(langs)), ", "))
	}
	return d, nil
}
