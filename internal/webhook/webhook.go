// Package webhook parses and verifies WhatsApp Cloud API webhooks (object
// "whatsapp_business_account"): message status updates, inbound customer messages, the
// template lifecycle events (status, category, quality) and customers' marketing
// preferences (user_preferences).
//
// It is pure logic: the HTTP handler reads the body, calls Verify with the
// X-Hub-Signature-256 header, then Parse, and acts on the Batch. Parse is lenient by design:
// Meta adds fields and message types without notice, and a webhook that fails is retried by
// Meta for days, so anything not understood is skipped (and named in Batch.Unknown) rather
// than rejected.
package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrMalformed is returned (wrapped) by Parse when the body is not JSON or not a
// "whatsapp_business_account" webhook at all. Retrying such a body cannot help, so the
// handler should answer 400.
var ErrMalformed = errors.New("webhook: malformed payload")

// Object is the only webhook object Parse accepts.
const Object = "whatsapp_business_account"

// Change fields Parse understands; any other field name lands in Batch.Unknown.
const (
	FieldMessages         = "messages"
	FieldTemplateStatus   = "message_template_status_update"
	FieldTemplateCategory = "template_category_update"
	FieldTemplateQuality  = "message_template_quality_update"
	FieldUserPreferences  = "user_preferences"
)

// User preference categories and values of a "user_preferences" change.
const (
	// PreferenceMarketing is the category of a customer stopping or resuming marketing
	// messages (the only one Meta sends so far).
	PreferenceMarketing = "marketing_messages"
	PreferenceStop      = "stop"
	PreferenceResume    = "resume"
)

// Batch is everything one webhook POST carried, flattened across entries and changes, in
// the order Meta sent it.
type Batch struct {
	// Statuses are outbound message status updates (field "messages", value.statuses).
	Statuses []Status
	// Messages are inbound customer messages (field "messages", value.messages).
	Messages []Inbound
	// TemplateStatus holds "message_template_status_update" events.
	TemplateStatus []TemplateStatus
	// TemplateCategory holds "template_category_update" events.
	TemplateCategory []TemplateCategory
	// TemplateQuality holds "message_template_quality_update" events.
	TemplateQuality []TemplateQuality
	// UserPreferences holds "user_preferences" events: a customer stopped or resumed
	// marketing messages from the business.
	UserPreferences []UserPreference
	// Errors are value-level errors of "messages" changes (Meta reports, for example, an
	// inbound payload it could not render this way). They are also copied into the
	// Errors of every Inbound of the same change; count them here, not there.
	Errors []Error
	// Unknown names the change fields Parse did not understand, one entry per change, for a
	// metric or a log line. They are not an error.
	Unknown []string
}

// Status is one status update of a message the business sent.
type Status struct {
	// MessageID is the provider message id ("wamid...") returned by the send call.
	MessageID string
	// State is Meta's status as sent: sent, delivered, read, failed, played, deleted, ...
	State string
	// At is when the state was reached (zero when the timestamp is missing or invalid).
	At time.Time
	// RecipientID is the customer's WhatsApp id (digits) or, for groups, the group id.
	RecipientID string
	// PhoneNumberID and DisplayPhoneNumber identify the business number that sent it.
	PhoneNumberID      string
	DisplayPhoneNumber string
	// BizOpaque echoes biz_opaque_callback_data given on send.
	BizOpaque string
	// Errors explain a failed state.
	Errors []Error
	// ConversationID and ConversationOrigin (conversation.origin.type: service, utility,
	// marketing, ...) describe the billing conversation, when Meta includes it.
	ConversationID     string
	ConversationOrigin string
	// Billable and PricingCategory come from the pricing object.
	Billable        bool
	PricingCategory string
}

// Error is one error object of a webhook (status, message or value level).
type Error struct {
	// Code is Meta's error code, for example 130472 or 131051.
	Code    int
	Title   string
	Message string
	// Details is error_data.details.
	Details string
	Href    string
}

