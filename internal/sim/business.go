package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidEvent is returned (wrapped) by [Sim.QualityUpdate] and [Sim.AccountUpdate] for an
// event the simulator cannot post: no webhook URL, a number it does not serve, a malformed
// event name or limit.
var ErrInvalidEvent = errors.New("invalid business account event")

// ErrQueueFull is returned by [Sim.QualityUpdate] and [Sim.AccountUpdate] when the delivery
// queue has no room (the receiver is down or [Sim.Start] was not called): the event is dropped.
var ErrQueueFull = errors.New("sim: the webhook delivery queue is full")

// QualityUpdate is a phone_number_quality_update webhook: Meta's notice that a number's
// quality rating or messaging limit changed. Post one with [Sim.QualityUpdate] or
// POST /sim/quality.
type QualityUpdate struct {
	// PhoneNumberID is the number (required). The webhook carries its display number, not
	// this id, in the entry of its WABA, signed with its app secret.
	PhoneNumberID string `json:"phone_number_id"`
	// Event is FLAGGED, UNFLAGGED, DOWNGRADE, UPGRADE, ONBOARDING or THROUGHPUT_UPGRADE (any
	// upper-case name is posted, for events Meta adds).
	Event string `json:"event"`
	// CurrentLimit is the messaging limit tier: TIER_50, TIER_250, TIER_1K, TIER_2K,
	// TIER_10K, TIER_100K, TIER_UNLIMITED or TIER_NOT_SET; default TIER_1K.
	CurrentLimit string `json:"current_limit,omitempty"`
	// OldLimit is the tier before the change (Meta sends it on limit changes only).
	OldLimit string `json:"old_limit,omitempty"`
	// MaxDailyConversationsPerBusiness is the portfolio-wide limit (a tier name), which Meta
	// sends since the limits became per portfolio.
	MaxDailyConversationsPerBusiness string `json:"max_daily_conversations_per_business,omitempty"`
}

// AccountUpdate is an account_update webhook: a restriction, a ban or a policy violation of
// the WhatsApp Business Account. Post one with [Sim.AccountUpdate] or POST /sim/account.
type AccountUpdate struct {
	// PhoneNumberID is the number concerned: the webhook carries its display number as
	// value.phone_number, in the entry of its WABA, signed with its app secret. "" posts a
	// WABA-wide event (entry WABAID, signed with AppSecret, no phone_number).
	PhoneNumberID string `json:"phone_number_id,omitempty"`
	// Event is ACCOUNT_RESTRICTION, ACCOUNT_VIOLATION, DISABLED_UPDATE, ACCOUNT_DELETED,
	// VERIFIED_ACCOUNT, ... (any upper-case name is posted).
	Event string `json:"event"`
	// RestrictionInfo lists what is restricted (ACCOUNT_RESTRICTION); default one
	// RESTRICTED_BIZ_INITIATED_MESSAGING restriction expiring in 24 hours.
	RestrictionInfo []Restriction `json:"restriction_info,omitempty"`
	// BanInfo is the ban (DISABLED_UPDATE); default DISABLE as of today.
	BanInfo *BanInfo `json:"ban_info,omitempty"`
	// ViolationInfo names the violated policy (ACCOUNT_VIOLATION).
	ViolationInfo *ViolationInfo `json:"violation_info,omitempty"`
}

// Restriction is one item of an account_update's restriction_info.
type Restriction struct {
	// RestrictionType is RESTRICTED_BIZ_INITIATED_MESSAGING,
	// RESTRICTED_CUSTOMER_INITIATED_MESSAGING or RESTRICTED_ADD_PHONE_NUMBER_ACTION.
	RestrictionType string `json:"restriction_type"`
	// Expiration is when it ends, in Unix seconds.
	Expiration int64 `json:"expiration"`
}

// BanInfo is an account_update's ban_info.
type BanInfo struct {
	// WABABanState is DISABLE, REINSTATE or SCHEDULE_FOR_DISABLE.
	WABABanState string `json:"waba_ban_state"`
	// WABABanDate is the date as Meta words it ("April 17, 2025").
	WABABanDate string `json:"waba_ban_date"`
}

// ViolationInfo is an account_update's violation_info.
type ViolationInfo struct {
	ViolationType string `json:"violation_type"`
}

// Business account webhook payload: entry[].changes[] with a field and a free-form value,
// and the entry's time, as Meta's reference shows them.
type (
	bizEnvelope struct {
		Object string     `json:"object"`
		Entry  []bizEntry `json:"entry"`
	}
	bizEntry struct {
		ID      string      `json:"id"`
		Time    int64       `json:"time"`
		Changes []bizChange `json:"changes"`
	}
	bizChange struct {
		Value any    `json:"value"`
		Field string `json:"field"`
	}
	qualityValue struct {
		DisplayPhoneNumber               string `json:"display_phone_number"`
		Event                            string `json:"event"`
		OldLimit                         string `json:"old_limit,omitempty"`
		CurrentLimit                     string `json:"current_limit"`
		MaxDailyConversationsPerBusiness string `json:"max_daily_conversations_per_business,omitempty"`
	}
	accountValue struct {
		PhoneNumber     string         `json:"phone_number,omitempty"`
		Event           string         `json:"event"`
		RestrictionInfo []Restriction  `json:"restriction_info,omitempty"`
		BanInfo         *BanInfo       `json:"ban_info,omitempty"`
		ViolationInfo   *ViolationInfo `json:"violation_info,omitempty"`
	}
)

