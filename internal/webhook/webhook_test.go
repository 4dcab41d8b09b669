package webhook

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/testutil"
)

// fixtures returns every variant of every testdata/whatsapp/webhooks/*.json file as "file/variant" → body.
func fixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(testutil.WhatsAppFixtures(), "webhooks", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no fixtures: %v", err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var variants map[string]json.RawMessage
		if err := json.Unmarshal(data, &variants); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		for name, body := range variants {
			out[strings.TrimSuffix(filepath.Base(f), ".json")+"/"+name] = body
		}
	}
	return out
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func oneStatus(t *testing.T, b *Batch) Status {
	t.Helper()
	if len(b.Statuses) != 1 || len(b.Messages) != 0 {
		t.Fatalf("want 1 status and no messages, got %d statuses, %d messages", len(b.Statuses), len(b.Messages))
	}
	return b.Statuses[0]
}

func oneMessage(t *testing.T, b *Batch) Inbound {
	t.Helper()
	if len(b.Messages) != 1 || len(b.Statuses) != 0 {
		t.Fatalf("want 1 message and no statuses, got %d messages, %d statuses", len(b.Messages), len(b.Statuses))
	}
	m := b.Messages[0]
	if !json.Valid(m.Raw) || !strings.Contains(string(m.Raw), `"id"`) {
		t.Errorf("Raw = %q, want the message object", m.Raw)
	}
	return m
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// fixtureStatus checks the fields shared by the pywa status fixtures.
func fixtureStatus(t *testing.T, b *Batch, state string, at int64) Status {
	t.Helper()
	s := oneStatus(t, b)
	eq(t, "MessageID", s.MessageID, "wamid.xyzxyz")
	eq(t, "State", s.State, state)
	eq(t, "At", s.At, unix(at))
	eq(t, "RecipientID", s.RecipientID, "972987654321")
	eq(t, "PhoneNumberID", s.PhoneNumberID, "1122334455667")
	eq(t, "DisplayPhoneNumber", s.DisplayPhoneNumber, "972123456789")
	return s
}

func billedService(t *testing.T, s Status) {
	t.Helper()
	eq(t, "ConversationID", s.ConversationID, "7270432eae37498234f4444b35ffc5")
	eq(t, "ConversationOrigin", s.ConversationOrigin, "service")
	eq(t, "Billable", s.Billable, true)
	eq(t, "PricingCategory", s.PricingCategory, "service")
	eq(t, "BizOpaque", s.BizOpaque, "")
	if s.Errors != nil {
		t.Errorf("Errors = %v, want none", s.Errors)
	}
}

// fixtureMessage checks the fields shared by the pywa inbound fixtures.
func fixtureMessage(t *testing.T, b *Batch, typ string, at int64) Inbound {
	t.Helper()
	m := oneMessage(t, b)
	eq(t, "From", m.From, "972987654321")
	eq(t, "Type", m.Type, typ)
	eq(t, "At", m.At, unix(at))
	eq(t, "ContactName", m.ContactName, "Test Name")
	eq(t, "PhoneNumberID", m.PhoneNumberID, "1122334455667")
	eq(t, "DisplayPhoneNumber", m.DisplayPhoneNumber, "972123456789")
	return m
}

func isMedia(t *testing.T, m Inbound, id, mime, caption string) {
	t.Helper()
	eq(t, "MediaID", m.MediaID, id)
	eq(t, "MimeType", m.MimeType, mime)
	eq(t, "Text", m.Text, caption)
	eq(t, "Payload", m.Payload, "")
}

func TestParseFixtures(t *testing.T) {
	t.Parallel()
	checks := map[string]func(t *testing.T, b *Batch){
		"message_status/sent": func(t *testing.T, b *Batch) {
			billedService(t, fixtureStatus(t, b, "sent", 1698266945))
		},
		"message_status/delivered": func(t *testing.T, b *Batch) {
			billedService(t, fixtureStatus(t, b, "delivered", 1698266945))
		},
		"message_status/read": func(t *testing.T, b *Batch) {
			billedService(t, fixtureStatus(t, b, "read", 1689380458))
		},
		"message_status/played": func(t *testing.T, b *Batch) {
			billedService(t, fixtureStatus(t, b, "played", 1689380458))
		},
		"message_status/failed": func(t *testing.T, b *Batch) {
			s := fixtureStatus(t, b, "failed", 1689380458)
			want := []Error{{
				Code:    130472,
				Title:   "User's number is part of an experiment",
				Message: "User's number is part of an experiment",
				Details: "Failed to send message because this user's phone number is part of an experiment",
				Href:    "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
			}}
			if !slices.Equal(s.Errors, want) {
				t.Errorf("Errors = %+v, want %+v", s.Errors, want)
			}
			eq(t, "Billable", s.Billable, false)
			eq(t, "ConversationID", s.ConversationID, "")
		},
		"message_status/with_tracker": func(t *testing.T, b *Batch) {
			s := fixtureStatus(t, b, "sent", 1698266945)
			eq(t, "BizOpaque", s.BizOpaque, "some data")
			eq(t, "ConversationOrigin", s.ConversationOrigin, "service")
		},
		"message_status/group": func(t *testing.T, b *Batch) {
			s := oneStatus(t, b)
			eq(t, "MessageID", s.MessageID, "<WHATSAPP_MESSAGE_ID>")
			eq(t, "State", s.State, "read")
			eq(t, "RecipientID", s.RecipientID, "fowefinoewcnw")
			eq(t, "PhoneNumberID", s.PhoneNumberID, "<BUSINESS_PHONE_NUMBER_ID>")
			eq(t, "At", s.At, unix(1698266945))
		},

		"message/text": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "text", 1697043223)
			eq(t, "ID", m.ID, "wamid.xyzxyz")
			eq(t, "Text", m.Text, "Body Text")
			eq(t, "ContextID", m.ContextID, "")
			if m.Errors != nil {
				t.Errorf("Errors = %v, want none", m.Errors)
			}
		},
		"message/image": func(t *testing.T, b *Batch) {
			isMedia(t, fixtureMessage(t, b, "image", 1697043379), "65463453", "image/jpeg", "")
		},
		"message/media_with_url": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "image", 1697043379)
			isMedia(t, m, "65463453", "image/jpeg", "")
			if !strings.Contains(string(m.Raw), "lookaside.fbsbx.com") {
				t.Errorf("Raw lost the media url: %s", m.Raw)
			}
		},
		"message/video": func(t *testing.T, b *Batch) {
			isMedia(t, fixtureMessage(t, b, "video", 1697044362), "765756756", "video/mp4", "caption")
		},
		"message/document": func(t *testing.T, b *Batch) {
			isMedia(t, fixtureMessage(t, b, "document", 1697043666), "1234567890987654321", "application/pdf", "caption")
		},
		"message/audio": func(t *testing.T, b *Batch) {
			isMedia(t, fixtureMessage(t, b, "audio", 1697043509), "1234567890987654321", "audio/ogg; codecs=opus", "")
		},
		"message/voice": func(t *testing.T, b *Batch) {
			isMedia(t, fixtureMessage(t, b, "audio", 1697043473), "1234567890987654321", "audio/ogg; codecs=opus", "")
		},
		"message/static_sticker": func(t *testing.T, b *Batch) {
			isMedia(t, fixtureMessage(t, b, "sticker", 1697043760), "1234567890987654321", "image/webp", "")
		},
		"message/animated_sticker": func(t *testing.T, b *Batch) {
			isMedia(t, fixtureMessage(t, b, "sticker", 1697043785), "1234567890987654321", "image/webp", "")
		},
		"message/reaction": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "reaction", 1697044456)
			eq(t, "Text", m.Text, "\U0001F62E")
			eq(t, "ContextID", m.ContextID, "wamid.yzxyzx=")
		},
		"message/unreaction_empty": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "reaction", 1697044456)
			eq(t, "Text", m.Text, "")
			eq(t, "ContextID", m.ContextID, "wamid.yzxyzx=")
		},
		"message/unreaction_no_emoji": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "reaction", 1697044456)
			eq(t, "Text", m.Text, "")
			eq(t, "ContextID", m.ContextID, "wamid.yzxyzx=")
		},
		"message/current_location": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "location", 1697044557)
			eq(t, "Text", m.Text, "")
			if !strings.Contains(string(m.Raw), "12.25089") {
				t.Errorf("Raw lost the coordinates: %s", m.Raw)
			}
		},
		"message/chosen_location": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "location", 1697044557)
			if !strings.Contains(string(m.Raw), "Facebook HQ") {
				t.Errorf("Raw lost the place name: %s", m.Raw)
			}
		},
		"message/contacts": func(t *testing.T, b *Batch) {
			// The shared contacts (Chandler, Monica, Rachel) must not be mistaken for the
			// sender's profile in value.contacts.
			m := fixtureMessage(t, b, "contacts", 1697044621)
			eq(t, "Text", m.Text, "")
		},
		"message/order": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "order", 1697044668)
			eq(t, "Text", m.Text, "")
			if !strings.Contains(string(m.Raw), "FRENCH_FRIES") {
				t.Errorf("Raw lost the order items: %s", m.Raw)
			}
		},
		"message/unsupported": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "unsupported", 1697044706)
			want := []Error{{Code: 131051, Title: "Message type unknown", Message: "Message type unknown", Details: "Message type is currently not supported."}}
			if !slices.Equal(m.Errors, want) {
				t.Errorf("Errors = %+v, want %+v", m.Errors, want)
			}
			if len(b.Errors) != 0 {
				t.Errorf("Batch.Errors = %v, want none (the error is the message's own)", b.Errors)
			}
		},
		"message/unsupported_with_type": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "unsupported", 1697044706)
			if len(m.Errors) != 1 || m.Errors[0].Code != 131051 {
				t.Errorf("Errors = %+v, want code 131051", m.Errors)
			}
		},
		"message/reply": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "text", 1697044746)
			eq(t, "Text", m.Text, "replied text")
			eq(t, "ContextID", m.ContextID, "wamid.xyzxyz==")
		},
		"message/forwarded": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "text", 1697044815)
			eq(t, "Text", m.Text, "forwarded text")
			eq(t, "ContextID", m.ContextID, "")
		},
		"message/forwarded_many_times": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "text", 1697044968)
			eq(t, "Text", m.Text, "text forwarded many times")
		},
		"message/interactive_message_with_err": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "interactive", 1700505494)
			eq(t, "ID", m.ID, "wamid.wegrchytvwcggt=")
			eq(t, "ContextID", m.ContextID, "wamid.gvwegfretge==")
			eq(t, "Text", m.Text, "")
			want := []Error{{Code: 131000, Title: "Something went wrong", Message: "Something went wrong", Details: "Unsupported webhook payload"}}
			if !slices.Equal(m.Errors, want) {
				t.Errorf("Inbound.Errors = %+v, want the value-level %+v", m.Errors, want)
			}
			if !slices.Equal(b.Errors, want) {
				t.Errorf("Batch.Errors = %+v, want %+v", b.Errors, want)
			}
		},
		"message/referral": func(t *testing.T, b *Batch) {
			m := fixtureMessage(t, b, "text", 1697045000)
			eq(t, "ID", m.ID, "wamid.ID")
			eq(t, "Text", m.Text, "BODY")
		},

		"template_status_update/approved": func(t *testing.T, b *Batch) {
			if len(b.TemplateStatus) != 1 {
				t.Fatalf("TemplateStatus = %+v, want 1", b.TemplateStatus)
			}
			want := TemplateStatus{
				Event: "APPROVED", TemplateID: "1689556908129832", Name: "order_confirmation",
				Language: "en_US", Reason: "NONE", Category: "UTILITY",
				WABAID: "102290129340398", At: unix(1751247548),
			}
			eq(t, "TemplateStatus", b.TemplateStatus[0], want)
		},
		"template_status_update/rejected": func(t *testing.T, b *Batch) {
			if len(b.TemplateStatus) != 1 {
				t.Fatalf("TemplateStatus = %+v, want 1", b.TemplateStatus)
			}
			ts := b.TemplateStatus[0]
			eq(t, "Event", ts.Event, "REJECTED")
			eq(t, "Reason", ts.Reason, "INVALID_FORMAT")
			eq(t, "TemplateID", ts.TemplateID, "1689556908129835")
			eq(t, "Name", ts.Name, "abandoned_cart")
			eq(t, "Language", ts.Language, "en")
			eq(t, "Category", ts.Category, "MARKETING")
			if !strings.HasPrefix(ts.RejectionReason, "Your template has parameters placed next to each other") {
				t.Errorf("RejectionReason = %q", ts.RejectionReason)
			}
			if !strings.HasPrefix(ts.RejectionRecommendation, "Separate parameters") {
				t.Errorf("RejectionRecommendation = %q", ts.RejectionRecommendation)
			}
		},
		"template_category_update/marketing": func(t *testing.T, b *Batch) {
			if len(b.TemplateCategory) != 1 {
				t.Fatalf("TemplateCategory = %+v, want 1", b.TemplateCategory)
			}
			want := TemplateCategory{
				TemplateID: "12345678", Name: "my_message_template", Language: "he",
				NewCategory: "MARKETING", WABAID: "57438975935", At: unix(1750344882),
			}
			eq(t, "TemplateCategory", b.TemplateCategory[0], want)
		},
		"template_quality_update/yellow": func(t *testing.T, b *Batch) {
			if len(b.TemplateQuality) != 1 {
				t.Fatalf("TemplateQuality = %+v, want 1", b.TemplateQuality)
			}
			want := TemplateQuality{
				TemplateID: "806312974732579", Name: "welcome_template", Language: "en_US",
				PreviousScore: "GREEN", NewScore: "YELLOW", WABAID: "102290129340398", At: unix(1674864290),
			}
			eq(t, "TemplateQuality", b.TemplateQuality[0], want)
		},
	}

	all := fixtures(t)
	for name := range checks {
		if _, ok := all[name]; !ok {
			t.Errorf("check %q names no fixture variant", name)
		}
	}
	for name, body := range all {
		check, ok := checks[name]
		if !ok {
			t.Errorf("fixture variant %q has no check: add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := Parse(body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(b.Unknown) != 0 {
				t.Errorf("Unknown = %v, want none", b.Unknown)
			}
			n := len(b.Statuses) + len(b.Messages) + len(b.TemplateStatus) + len(b.TemplateCategory) + len(b.TemplateQuality)
			if n != 1 {
				t.Errorf("batch holds %d events, want exactly 1: %+v", n, b)
			}
			check(t, b)
		})
	}
}

