package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/webhook"
)

// simEvent has the simulator post one business account event and returns the body it
// signed, checked against the number's app secret.
func simEvent(t *testing.T, post func(*sim.Sim) error) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := webhook.Verify("secret-b", b, r.Header.Get("X-Hub-Signature-256")); err != nil {
			t.Errorf("signature: %v", err)
		}
		select {
		case got <- b:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	s := sim.New(sim.Config{PhoneNumberIDs: []string{"200"}, WebhookURL: srv.URL, AppSecret: "secret-b",
		AppSecrets: map[string]string{"200": "secret-b"}, WABAIDs: map[string]string{"200": "waba-b"},
		DisplayPhoneNumbers: map[string]string{"200": "74950001122"}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.Start(ctx)
	if err := post(s); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("the simulator posted nothing")
		return nil
	}
}

func TestParseNumberEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		post   func(*sim.Sim) error
		want   webhook.NumberEvent
		target webhook.Target
	}{
		{"quality downgrade", func(s *sim.Sim) error {
			return s.QualityUpdate(sim.QualityUpdate{PhoneNumberID: "200", Event: "DOWNGRADE", CurrentLimit: "TIER_1K", OldLimit: "TIER_10K"})
		}, webhook.NumberEvent{Field: webhook.FieldPhoneNumberQuality, Event: "DOWNGRADE", WABAID: "waba-b", DisplayPhoneNumber: "74950001122",
			CurrentLimit: "TIER_1K", OldLimit: "TIER_10K"},
			webhook.Target{Field: webhook.FieldPhoneNumberQuality, EntryID: "waba-b", DisplayPhoneNumber: "74950001122"}},
		{"account restriction", func(s *sim.Sim) error {
			return s.AccountUpdate(sim.AccountUpdate{PhoneNumberID: "200", Event: "ACCOUNT_RESTRICTION",
				RestrictionInfo: []sim.Restriction{{RestrictionType: "RESTRICTED_BIZ_INITIATED_MESSAGING", Expiration: 1700000000}}})
		}, webhook.NumberEvent{Field: webhook.FieldAccountUpdate, Event: "ACCOUNT_RESTRICTION", WABAID: "waba-b", DisplayPhoneNumber: "74950001122",
			Restrictions: []webhook.Restriction{{Type: "RESTRICTED_BIZ_INITIATED_MESSAGING", Expires: time.Unix(1700000000, 0).UTC()}}},
			webhook.Target{Field: webhook.FieldAccountUpdate, EntryID: "waba-b", DisplayPhoneNumber: "74950001122"}},
		{"violation", func(s *sim.Sim) error {
			return s.AccountUpdate(sim.AccountUpdate{PhoneNumberID: "200", Event: "ACCOUNT_VIOLATION", ViolationInfo: &sim.ViolationInfo{ViolationType: "SCAM"}})
		}, webhook.NumberEvent{Field: webhook.FieldAccountUpdate, Event: "ACCOUNT_VIOLATION", WABAID: "waba-b", DisplayPhoneNumber: "74950001122", Violation: "SCAM"},
			webhook.Target{Field: webhook.FieldAccountUpdate, EntryID: "waba-b", DisplayPhoneNumber: "74950001122"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := simEvent(t, tt.post)
			evs, err := webhook.ParseNumberEvents(body)
			if err != nil || len(evs) != 1 {
				t.Fatalf("%v %v", evs, err)
			}
			got := evs[0]
			if got.At.IsZero() {
				t.Error("no entry time")
			}
			got.At = time.Time{}
			if a, b := mustString(got), mustString(tt.want); a != b {
				t.Errorf("got  %s\nwant %s", a, b)
			}
			ts, err := webhook.Targets(body)
			if err != nil || len(ts) != 1 || ts[0] != tt.target {
				t.Errorf("targets %+v %v, want %+v", ts, err, tt.target)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		want       []webhook.Target
		err        bool
	}{
		{"two numbers", `{"object":"whatsapp_business_account","entry":[{"id":"w1","changes":[
			{"field":"messages","value":{"metadata":{"phone_number_id":"111"}}},
			{"field":"messages","value":{"metadata":{"phone_number_id":222}}}]}]}`,
			[]webhook.Target{{Field: "messages", EntryID: "w1", PhoneNumberID: "111"}, {Field: "messages", EntryID: "w1", PhoneNumberID: "222"}}, false},
		{"template status", `{"object":"whatsapp_business_account","entry":[{"id":"w2","changes":[{"field":"message_template_status_update","value":{"event":"APPROVED"}}]}]}`,
			[]webhook.Target{{Field: "message_template_status_update", EntryID: "w2"}}, false},
		{"wrong type below entry", `{"object":"whatsapp_business_account","entry":[{"id":"w3","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":{}}}}]}]}`,
			[]webhook.Target{{Field: "messages", EntryID: "w3"}}, false},
		{"not JSON", `<html>`, nil, true},
		{"another object", `{"object":"page","entry":[]}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := webhook.Targets([]byte(tt.body))
			if tt.err {
				if !errors.Is(err, webhook.ErrMalformed) {
					t.Fatalf("err %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || mustString(got) != mustString(tt.want) {
				t.Errorf("got %+v %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func mustString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