// Inbound is one message a customer sent to the business. It opens the 24-hour
// customer-service window whatever its type.
type Inbound struct {
	// ID is the message id ("wamid...").
	ID string
	// From is the sender's WhatsApp id (digits, no "+").
	From string
	// At is when the customer sent it (zero when missing or invalid).
	At time.Time
	// Type is Meta's message type (text, image, button, interactive, reaction, ...); unknown
	// types are kept as they are, with Raw for whoever understands them.
	Type string
	// Text is the human-readable part: text.body, button.text, the title of an interactive
	// button or list reply (the body of a flow reply), a media caption, a reaction emoji
	// (empty when a reaction is removed), order.text or system.body.
	Text string
	// Payload is the machine part of a reply: button.payload (a template quick-reply
	// payload), the id of an interactive reply, or a flow reply's response_json.
	Payload string
	// MediaID and MimeType describe image, video, document, audio and sticker messages.
	MediaID  string
	MimeType string
	// ContextID is the id of the message this one refers to: context.id of a reply or a
	// template button tap, else the message a reaction is for.
	ContextID string
	// ContactName is the sender's profile name from value.contacts.
	ContactName string
	// PhoneNumberID and DisplayPhoneNumber identify the business number that received it.
	PhoneNumberID      string
	DisplayPhoneNumber string
	// Errors are the message's own errors (unsupported types) followed by the
	// value-level errors of its change.
	Errors []Error
	// Raw is the message object exactly as received, for types and fields not mapped here.
	Raw json.RawMessage
}

// TemplateStatus is a "message_template_status_update" event.
type TemplateStatus struct {
	// Event is the new status: APPROVED, REJECTED, PENDING, PAUSED, DISABLED, FLAGGED,
	// REINSTATED, PENDING_DELETION, ...
	Event      string
	TemplateID string
	Name       string
	Language   string
	// Reason is Meta's reason code (NONE, INVALID_FORMAT, ...); empty when null.
	Reason string
	// Category is message_template_category (UTILITY, MARKETING, AUTHENTICATION).
	Category string
	// RejectionReason and RejectionRecommendation come from rejection_info (REJECTED with
	// INVALID_FORMAT).
	RejectionReason         string
	RejectionRecommendation string
	// DisableDate is disable_info.disable_date (DISABLED only).
	DisableDate time.Time
	// InfoTitle and InfoDescription come from other_info (locked or unlocked templates).
	InfoTitle       string
	InfoDescription string
	// WABAID is the WhatsApp Business Account id (entry.id) and At the entry time.
	WABAID string
	At     time.Time
}

// TemplateCategory is a "template_category_update" event: either a completed change
// (PreviousCategory → NewCategory) or an impending one (CorrectCategory from UpdateAt).
type TemplateCategory struct {
	TemplateID       string
	Name             string
	Language         string
	PreviousCategory string
	NewCategory      string
	// CorrectCategory and UpdateAt (category_update_timestamp) announce an automated change
	// that has not happened yet.
	CorrectCategory string
	UpdateAt        time.Time
	// WABAID is the WhatsApp Business Account id (entry.id) and At the entry time.
	WABAID string
	At     time.Time
}

// TemplateQuality is a "message_template_quality_update" event. Scores are GREEN, YELLOW,
// RED or UNKNOWN.
type TemplateQuality struct {
	TemplateID    string
	Name          string
	Language      string
	PreviousScore string
	NewScore      string
	// WABAID is the WhatsApp Business Account id (entry.id) and At the entry time.
	WABAID string
	At     time.Time
}

// UserPreference is one entry of a "user_preferences" change.
type UserPreference struct {
	// WaID is the customer's WhatsApp id (digits, no "+").
	WaID string
	// Category is PreferenceMarketing; others are kept as Meta sent them.
	Category string
	// Value is PreferenceStop or PreferenceResume.
	Value string
	// Detail is Meta's description ("User requested to stop marketing messages").
	Detail string
	// At is when the customer changed it (zero when missing or invalid): the order of
	// preferences, since Meta may deliver an older one after a newer one.
	At time.Time
	// PhoneNumberID and DisplayPhoneNumber identify the business number it is about; WABAID
	// is the WhatsApp Business Account (entry.id).
	PhoneNumberID      string
	DisplayPhoneNumber string
	WABAID             string
}

// Parse decodes one webhook POST body. It returns an error wrapping ErrMalformed only when
// the body is not JSON or not a "whatsapp_business_account" object with an entry array;
// unknown fields, change fields and message types, and values of an unexpected JSON type
// below entry level, are skipped.
func Parse(body []byte) (*Batch, error) {
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		// encoding/json keeps decoding past a type mismatch and reports the earliest one;
		// below entry level that is just a field we cannot use, not a broken webhook.
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) || te.Field == "" || te.Field == "object" || te.Field == "entry" {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	if p.Object != Object {
		return nil, fmt.Errorf("%w: object %q, want %q", ErrMalformed, p.Object, Object)
	}
	b := &Batch{}
	for i := range p.Entry {
		e := &p.Entry[i]
		for j := range e.Changes {
			b.add(e, &e.Changes[j])
		}
	}
	return b, nil
}

