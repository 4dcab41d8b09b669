package templates

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// WABAReview is Meta's review of a template in one WhatsApp Business Account. Each WABA
// reviews its own copy of a template (with its own Meta id), so a tenant whose senders span
// several WABAs may have a template approved in one and pending in another; a job's template
// is judged in the WABA of the sender chosen for it.
type WABAReview struct {
	// Status is Meta's status of the template in this WABA (APPROVED, PENDING, PAUSED, ...).
	Status string `json:"status"`
	// ID is Meta's id of the template in this WABA.
	ID string `json:"id,omitempty"`
	// Category is the template's category in this WABA.
	Category string `json:"category,omitempty"`
	// UpdatedAt is when Herald recorded this review.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// ApprovedIn tells whether d may be sent through a sender of the WABA waba. With no review
// per WABA recorded (a definition written by hand, a sample, or one from before reviews were
// kept per WABA) d's own Status decides, for every WABA. With reviews recorded, waba ""
// asks whether d is approved in at least one WABA, and any other waba needs its own review
// APPROVED: a WABA that never reviewed the template cannot send it.
func (d *Definition) ApprovedIn(waba string) bool {
	if len(d.WABAs) == 0 {
		return d.Status == StatusApproved
	}
	if waba == "" {
		return anyApproved(d.WABAs)
	}
	return d.WABAs[waba].Status == StatusApproved
}

// approvedWABAs lists, sorted, the WABAs whose review of d is APPROVED.
func (d *Definition) approvedWABAs() []string {
	var out []string
	for w, r := range d.WABAs {
		if r.Status == StatusApproved {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

// sendable is the version of d to send through a sender of waba: d itself when approved
// there, else the last approved version while d waits for review, else ErrNotApproved
// naming d's status (in that WABA, when reviews are kept per WABA).
func (d *Definition) sendable(waba string) (*Definition, error) {
	if d.ApprovedIn(waba) {
		return d, nil
	}
	if d.Approved != nil && d.Approved.ApprovedIn(waba) {
		return d.Approved, nil // a newer version waits for review: the approved one is sent
	}
	key := legacyKey(d.Name, d.Language)
	if len(d.WABAs) == 0 || waba == "" {
		status := d.Status
		if status == "" {
			status = "no status"
		}
		return nil, fmt.Errorf("%w: %s is %s", ErrNotApproved, key, status)
	}
	r, ok := d.WABAs[waba]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no review in WABA %s (approved in: %s)", ErrNotApproved, key, waba, orNone(d.approvedWABAs()))
	}
	return nil, fmt.Errorf("%w: %s is %s in WABA %s", ErrNotApproved, key, orStatus(r.Status), waba)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func orStatus(s string) string {
	if s == "" {
		return "no status"
	}
	return s
}

func anyApproved(m map[string]WABAReview) bool {
	for _, r := range m {
		if r.Status == StatusApproved {
			return true
		}
	}
	return false
}

// stops tells whether a status ends the use of older approved versions too: approved (this
// version replaces them), paused or disabled (Meta stops the template as a whole).
func stops(status string) bool {
	return status == StatusApproved || status == StatusPaused || status == StatusDisabled
}

// summary is the definition-wide Status of per-WABA reviews: APPROVED when approved in any
// WABA (what Lookup without a WABA, and readers that know no WABAs, act on), else the most
// recently recorded review's status.
func summary(m map[string]WABAReview) string {
	if anyApproved(m) {
		return StatusApproved
	}
	ws := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if c := m[a].UpdatedAt.Compare(m[b].UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	if len(ws) == 0 {
		return ""
	}
	return m[ws[len(ws)-1]].Status
}

// settle brings d's derived state in line after a change of its reviews: the summary Status,
// and the approved version carried along, which no longer serves a WABA where d itself is
// approved, paused or disabled, and is dropped once it serves none.
func (d *Definition) settle() {
	if len(d.WABAs) > 0 {
		d.Status = summary(d.WABAs)
	}
	a := d.Approved
	if a == nil {
		return
	}
	switch {
	case len(d.WABAs) == 0:
		// One review for every WABA: the rule from before WABAs.
		if stops(d.Status) {
			d.Approved = nil
		}
	case len(a.WABAs) == 0:
		// The approved version was approved for every WABA, the new one in some: which WABAs
		// the old one served is unknown, so a stop anywhere stops it.
		for _, r := range d.WABAs {
			if stops(r.Status) {
				d.Approved = nil
				break
			}
		}
	default:
		for w, r := range d.WABAs {
			if stops(r.Status) {
				a.forget(w)
			}
		}
	}
	if d.Approved != nil && !d.Approved.ApprovedIn("") {
		d.Approved = nil
	}
}

// forget removes waba's review from d (its copy of the template is no longer d's text). A
// definition whose last review goes is then approved nowhere rather than falling back to
// its Status: it becomes PENDING.
func (d *Definition) forget(waba string) {
	if _, ok := d.WABAs[waba]; !ok {
		return
	}
	d.WABAs = maps.Clone(d.WABAs)
	delete(d.WABAs, waba)
	if len(d.WABAs) == 0 {
		d.WABAs, d.Status = nil, StatusPending
		return
	}
	d.Status = summary(d.WABAs)
}

// record sets d's review in waba to r, keeping the id and category already recorded when r
// has none; it reports whether anything changed.
func (d *Definition) record(waba string, r WABAReview) bool {
	cur, had := d.WABAs[waba]
	r.Status = strings.ToUpper(r.Status)
	r.Category = strings.ToUpper(r.Category)
	if r.ID == "" {
		r.ID = cur.ID
	}
	if r.Category == "" {
		r.Category = cur.Category
	}
	if had && cur.Status == r.Status && cur.ID == r.ID && cur.Category == r.Category {
		return false
	}
	r.UpdatedAt = time.Now().UTC()
	if d.WABAs == nil {
		d.WABAs = map[string]WABAReview{}
	}
	d.WABAs[waba] = r
	return true
}

// sameText tells whether a and b are the same template text (parameter format and
// components), whatever their categories: a WABA may categorise its copy differently.
func sameText(a, b *Definition) bool {
	b2 := *b
	b2.Category = a.Category
	return SameContent(a, &b2)
}

// Sync records one entry of WABA waba's template listing (GET /<WABA>/message_templates),
// listed, in tenant's catalogue, merging it with what the other WABAs said:
//
//   - the same text as the stored definition: waba's review of it is recorded (status, id,
//     category), the other WABAs' reviews are kept;
//   - the text of the approved version the stored one carries along (waba has not taken the
//     newer text): the review is recorded on that version;
//   - another text: it becomes the next version, reviewed by waba only, and the last approved
//     version is carried along for the WABAs that still send it (waba too, while the new
//     text is only pending or rejected there).
//
// changed is false when the catalogue already said all that (nothing is written). waba must
// not be empty. Errors from the store are wrapped; an invalid listed definition gives
// ErrInvalidDefinition.
func Sync(ctx context.Context, kv jetstream.KeyValue, tenant, waba string, listed *Definition) (stored *Definition, changed bool, err error) {
	tenant, err = checkTenant(tenant)
	if err != nil {
		return nil, false, err
	}
	if waba == "" {
		return nil, false, fmt.Errorf("%w: %s: the WABA of a template listing is required", ErrInvalidDefinition, listed.label())
	}
	nd := listed.clone()
	nd.Tenant, nd.Approved, nd.WABAs = tenant, nil, nil
	if err := nd.Validate(); err != nil {
		return nil, false, err
	}
	review := WABAReview{Status: nd.Status, ID: nd.ID, Category: nd.Category}
	key := Key(tenant, nd.Name, nd.Language)
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		entry, legacy, err := read(ctx, kv, tenant, nd.Name, nd.Language)
		var cur *Definition
		version := 1
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			entry = nil
		case err != nil:
			return nil, false, fmt.Errorf("templates: get %s: %w", key, err)
		default:
			var pv struct {
				Version int `json:"version"`
			}
			_ = json.Unmarshal(entry.Value(), &pv)
			version = pv.Version + 1
			if cur, err = ParseDefinition(entry.Value()); err == nil {
				cur.setTenant(tenant)
			} else {
				cur = nil // unparseable: replaced by the listing
			}
		}
		next, changed := merge(cur, nd, waba, review, version)
		if !changed {
			return cur, false, nil
		}
		if err := next.Validate(); err != nil {
			return nil, false, err
		}
		next.UpdatedAt = time.Now().UTC()
		data, err := json.Marshal(next)
		if err != nil {
			return nil, false, fmt.Errorf("templates: encode %s: %w", key, err)
		}
		err = write(ctx, kv, key, data, entry, legacy)
		if conflict(err) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("templates: store %s: %w", key, err)
		}
		return next, true, nil
	}
}

// merge is Sync's decision: the definition to store for cur (nil when none or unreadable)
// given waba's listed definition nd and its review, and whether it differs from cur. version
// is the version a new text gets.
func merge(cur, nd *Definition, waba string, review WABAReview, version int) (*Definition, bool) {
	if cur == nil {
		next := nd.clone()
		next.Version = version
		next.record(waba, review)
		next.settle()
		return next, true
	}
	next := cur.clone()
	switch {
	case sameText(cur, nd):
		changed := next.record(waba, review)
		if next.ID == "" && nd.ID != "" {
			next.ID, changed = nd.ID, true
		}
		if len(next.WABAs) == 1 && (next.Category != nd.Category || next.PreviousCategory != nd.PreviousCategory) {
			// Reviewed by this WABA alone: its category is the template's.
			next.Category, next.PreviousCategory, changed = nd.Category, nd.PreviousCategory, true
		}
		if !changed {
			return cur, false
		}
	case cur.Approved != nil && sameText(cur.Approved, nd):
		// waba still has the approved text: the newer version is not its copy.
		_, newer := next.WABAs[waba]
		next.forget(waba)
		if !next.Approved.record(waba, review) && !newer {
			return cur, false
		}
		next.Approved.Status = summary(next.Approved.WABAs)
	default:
		// As with Propose: the last approved version stays in use, in waba too, until waba
		// approves, pauses or disables the new text (settle).
		approved := cur.Approved
		if cur.ApprovedIn("") {
			approved = cur.clone()
			approved.Approved = nil
		}
		next = nd.clone()
		next.Version = version
		if next.ID == "" {
			next.ID = cur.ID
		}
		next.record(waba, review)
		next.Approved = approved
	}
	next.settle()
	return next, true
}