// wrap builds a webhook body with one change per (field, value) pair, in one entry.
func wrap(fieldValues ...string) string {
	var changes []string
	for i := 0; i+1 < len(fieldValues); i += 2 {
		changes = append(changes, `{"field":"`+fieldValues[i]+`","value":`+fieldValues[i+1]+`}`)
	}
	return `{"object":"whatsapp_business_account","entry":[{"id":"waba1","time":1700000000,"changes":[` +
		strings.Join(changes, ",") + `]}]}`
}

// inbound wraps messages in a "messages" change from one contact.
func inbound(messages ...string) string {
	return wrap("messages", `{"messaging_product":"whatsapp",
		"metadata":{"display_phone_number":"79001110000","phone_number_id":"555"},
		"contacts":[{"profile":{"name":"Ivan"},"wa_id":"79001234567"}],
		"messages":[`+strings.Join(messages, ",")+`]}`)
}

// The pywa fixtures carry no template button tap and no interactive reply, and a few shapes
// Meta documents (numeric ids, nulls, several changes per POST) are not in them either; these
// bodies are written to the Cloud API webhook reference.
func TestParseSynthetic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, b *Batch)
	}{
		{
			name: "template quick-reply button",
			body: inbound(`{"context":{"from":"79001110000","id":"wamid.sent1"},"from":"79001234567","id":"wamid.in1",
				"timestamp":"1700000001","type":"button","button":{"payload":"STOP_PROMO","text":"Unsubscribe"}}`),
			check: func(t *testing.T, b *Batch) {
				m := oneMessage(t, b)
				eq(t, "Type", m.Type, "button")
				eq(t, "Text", m.Text, "Unsubscribe")
				eq(t, "Payload", m.Payload, "STOP_PROMO")
				eq(t, "ContextID", m.ContextID, "wamid.sent1")
				eq(t, "ContactName", m.ContactName, "Ivan")
				eq(t, "PhoneNumberID", m.PhoneNumberID, "555")
				eq(t, "At", m.At, unix(1700000001))
			},
		},
		{
			name: "interactive button reply",
			body: inbound(`{"context":{"id":"wamid.sent2"},"from":"79001234567","id":"wamid.in2","timestamp":"1700000002",
				"type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"confirm-123","title":"Confirm"}}}`),
			check: func(t *testing.T, b *Batch) {
				m := oneMessage(t, b)
				eq(t, "Text", m.Text, "Confirm")
				eq(t, "Payload", m.Payload, "confirm-123")
				eq(t, "ContextID", m.ContextID, "wamid.sent2")
			},
		},
		{
			name: "interactive list reply",
			body: inbound(`{"from":"79001234567","id":"wamid.in3","timestamp":"1700000003","type":"interactive",
				"interactive":{"type":"list_reply","list_reply":{"id":"slot-9","title":"9:00","description":"Morning"}}}`),
			check: func(t *testing.T, b *Batch) {
				m := oneMessage(t, b)
				eq(t, "Text", m.Text, "9:00")
				eq(t, "Payload", m.Payload, "slot-9")
			},
		},
		{
			name: "flow reply",
			body: inbound(`{"from":"79001234567","id":"wamid.in4","timestamp":"1700000004","type":"interactive",
				"interactive":{"type":"nfm_reply","nfm_reply":{"name":"flow","body":"Sent","response_json":"{\"a\":1}"}}}`),
			check: func(t *testing.T, b *Batch) {
				m := oneMessage(t, b)
				eq(t, "Text", m.Text, "Sent")
				eq(t, "Payload", m.Payload, `{"a":1}`)
			},
		},
		{
			name: "unknown message type is kept with its raw object",
			body: inbound(`{"from":"79001234567","id":"wamid.in5","timestamp":"1700000005","type":"hologram","hologram":{"x":1}}`),
			check: func(t *testing.T, b *Batch) {
				m := oneMessage(t, b)
				eq(t, "Type", m.Type, "hologram")
				eq(t, "ID", m.ID, "wamid.in5")
				eq(t, "Text", m.Text, "")
				if !strings.Contains(string(m.Raw), `"hologram":{"x":1}`) {
					t.Errorf("Raw = %s", m.Raw)
				}
			},
		},
		{
			name: "unknown change field next to a status",
			body: wrap(
				"account_update", `{"event":"VERIFIED_ACCOUNT"}`,
				"messages", `{"statuses":[{"id":"wamid.out1","status":"delivered","timestamp":"1700000006","recipient_id":"79001234567"}]}`,
				"phone_number_quality_update", `{"current_limit":"TIER_10K"}`,
			),
			check: func(t *testing.T, b *Batch) {
				s := oneStatus(t, b)
				eq(t, "State", s.State, "delivered")
				if want := []string{"account_update", "phone_number_quality_update"}; !slices.Equal(b.Unknown, want) {
					t.Errorf("Unknown = %v, want %v", b.Unknown, want)
				}
			},
		},
		{
			name: "unknown fields everywhere are ignored",
			body: `{"object":"whatsapp_business_account","new_top":[1,2],"entry":[{"id":"w","extra":{"a":null},"changes":[
				{"field":"messages","value":{"statuses":[{"id":"wamid.out2","status":"read","future":{"deep":[true]},
				"timestamp":"1700000007","recipient_id":"7900"}]},"more":1}]}]}`,
			check: func(t *testing.T, b *Batch) {
				eq(t, "State", oneStatus(t, b).State, "read")
			},
		},
		{
			name: "numbers where strings are usual, and the reverse",
			body: wrap("messages", `{"metadata":{"phone_number_id":555,"display_phone_number":79001110000},
				"statuses":[{"id":"wamid.out3","status":"failed","timestamp":1700000008,"recipient_id":79001234567,
				"errors":[{"code":"131026","title":"Message undeliverable"}]}]}`),
			check: func(t *testing.T, b *Batch) {
				s := oneStatus(t, b)
				eq(t, "At", s.At, unix(1700000008))
				eq(t, "RecipientID", s.RecipientID, "79001234567")
				eq(t, "PhoneNumberID", s.PhoneNumberID, "555")
				eq(t, "DisplayPhoneNumber", s.DisplayPhoneNumber, "79001110000")
				if len(s.Errors) != 1 || s.Errors[0].Code != 131026 {
					t.Errorf("Errors = %+v, want code 131026", s.Errors)
				}
			},
		},
		{
			name: "several entries and changes keep their order",
			body: `{"object":"whatsapp_business_account","entry":[
				{"id":"a","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"p1"},"statuses":[
					{"id":"wamid.1","status":"sent","timestamp":"1"},{"id":"wamid.2","status":"delivered","timestamp":"2"}]}}]},
				{"id":"b","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"p2"},"statuses":[
					{"id":"wamid.3","status":"read","timestamp":"3"}]}},
					{"field":"messages","value":{"metadata":{"phone_number_id":"p2"},"messages":[
					{"from":"1","id":"wamid.4","timestamp":"4","type":"text","text":{"body":"hi"}}]}}]}]}`,
			check: func(t *testing.T, b *Batch) {
				var got []string
				for _, s := range b.Statuses {
					got = append(got, s.MessageID+"@"+s.PhoneNumberID)
				}
				if want := []string{"wamid.1@p1", "wamid.2@p1", "wamid.3@p2"}; !slices.Equal(got, want) {
					t.Errorf("statuses = %v, want %v", got, want)
				}
				if len(b.Messages) != 1 || b.Messages[0].Text != "hi" || b.Messages[0].PhoneNumberID != "p2" {
					t.Errorf("messages = %+v", b.Messages)
				}
			},
		},
		{
			name: "wrong JSON types below entry level are skipped, the rest survives",
			body: `{"object":"whatsapp_business_account","entry":[{"id":"w","changes":[
				{"field":"messages","value":{"statuses":"oops"}},
				{"field":"messages","value":{"statuses":[{"id":"wamid.ok","status":"sent","timestamp":"1700000009"}],
					"messages":[{"from":"7900","id":"wamid.in6","type":"text","text":"not an object","timestamp":"1700000010"}]}},
				{"field":7,"value":[]}]}]}`,
			check: func(t *testing.T, b *Batch) {
				if len(b.Statuses) != 1 || b.Statuses[0].MessageID != "wamid.ok" {
					t.Errorf("statuses = %+v", b.Statuses)
				}
				if len(b.Messages) != 1 || b.Messages[0].ID != "wamid.in6" || b.Messages[0].At != unix(1700000010) {
					t.Errorf("messages = %+v", b.Messages)
				}
			},
		},
		{
			name: "null messages and statuses without an id are dropped",
			body: wrap("messages", `{"statuses":[null,{"status":"sent"},{"id":"wamid.x","status":"sent"}],
				"messages":[null,5,{"id":"wamid.y","type":"text","text":{"body":"ok"},"timestamp":"bad"}]}`),
			check: func(t *testing.T, b *Batch) {
				eq(t, "len(Statuses)", len(b.Statuses), 1)
				eq(t, "len(Messages)", len(b.Messages), 1)
				if len(b.Messages) == 1 {
					eq(t, "Text", b.Messages[0].Text, "ok")
					eq(t, "At (invalid timestamp)", b.Messages[0].At, time.Time{})
				}
			},
		},
		{
			name: "contact name is matched by wa_id",
			body: wrap("messages", `{"contacts":[{"profile":{"name":"Anna"},"wa_id":"111"},{"profile":{"name":"Boris"},"wa_id":"222"}],
				"messages":[{"from":"222","id":"m1","type":"text","text":{"body":"b"}},{"from":"111","id":"m2","type":"text","text":{"body":"a"}},
				{"from":"333","id":"m3","type":"text","text":{"body":"c"}}]}`),
			check: func(t *testing.T, b *Batch) {
				var got []string
				for _, m := range b.Messages {
					got = append(got, m.ContactName)
				}
				if want := []string{"Boris", "Anna", ""}; !slices.Equal(got, want) {
					t.Errorf("names = %q, want %q", got, want)
				}
			},
		},
		{
			name: "template status with null reason, disable and other info",
			body: wrap(
				"message_template_status_update", `{"event":"DISABLED","message_template_id":77,"message_template_name":"promo",
					"message_template_language":"ru","reason":null,"disable_info":{"disable_date":"1751234563"}}`,
				"message_template_status_update", `{"event":"PAUSED","message_template_id":"78","message_template_name":"promo2",
					"message_template_language":"ru","reason":"NONE","other_info":{"title":"FIRST_PAUSE","description":"Paused for 3 hours"}}`,
			),
			check: func(t *testing.T, b *Batch) {
				if len(b.TemplateStatus) != 2 {
					t.Fatalf("TemplateStatus = %+v", b.TemplateStatus)
				}
				d, p := b.TemplateStatus[0], b.TemplateStatus[1]
				eq(t, "Event", d.Event, "DISABLED")
				eq(t, "TemplateID", d.TemplateID, "77")
				eq(t, "Reason", d.Reason, "")
				eq(t, "DisableDate", d.DisableDate, unix(1751234563))
				eq(t, "WABAID", d.WABAID, "waba1")
				eq(t, "At", d.At, unix(1700000000))
				eq(t, "Event", p.Event, "PAUSED")
				eq(t, "TemplateID", p.TemplateID, "78")
				eq(t, "InfoTitle", p.InfoTitle, "FIRST_PAUSE")
				eq(t, "InfoDescription", p.InfoDescription, "Paused for 3 hours")
			},
		},
		{
			name: "impending and completed category changes",
			body: wrap(
				"template_category_update", `{"message_template_id":1,"message_template_name":"t","message_template_language":"ru",
					"correct_category":"MARKETING","new_category":"UTILITY","category_update_timestamp":1751500000}`,
				"template_category_update", `{"message_template_id":1,"message_template_name":"t","message_template_language":"ru",
					"previous_category":"UTILITY","new_category":"MARKETING"}`,
			),
			check: func(t *testing.T, b *Batch) {
				want := []TemplateCategory{
					{TemplateID: "1", Name: "t", Language: "ru", NewCategory: "UTILITY", CorrectCategory: "MARKETING",
						UpdateAt: unix(1751500000), WABAID: "waba1", At: unix(1700000000)},
					{TemplateID: "1", Name: "t", Language: "ru", PreviousCategory: "UTILITY", NewCategory: "MARKETING",
						WABAID: "waba1", At: unix(1700000000)},
				}
				if !slices.Equal(b.TemplateCategory, want) {
					t.Errorf("TemplateCategory = %+v, want %+v", b.TemplateCategory, want)
				}
			},
		},
		{
			// Meta's user_preferences reference: the timestamp is a number, the metadata names
			// the business number.
			name: "user preferences: marketing stopped and resumed",
			body: wrap("user_preferences", `{"messaging_product":"whatsapp",
				"metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
				"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],
				"user_preferences":[
					{"wa_id":"16505551234","detail":"User requested to stop marketing messages","category":"marketing_messages","value":"stop","timestamp":1731705721},
					{"wa_id":16505559999,"detail":"User requested to resume marketing messages","category":"marketing_messages","value":"resume","timestamp":"1731705722"},
					{"detail":"no wa_id: about no one","category":"marketing_messages","value":"stop","timestamp":1731705723}
				]}`),
			check: func(t *testing.T, b *Batch) {
				want := []UserPreference{
					{WaID: "16505551234", Category: PreferenceMarketing, Value: PreferenceStop, Detail: "User requested to stop marketing messages",
						At: unix(1731705721), PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881", WABAID: "waba1"},
					{WaID: "16505559999", Category: PreferenceMarketing, Value: PreferenceResume, Detail: "User requested to resume marketing messages",
						At: unix(1731705722), PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881", WABAID: "waba1"},
				}
				if !slices.Equal(b.UserPreferences, want) {
					t.Errorf("UserPreferences = %+v, want %+v", b.UserPreferences, want)
				}
				eq(t, "Unknown", len(b.Unknown), 0)
			},
		},
		{
			name: "empty entry list",
			body: `{"object":"whatsapp_business_account","entry":[]}`,
			check: func(t *testing.T, b *Batch) {
				n := len(b.Statuses) + len(b.Messages) + len(b.TemplateStatus) + len(b.TemplateCategory) + len(b.TemplateQuality) + len(b.Unknown)
				eq(t, "events", n, 0)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !json.Valid([]byte(tt.body)) {
				t.Fatalf("test body is not valid JSON: %s", tt.body)
			}
			b, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, b)
		})
	}
}