func (b *Batch) add(e *entry, c *change) {
	v := &c.Value
	switch c.Field {
	case FieldMessages:
		b.addMessages(v)
	case FieldTemplateStatus:
		b.TemplateStatus = append(b.TemplateStatus, TemplateStatus{
			Event:                   v.Event,
			TemplateID:              string(v.TemplateID),
			Name:                    v.TemplateName,
			Language:                v.TemplateLanguage,
			Reason:                  v.Reason,
			Category:                v.TemplateCategory,
			RejectionReason:         v.RejectionInfo.Reason,
			RejectionRecommendation: v.RejectionInfo.Recommendation,
			DisableDate:             v.DisableInfo.DisableDate.asTime(),
			InfoTitle:               v.OtherInfo.Title,
			InfoDescription:         v.OtherInfo.Description,
			WABAID:                  string(e.ID),
			At:                      e.Time.asTime(),
		})
	case FieldTemplateCategory:
		b.TemplateCategory = append(b.TemplateCategory, TemplateCategory{
			TemplateID:       string(v.TemplateID),
			Name:             v.TemplateName,
			Language:         v.TemplateLanguage,
			PreviousCategory: v.PreviousCategory,
			NewCategory:      v.NewCategory,
			CorrectCategory:  v.CorrectCategory,
			UpdateAt:         v.CategoryUpdateTimestamp.asTime(),
			WABAID:           string(e.ID),
			At:               e.Time.asTime(),
		})
	case FieldTemplateQuality:
		b.TemplateQuality = append(b.TemplateQuality, TemplateQuality{
			TemplateID:    string(v.TemplateID),
			Name:          v.TemplateName,
			Language:      v.TemplateLanguage,
			PreviousScore: v.PreviousQualityScore,
			NewScore:      v.NewQualityScore,
			WABAID:        string(e.ID),
			At:            e.Time.asTime(),
		})
	case FieldUserPreferences:
		for _, p := range v.UserPreferences {
			if p.WaID == "" {
				continue // about no one
			}
			b.UserPreferences = append(b.UserPreferences, UserPreference{
				WaID: string(p.WaID), Category: p.Category, Value: p.Value, Detail: p.Detail, At: p.Timestamp.asTime(),
				PhoneNumberID: string(v.Metadata.PhoneNumberID), DisplayPhoneNumber: string(v.Metadata.DisplayPhoneNumber),
				WABAID: string(e.ID),
			})
		}
	default:
		b.Unknown = append(b.Unknown, c.Field)
	}
}

func (b *Batch) addMessages(v *value) {
	valueErrs := convertErrors(v.Errors)
	b.Errors = append(b.Errors, valueErrs...)
	pnID, display := string(v.Metadata.PhoneNumberID), string(v.Metadata.DisplayPhoneNumber)

	for i := range v.Statuses {
		s := &v.Statuses[i]
		if s.ID == "" {
			// Without a message id a status cannot be applied to anything.
			continue
		}
		b.Statuses = append(b.Statuses, Status{
			MessageID:          string(s.ID),
			State:              s.Status,
			At:                 s.Timestamp.asTime(),
			RecipientID:        string(s.RecipientID),
			PhoneNumberID:      pnID,
			DisplayPhoneNumber: display,
			BizOpaque:          s.BizOpaque,
			Errors:             convertErrors(s.Errors),
			ConversationID:     string(s.Conversation.ID),
			ConversationOrigin: s.Conversation.Origin.Type,
			Billable:           s.Pricing.Billable,
			PricingCategory:    s.Pricing.Category,
		})
	}

	for i := range v.Messages {
		m := &v.Messages[i]
		if m.raw == nil {
			continue // null or not an object
		}
		in := Inbound{
			ID:                 string(m.ID),
			From:               string(m.From),
			At:                 m.Timestamp.asTime(),
			Type:               m.Type,
			ContextID:          m.Context.ID,
			ContactName:        contactName(v.Contacts, string(m.From)),
			PhoneNumberID:      pnID,
			DisplayPhoneNumber: display,
			Raw:                m.raw,
		}
		m.fill(&in)
		if errs := convertErrors(m.Errors); len(errs)+len(valueErrs) > 0 {
			in.Errors = append(errs, valueErrs...)
		}
		b.Messages = append(b.Messages, in)
	}
}