// Messaging limit tiers of phone_number_quality_update.
var limitTiers = map[string]bool{
	"TIER_50": true, "TIER_250": true, "TIER_1K": true, "TIER_2K": true, "TIER_10K": true,
	"TIER_100K": true, "TIER_UNLIMITED": true, "TIER_NOT_SET": true,
}

// QualityUpdate posts a phone_number_quality_update webhook for a number to WebhookURL,
// signed with the number's app secret. It needs [Sim.Start] to be delivered; the webhook is
// counted in Stats().Webhooks.Events.
func (s *Sim) QualityUpdate(q QualityUpdate) error {
	if err := s.checkEvent(q.PhoneNumberID, true, q.Event); err != nil {
		return err
	}
	if q.CurrentLimit == "" {
		q.CurrentLimit = "TIER_1K"
	}
	for name, tier := range map[string]string{"current_limit": q.CurrentLimit, "old_limit": q.OldLimit,
		"max_daily_conversations_per_business": q.MaxDailyConversationsPerBusiness} {
		if tier != "" && !limitTiers[tier] {
			return fmt.Errorf("%w: %s %q is not a tier (TIER_50, TIER_250, TIER_1K, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED, TIER_NOT_SET)", ErrInvalidEvent, name, tier)
		}
	}
	return s.postEvent(q.PhoneNumberID, "phone_number_quality_update", qualityValue{
		DisplayPhoneNumber: s.displayOf(q.PhoneNumberID), Event: q.Event, OldLimit: q.OldLimit,
		CurrentLimit: q.CurrentLimit, MaxDailyConversationsPerBusiness: q.MaxDailyConversationsPerBusiness,
	})
}

// AccountUpdate posts an account_update webhook to WebhookURL, for a number (signed with its
// app secret) or for the whole WABA. It needs [Sim.Start] to be delivered.
func (s *Sim) AccountUpdate(a AccountUpdate) error {
	if err := s.checkEvent(a.PhoneNumberID, false, a.Event); err != nil {
		return err
	}
	now := time.Now()
	if a.Event == "ACCOUNT_RESTRICTION" && len(a.RestrictionInfo) == 0 {
		a.RestrictionInfo = []Restriction{{RestrictionType: "RESTRICTED_BIZ_INITIATED_MESSAGING", Expiration: now.Add(24 * time.Hour).Unix()}}
	}
	if a.Event == "DISABLED_UPDATE" && a.BanInfo == nil {
		a.BanInfo = &BanInfo{WABABanState: "DISABLE", WABABanDate: now.UTC().Format("January 2, 2006")}
	}
	v := accountValue{Event: a.Event, RestrictionInfo: a.RestrictionInfo, BanInfo: a.BanInfo, ViolationInfo: a.ViolationInfo}
	if a.PhoneNumberID != "" {
		v.PhoneNumber = s.displayOf(a.PhoneNumberID)
	}
	return s.postEvent(a.PhoneNumberID, "account_update", v)
}

func (s *Sim) checkEvent(phoneID string, needNumber bool, event string) error {
	switch {
	case s.cfg.WebhookURL == "":
		return fmt.Errorf("%w: Config.WebhookURL is empty", ErrInvalidEvent)
	case phoneID == "" && needNumber:
		return fmt.Errorf("%w: phone_number_id is required", ErrInvalidEvent)
	case phoneID != "" && !s.servesNumber(phoneID):
		return fmt.Errorf("%w: phone number id %q is not one the simulator serves (PhoneNumberID, PhoneNumberIDs)", ErrInvalidEvent, phoneID)
	case !eventName(event):
		return fmt.Errorf("%w: event %q is not an upper-case event name like FLAGGED", ErrInvalidEvent, event)
	}
	return nil
}

func eventName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c == '_' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// postEvent queues one business account webhook for a number (or the WABA, phoneID ""). It
// shares the callback queue of grey notifications: events of one number arrive in order.
func (s *Sim) postEvent(phoneID, field string, value any) error {
	body, err := json.Marshal(bizEnvelope{Object: "whatsapp_business_account", Entry: []bizEntry{{
		ID: s.wabaOf(phoneID), Time: time.Now().Unix(), Changes: []bizChange{{Value: value, Field: field}},
	}}})
	if err != nil { // cannot happen: plain strings and numbers
		return fmt.Errorf("encoding the %s webhook: %w", field, err)
	}
	secret := s.cfg.AppSecret
	if phoneID != "" {
		secret = s.appSecretOf(phoneID)
	}
	cb := callback{method: "POST", url: s.cfg.WebhookURL, body: body, sig: Sign(secret, body), event: true}
	select {
	case s.cbShards[0] <- cb:
		return nil
	default:
		s.deliver.webhookDropped.Add(1)
		s.warnDrop(1, "queue full")
		return ErrQueueFull
	}
}