func TestParseRawIsACopy(t *testing.T) {
	t.Parallel()
	body := []byte(inbound(`{"from":"79001234567","id":"wamid.c","type":"text","text":{"body":"hello"}}`))
	b, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	before := string(b.Messages[0].Raw)
	for i := range body {
		body[i] = 'x' // the handler may reuse its read buffer for the next request
	}
	eq(t, "Raw after the body was overwritten", string(b.Messages[0].Raw), before)
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	sent := fixtures(t)["message_status/sent"]
	tests := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"whitespace", " \n\t"},
		{"not JSON", "hub.challenge=123"},
		{"truncated", string(sent[:len(sent)/2])},
		{"truncated by one byte", string(sent[:len(sent)-1])},
		{"trailing garbage", string(sent) + "}"},
		{"null", "null"},
		{"array", `[{"object":"whatsapp_business_account"}]`},
		{"string", `"whatsapp_business_account"`},
		{"number", "42"},
		{"other object", `{"object":"page","entry":[]}`},
		{"instagram", `{"object":"instagram","entry":[{"id":"1","changes":[{"field":"messages","value":{}}]}]}`},
		{"no object", `{"entry":[]}`},
		{"object not a string", `{"object":1,"entry":[]}`},
		{"entry not an array", `{"object":"whatsapp_business_account","entry":{"id":"1"}}`},
		{"entry items not objects", `{"object":"whatsapp_business_account","entry":[1,2]}`},
		{"invalid UTF-16 escape mid-string", `{"object":"whatsapp_business_account","entry":[{"id":"\u12"}]}`},
		{"deep nesting", strings.Repeat("[", 20000) + strings.Repeat("]", 20000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := Parse([]byte(tt.body))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse error = %v, want ErrMalformed", err)
			}
			if b != nil {
				t.Errorf("Parse batch = %+v, want nil on error", b)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, body := range fixtures(f) {
		f.Add(body)
	}
	f.Add([]byte(inbound(`{"from":"1","id":"2","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"x","title":"y"}}}`)))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":"x"}}]}]}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[1]}`))
	f.Add([]byte(wrap("user_preferences", `{"user_preferences":[{"wa_id":"1","category":"marketing_messages","value":"stop","timestamp":1}]}`)))
	f.Add([]byte(`{"object":"whatsapp_business_account"`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := Parse(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if b != nil {
				t.Fatal("batch returned with an error")
			}
			return
		}
		if b == nil {
			t.Fatal("nil batch without an error")
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		for _, m := range b.Messages {
			if !json.Valid(m.Raw) {
				t.Fatalf("Raw is not JSON: %q", m.Raw)
			}
		}
		for _, s := range b.Statuses {
			if s.MessageID == "" {
				t.Fatal("status without a message id")
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	body := fixtures(b)["message_status/sent"]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		batch, err := Parse(body)
		if err != nil || len(batch.Statuses) != 1 {
			b.Fatalf("Parse: %v", err)
		}
	}
}