// fill sets the type-dependent fields of in.
func (m *message) fill(in *Inbound) {
	switch m.Type {
	case "text":
		in.Text = m.Text.Body
	case "button":
		in.Text, in.Payload = m.Button.Text, m.Button.Payload
	case "interactive":
		switch m.Interactive.Type {
		case "button_reply":
			in.Text, in.Payload = m.Interactive.ButtonReply.Title, m.Interactive.ButtonReply.ID
		case "list_reply":
			in.Text, in.Payload = m.Interactive.ListReply.Title, m.Interactive.ListReply.ID
		case "nfm_reply":
			in.Text, in.Payload = m.Interactive.NFMReply.Body, m.Interactive.NFMReply.ResponseJSON
		}
	case "image":
		in.setMedia(&m.Image)
	case "video":
		in.setMedia(&m.Video)
	case "document":
		in.setMedia(&m.Document)
	case "audio":
		in.setMedia(&m.Audio)
	case "sticker":
		in.setMedia(&m.Sticker)
	case "reaction":
		in.Text = m.Reaction.Emoji
		if in.ContextID == "" {
			in.ContextID = m.Reaction.MessageID
		}
	case "order":
		in.Text = m.Order.Text
	case "system":
		in.Text = m.System.Body
	}
}

func (in *Inbound) setMedia(md *media) {
	in.MediaID, in.MimeType, in.Text = string(md.ID), md.MimeType, md.Caption
}

// contactName finds the sender's profile name. Meta lists the senders of a change in
// value.contacts keyed by wa_id; a lone contact is the sender even when the ids are
// formatted differently.
func contactName(contacts []contact, from string) string {
	for i := range contacts {
		if string(contacts[i].WaID) == from {
			return contacts[i].Profile.Name
		}
	}
	if len(contacts) == 1 {
		return contacts[0].Profile.Name
	}
	return ""
}

func convertErrors(in []apiError) []Error {
	if len(in) == 0 {
		return nil
	}
	out := make([]Error, len(in))
	for i, e := range in {
		out[i] = Error{
			Code:    e.Code.asInt(),
			Title:   e.Title,
			Message: e.Message,
			Details: e.ErrorData.Details,
			Href:    e.Href,
		}
	}
	return out
}

// Wire types. value is the union of every change value shape Parse understands, because
// "field" (which names the shape) may come after "value" in the object and one pass into
// one struct is the cheapest decode.

type payload struct {
	Object string  `json:"object"`
	Entry  []entry `json:"entry"`
}

type entry struct {
	ID      flexString `json:"id"`
	Time    flexString `json:"time"`
	Changes []change   `json:"changes"`
}

type change struct {
	Field string `json:"field"`
	Value value  `json:"value"`
}

