package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Change fields of a business account's health, parsed by [ParseNumberEvents] (and named by
// [Targets]); Parse leaves them in Batch.Unknown.
const (
	FieldPhoneNumberQuality = "phone_number_quality_update"
	FieldAccountUpdate      = "account_update"
)

// NumberEvent is a phone_number_quality_update (a number's quality rating or messaging limit
// changed) or an account_update (a restriction, ban or policy violation) event. Neither
// carries a phone_number_id: a number is named by its display number, a WABA-wide event by
// the entry id alone.
type NumberEvent struct {
	// Field is FieldPhoneNumberQuality or FieldAccountUpdate.
	Field string `json:"field"`
	// Event is Meta's name: FLAGGED, UNFLAGGED, DOWNGRADE, UPGRADE, ACCOUNT_RESTRICTION,
	// ACCOUNT_VIOLATION, DISABLED_UPDATE, ...
	Event string `json:"event"`
	// WABAID is the entry id; DisplayPhoneNumber the number concerned (digits), "" for an
	// event about the whole WABA.
	WABAID             string `json:"waba_id,omitempty"`
	DisplayPhoneNumber string `json:"display_phone_number,omitempty"`
	// CurrentLimit and OldLimit are messaging limit tiers (TIER_1K, ...); PortfolioLimit is
	// max_daily_conversations_per_business (quality updates only).
	CurrentLimit   string `json:"current_limit,omitempty"`
	OldLimit       string `json:"old_limit,omitempty"`
	PortfolioLimit string `json:"portfolio_limit,omitempty"`
	// Restrictions are restriction_info's types with their expiry (ACCOUNT_RESTRICTION).
	Restrictions []Restriction `json:"restrictions,omitempty"`
	// BanState is ban_info.waba_ban_state (DISABLED_UPDATE); Violation is
	// violation_info.violation_type (ACCOUNT_VIOLATION).
	BanState  string `json:"ban_state,omitempty"`
	Violation string `json:"violation,omitempty"`
	// At is the entry's time (zero when missing).
	At time.Time `json:"at"`
}

// Restriction is one item of an account_update's restriction_info.
type Restriction struct {
	Type    string    `json:"type"`
	Expires time.Time `json:"expires,omitempty"`
}

// ParseNumberEvents returns the phone_number_quality_update and account_update events of a
// webhook body, in order; every other change is skipped. Like Parse it is lenient below entry
// level and fails (wrapping ErrMalformed) only for a body that is not such a webhook at all.
func ParseNumberEvents(body []byte) ([]NumberEvent, error) {
	var p struct {
		Object string `json:"object"`
		Entry  []struct {
			ID      flexString `json:"id"`
			Time    flexString `json:"time"`
			Changes []struct {
				Field string `json:"field"`
				Value struct {
					DisplayPhoneNumber flexString `json:"display_phone_number"`
					PhoneNumber        flexString `json:"phone_number"`
					Event              string     `json:"event"`
					CurrentLimit       string     `json:"current_limit"`
					OldLimit           string     `json:"old_limit"`
					PortfolioLimit     string     `json:"max_daily_conversations_per_business"`
					RestrictionInfo    []struct {
						Type       string     `json:"restriction_type"`
						Expiration flexString `json:"expiration"`
					} `json:"restriction_info"`
					BanInfo struct {
						State string `json:"waba_ban_state"`
					} `json:"ban_info"`
					ViolationInfo struct {
						Type string `json:"violation_type"`
					} `json:"violation_info"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := lenientUnmarshal(body, &p); err != nil {
		return nil, err
	}
	if p.Object != Object {
		return nil, fmt.Errorf("%w: object %q, want %q", ErrMalformed, p.Object, Object)
	}
	var out []NumberEvent
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			if c.Field != FieldPhoneNumberQuality && c.Field != FieldAccountUpdate {
				continue
			}
			v := c.Value
			ev := NumberEvent{Field: c.Field, Event: v.Event, WABAID: string(e.ID), At: e.Time.asTime(),
				CurrentLimit: v.CurrentLimit, OldLimit: v.OldLimit, PortfolioLimit: v.PortfolioLimit,
				BanState: v.BanInfo.State, Violation: v.ViolationInfo.Type}
			ev.DisplayPhoneNumber = string(v.DisplayPhoneNumber)
			if c.Field == FieldAccountUpdate {
				ev.DisplayPhoneNumber = string(v.PhoneNumber)
			}
			for _, r := range v.RestrictionInfo {
				ev.Restrictions = append(ev.Restrictions, Restriction{Type: r.Type, Expires: r.Expiration.asTime()})
			}
			out = append(out, ev)
		}
	}
	return out, nil
}

// Target is what one change of a webhook names its business by, read with [Targets] before
// the body is trusted, to choose the app secret that must have signed it.
type Target struct {
	// Field is the change's field.
	Field string
	// EntryID is the entry's id: the WABA id.
	EntryID string
	// PhoneNumberID is value.metadata.phone_number_id (messages, user_preferences); "" for
	// changes that carry none (templates, quality, account).
	PhoneNumberID string
	// DisplayPhoneNumber is value.display_phone_number of a phone_number_quality_update or
	// value.phone_number of an account_update: how those name a number.
	DisplayPhoneNumber string
}

// Targets lists, change by change, the business each change of a webhook body names. It
// decodes only those ids, so an untrusted body costs one shallow pass; it fails (wrapping
// ErrMalformed) as Parse does.
func Targets(body []byte) ([]Target, error) {
	var p struct {
		Object string `json:"object"`
		Entry  []struct {
			ID      flexString `json:"id"`
			Changes []struct {
				Field string `json:"field"`
				Value struct {
					Metadata struct {
						PhoneNumberID flexString `json:"phone_number_id"`
					} `json:"metadata"`
					DisplayPhoneNumber flexString `json:"display_phone_number"`
					PhoneNumber        flexString `json:"phone_number"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := lenientUnmarshal(body, &p); err != nil {
		return nil, err
	}
	if p.Object != Object {
		return nil, fmt.Errorf("%w: object %q, want %q", ErrMalformed, p.Object, Object)
	}
	var out []Target
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			t := Target{Field: c.Field, EntryID: string(e.ID), PhoneNumberID: string(c.Value.Metadata.PhoneNumberID)}
			switch c.Field {
			case FieldPhoneNumberQuality:
				t.DisplayPhoneNumber = string(c.Value.DisplayPhoneNumber)
			case FieldAccountUpdate:
				t.DisplayPhoneNumber = string(c.Value.PhoneNumber)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// lenientUnmarshal decodes as Parse does: a type mismatch below entry level is a field we
// cannot use, not a broken webhook.
func lenientUnmarshal(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" && te.Field != "object" && te.Field != "entry" {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}
