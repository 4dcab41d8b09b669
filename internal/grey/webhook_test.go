package grey_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/grey"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

func TestParseWebhookSamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want grey.Event
	}{
		{"outgoing_status_delivered.json", grey.Event{
			Type: grey.TypeOutgoingMessageStatus, Instance: "1101000001", At: time.Unix(1588091580, 0).UTC(),
			Status: &status.Report{Channel: "grey", MessageID: "BAE5F4886F6F2D05", State: status.Delivered},
		}},
		{"outgoing_status_noaccount.json", grey.Event{
			Type: grey.TypeOutgoingMessageStatus, Instance: "1101000001", At: time.Unix(1588091581, 0).UTC(),
			Status: &status.Report{Channel: "grey", MessageID: "BAE5F4886F6F2D06", State: status.Failed, Code: grey.CodeNoAccount,
				Reason: "the recipient has no WhatsApp account: The phone number " + phone.Mask("79001234568") + " does not have a WhatsApp account"},
			FailKind: provider.Channel,
		}},
		{"outgoing_status_yellowcard.json", grey.Event{
			Type: grey.TypeOutgoingMessageStatus, Instance: "1101000001", At: time.Unix(1588091582, 0).UTC(),
			Status: &status.Report{Channel: "grey", MessageID: "BAE5F4886F6F2D07", State: status.Failed, Code: grey.CodeYellowCard,
				Reason: "the instance is suspended for spam (yellow card)"},
			FailKind: provider.Sender,
		}},
		{"incoming_text.json", grey.Event{
			Type: grey.TypeIncomingMessage, Instance: "1101000001", At: time.Unix(1588091590, 0).UTC(),
			Inbound: &grey.Inbound{MessageID: "F7AEC1B7086ECDC7E6E45923F5EDB825", From: "+79001234568", Name: "Ivan",
				Type: "textMessage", Text: "СТОП"},
		}},
		{"incoming_extended_text.json", grey.Event{
			Type: grey.TypeIncomingMessage, Instance: "1101000001", At: time.Unix(1705898347, 0).UTC(),
			Inbound: &grey.Inbound{MessageID: "BACB52BE2EDD30CAD9", From: "+79001234569", Name: "Anna",
				Type: "extendedTextMessage", Text: "Where is my order? https://shop.example/orders/123456"},
		}},
		{"state_instance_changed.json", grey.Event{
			Type: grey.TypeStateInstanceChanged, Instance: "1101000001", At: time.Unix(1586700690, 0).UTC(),
			State: grey.StateBlocked,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := grey.ParseWebhook(body)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != nil && strings.Contains(got.Status.Reason, "79001234568") {
				t.Errorf("reason keeps the full number: %q", got.Status.Reason)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseWebhook(%s)\n got  %+v %+v %+v\n want %+v %+v %+v", tt.file, got, got.Status, got.Inbound, tt.want, tt.want.Status, tt.want.Inbound)
			}
		})
	}
}

func TestParseWebhookEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		malformed bool
		check     func(t *testing.T, ev grey.Event)
	}{
		{name: "not JSON", body: `<html>`, malformed: true},
		{name: "no typeWebhook", body: `{"idMessage":"X","status":"sent"}`, malformed: true},
		{name: "status without idMessage", body: `{"typeWebhook":"outgoingMessageStatus","status":"sent"}`, malformed: true},
		{name: "incoming from a group only", body: `{"typeWebhook":"incomingMessageReceived","idMessage":"X","senderData":{"chatId":"120363@g.us"}}`, malformed: true},
		{name: "state without stateInstance", body: `{"typeWebhook":"stateInstanceChanged"}`, malformed: true},
		{name: "unknown type ignored", body: `{"typeWebhook":"incomingCall","instanceData":{"idInstance":7},"from":"79001234567@c.us"}`,
			check: func(t *testing.T, ev grey.Event) {
				if ev.Type != "incomingCall" || ev.Instance != "7" || ev.Status != nil || ev.Inbound != nil || ev.State != "" {
					t.Errorf("got %+v", ev)
				}
			}},
		{name: "unknown status ignored", body: `{"typeWebhook":"outgoingMessageStatus","idMessage":"X","status":"pending"}`,
			check: func(t *testing.T, ev grey.Event) {
				if ev.Status != nil || ev.FailKind != 0 {
					t.Errorf("got %+v", ev)
				}
			}},
		{name: "failed with a description", body: `{"typeWebhook":"outgoingMessageStatus","idMessage":"X","status":"failed","description":"  upstream\nerror "}`,
			check: func(t *testing.T, ev grey.Event) {
				want := status.Report{Channel: "grey", MessageID: "X", State: status.Failed, Code: grey.CodeFailed, Reason: "the gateway could not send the message: upstream error"}
				if ev.Status == nil || *ev.Status != want || ev.FailKind != provider.Channel {
					t.Errorf("got %+v %+v", ev, ev.Status)
				}
			}},
		{name: "group message from a member", body: `{"typeWebhook":"incomingMessageReceived","idMessage":"X","senderData":{"chatId":"120363@g.us","sender":"79001234567@c.us"},"messageData":{"typeMessage":"imageMessage","fileMessageData":{"caption":"фото"}}}`,
			check: func(t *testing.T, ev grey.Event) {
				if ev.Inbound == nil || ev.Inbound.From != "+79001234567" || ev.Inbound.Text != "фото" || ev.Inbound.Type != "imageMessage" {
					t.Errorf("got %+v", ev.Inbound)
				}
			}},
		{name: "instance id as a string", body: `{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":"1101"},"stateInstance":"authorized"}`,
			check: func(t *testing.T, ev grey.Event) {
				if ev.Instance != "1101" || ev.State != "authorized" {
					t.Errorf("got %+v", ev)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := grey.ParseWebhook([]byte(tt.body))
			if tt.malformed {
				if !errors.Is(err, grey.ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, ev)
		})
	}
}

// TestSimulatorWebhooksParse checks the simulator's grey notifications against the parser:
// statuses of a normal send, noAccount, yellowCard and an injected inbound message.
func TestSimulatorWebhooksParse(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []grey.Event
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := grey.ParseWebhook(body)
		if err != nil {
			t.Errorf("simulator posted %s: %v", body, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	const absent = "+79005550000"
	e := startSim(t, sim.Config{GreyWebhookURL: recv.URL, GreyNoAccount: []string{absent}})
	c := e.client(nil)
	ctx := t.Context()
	find := func(pred func(grey.Event) bool) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range events {
				if pred(ev) {
					return true
				}
			}
			return false
		}
	}
	statusOf := func(id, state, code string) func() bool {
		return find(func(ev grey.Event) bool {
			return ev.Status != nil && ev.Status.MessageID == id && ev.Status.State == state && ev.Status.Code == code
		})
	}

	ok, err := c.Send(ctx, grey.Message{To: to, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{status.Sent, status.Delivered, status.Read} {
		testutil.Eventually(t, 5*time.Second, statusOf(ok.MessageID, st, ""), "%s status", st)
	}

	gone, err := c.Send(ctx, grey.Message{To: absent, Text: "hi"})
	if err != nil {
		t.Fatalf("a number without WhatsApp is accepted, then reported: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, statusOf(gone.MessageID, status.Failed, grey.CodeNoAccount), "noAccount status")

	if err := e.sim.SetGreyState("", sim.GreyYellowCard); err != nil {
		t.Fatal(err)
	}
	warned, err := c.Send(ctx, grey.Message{To: to, Text: "hi"})
	if err != nil {
		t.Fatalf("a yellowCard instance accepts and queues: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, statusOf(warned.MessageID, status.Failed, grey.CodeYellowCard), "yellowCard status")
	testutil.Eventually(t, 5*time.Second, find(func(ev grey.Event) bool { return ev.State == grey.StateYellowCard }), "stateInstanceChanged")

	id, err := e.sim.GreyIncoming(sim.GreyInbound{From: "+79001112233", Text: "STOP", Extended: true})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, find(func(ev grey.Event) bool {
		in := ev.Inbound
		return in != nil && in.MessageID == id && in.From == "+79001112233" && in.Text == "STOP" &&
			in.Type == "extendedTextMessage" && ev.Instance == instance
	}), "incomingMessageReceived")
}