type value struct {
	// field "messages"
	Metadata struct {
		DisplayPhoneNumber flexString `json:"display_phone_number"`
		PhoneNumberID      flexString `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []contact   `json:"contacts"`
	Messages []message   `json:"messages"`
	Statuses []wireState `json:"statuses"`
	Errors   []apiError  `json:"errors"`

	// template fields
	TemplateID       flexString `json:"message_template_id"`
	TemplateName     string     `json:"message_template_name"`
	TemplateLanguage string     `json:"message_template_language"`

	Event            string `json:"event"`
	Reason           string `json:"reason"`
	TemplateCategory string `json:"message_template_category"`
	RejectionInfo    struct {
		Reason         string `json:"reason"`
		Recommendation string `json:"recommendation"`
	} `json:"rejection_info"`
	DisableInfo struct {
		DisableDate flexString `json:"disable_date"`
	} `json:"disable_info"`
	OtherInfo struct {
		Title       string `json:"title"`
		Description string `json:"description"`
	} `json:"other_info"`

	PreviousCategory        string     `json:"previous_category"`
	NewCategory             string     `json:"new_category"`
	CorrectCategory         string     `json:"correct_category"`
	CategoryUpdateTimestamp flexString `json:"category_update_timestamp"`

	PreviousQualityScore string `json:"previous_quality_score"`
	NewQualityScore      string `json:"new_quality_score"`

	// field "user_preferences"
	UserPreferences []wirePreference `json:"user_preferences"`
}

type wirePreference struct {
	WaID      flexString `json:"wa_id"`
	Detail    string     `json:"detail"`
	Category  string     `json:"category"`
	Value     string     `json:"value"`
	Timestamp flexString `json:"timestamp"`
}

type contact struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID flexString `json:"wa_id"`
}

type wireState struct {
	ID           flexString `json:"id"`
	Status       string     `json:"status"`
	Timestamp    flexString `json:"timestamp"`
	RecipientID  flexString `json:"recipient_id"`
	BizOpaque    string     `json:"biz_opaque_callback_data"`
	Errors       []apiError `json:"errors"`
	Conversation struct {
		ID     flexString `json:"id"`
		Origin struct {
			Type string `json:"type"`
		} `json:"origin"`
	} `json:"conversation"`
	Pricing struct {
		Billable bool   `json:"billable"`
		Category string `json:"category"`
	} `json:"pricing"`
}

type apiError struct {
	Code      flexString `json:"code"`
	Title     string     `json:"title"`
	Message   string     `json:"message"`
	Href      string     `json:"href"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type media struct {
	ID       flexString `json:"id"`
	MimeType string     `json:"mime_type"`
	Caption  string     `json:"caption"`
}

type reply struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

type message struct {
	raw json.RawMessage

	ID        flexString `json:"id"`
	From      flexString `json:"from"`
	Timestamp flexString `json:"timestamp"`
	Type      string     `json:"type"`
	Context   struct {
		ID string `json:"id"`
	} `json:"context"`
	Errors []apiError `json:"errors"`

	Text struct {
		Body string `json:"body"`
	} `json:"text"`
	Button struct {
		Text    string `json:"text"`
		Payload string `json:"payload"`
	} `json:"button"`
	Interactive struct {
		Type        string `json:"type"`
		ButtonReply reply  `json:"button_reply"`
		ListReply   reply  `json:"list_reply"`
		NFMReply    struct {
			Body         string `json:"body"`
			ResponseJSON string `json:"response_json"`
		} `json:"nfm_reply"`
	} `json:"interactive"`
	Image    media `json:"image"`
	Video    media `json:"video"`
	Document media `json:"document"`
	Audio    media `json:"audio"`
	Sticker  media `json:"sticker"`
	Reaction struct {
		MessageID string `json:"message_id"`
		Emoji     string `json:"emoji"`
	} `json:"reaction"`
	Order struct {
		Text string `json:"text"`
	} `json:"order"`
	System struct {
		Body string `json:"body"`
	} `json:"system"`
}

// UnmarshalJSON decodes the message and keeps a copy of its bytes for Inbound.Raw.
func (m *message) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '{' {
		return nil // null or not an object: nothing to keep
	}
	type fields message // drops this method, so the call below does not recurse
	var f fields
	// b is already known to be valid JSON, so the only possible error is a type mismatch of
	// some field; keep what decoded, as the top level does.
	_ = json.Unmarshal(b, &f)
	*m = message(f)
	m.raw = bytes.Clone(b)
	return nil
}

// flexString accepts a JSON string or number (Meta sends ids and unix timestamps as
// either, depending on the webhook) and keeps its text; any other JSON type leaves it empty.
type flexString string

// UnmarshalJSON implements json.Unmarshaler. It never fails: a value of an unexpected type
// is left empty rather than failing the whole webhook.
func (s *flexString) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	switch c := b[0]; {
	case c == '"':
		// Fast path for the usual plain ids: no escapes to undo, no copy via a string alloc
		// besides the result.
		if inner := b[1 : len(b)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			*s = flexString(inner)
			return nil
		}
		var str string
		if json.Unmarshal(b, &str) == nil {
			*s = flexString(str)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		*s = flexString(b)
	}
	return nil
}

// asTime reads s as unix seconds; zero time when empty, not a number or not positive.
func (s flexString) asTime() time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		// Some producers send float seconds ("1697043223.0" or 1.697043223e9).
		f, ferr := strconv.ParseFloat(string(s), 64)
		if ferr != nil || f < 0 || f > 1<<40 {
			return time.Time{}
		}
		n = int64(f)
	}
	if n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

// asInt reads s as an integer; 0 when it is not one.
func (s flexString) asInt() int {
	n, err := strconv.Atoi(string(s))
	if err != nil {
		return 0
	}
	return n
}
