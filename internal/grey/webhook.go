package grey

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/status"
)

// Webhook types (typeWebhook) that ParseWebhook understands.
const (
	TypeOutgoingMessageStatus = "outgoingMessageStatus"
	TypeIncomingMessage       = "incomingMessageReceived"
	TypeStateInstanceChanged  = "stateInstanceChanged"
)

// Status codes of failed grey reports (status.Report.Code).
const (
	// CodeFailed: the gateway could not send the message to WhatsApp.
	CodeFailed = "grey_failed"
	// CodeNoAccount: the recipient has no WhatsApp account; permanent for this channel.
	CodeNoAccount = "grey_noAccount"
	// CodeYellowCard: the instance is suspended for spam; the sender needs attention.
	CodeYellowCard = "grey_yellowCard"
	// CodeNotInGroup: the instance is not a member of the group chat.
	CodeNotInGroup = "grey_notInGroup"
)

// ErrMalformed is returned (wrapped) by ParseWebhook for a body that is not a GREEN-API
// notification, or one of a known type without its required fields.
var ErrMalformed = errors.New("grey: malformed webhook")

// Event is one parsed grey notification. Exactly one of Status, Inbound and State is set for
// the known types; a type Herald does not handle has only Type, Instance and At, and is to be
// acknowledged and ignored.
type Event struct {
	// Type is the typeWebhook.
	Type string
	// Instance is the instance id (instanceData.idInstance).
	Instance string
	// At is the event's timestamp (zero when absent).
	At time.Time

	// Status is an outgoingMessageStatus as a status report, matched to its job by
	// MessageID (the idMessage Send returned). It is nil for a status value Herald does not
	// know, which is ignored like an unknown type.
	Status *status.Report
	// FailKind says what a failed Status means for the job: Channel (fall back: failed,
	// noAccount, notInGroup) or Sender (yellowCard: the instance is suspended, fall back and
	// feed "yellowCard" to Client.ObserveState). Zero unless Status.State is failed.
	FailKind provider.Kind

	// Inbound is an incomingMessageReceived.
	Inbound *Inbound

	// State is a stateInstanceChanged's stateInstance, for Client.ObserveState.
	State string
}

// Inbound is a customer's message to the grey instance.
type Inbound struct {
	// MessageID is the idMessage.
	MessageID string
	// From is the sender in E.164 ("+79001234567").
	From string
	// Name is the sender's WhatsApp name, may be empty.
	Name string
	// Type is messageData.typeMessage (textMessage, extendedTextMessage, imageMessage, ...).
	Type string
	// Text is the text of a text message, or a file's caption; empty for other types.
	Text string
}

type webhook struct {
	TypeWebhook  string `json:"typeWebhook"`
	InstanceData struct {
		IDInstance json.Number `json:"idInstance"`
	} `json:"instanceData"`
	Timestamp     int64  `json:"timestamp"`
	IDMessage     string `json:"idMessage"`
	Status        string `json:"status"`
	Description   string `json:"description"`
	StateInstance string `json:"stateInstance"`
	SenderData    struct {
		ChatID     string `json:"chatId"`
		Sender     string `json:"sender"`
		SenderName string `json:"senderName"`
	} `json:"senderData"`
	MessageData struct {
		TypeMessage     string `json:"typeMessage"`
		TextMessageData struct {
			TextMessage string `json:"textMessage"`
		} `json:"textMessageData"`
		ExtendedTextMessageData struct {
			Text string `json:"text"`
		} `json:"extendedTextMessageData"`
		FileMessageData struct {
			Caption string `json:"caption"`
		} `json:"fileMessageData"`
	} `json:"messageData"`
}

// ParseWebhook parses a GREEN-API notification body. Unknown fields are ignored; unknown
// types come back with only Type set. Reasons are sanitised (no full phone numbers).
func ParseWebhook(body []byte) (Event, error) {
	var w webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if w.TypeWebhook == "" {
		return Event{}, fmt.Errorf("%w: no typeWebhook", ErrMalformed)
	}
	ev := Event{Type: w.TypeWebhook, Instance: w.InstanceData.IDInstance.String()}
	if w.Timestamp > 0 {
		ev.At = time.Unix(w.Timestamp, 0).UTC()
	}
	switch w.TypeWebhook {
	case TypeOutgoingMessageStatus:
		if w.IDMessage == "" || w.Status == "" {
			return Event{}, fmt.Errorf("%w: outgoingMessageStatus without idMessage or status", ErrMalformed)
		}
		ev.Status, ev.FailKind = report(w.IDMessage, w.Status, w.Description)
	case TypeIncomingMessage:
		from := chatNumber(w.SenderData.Sender)
		if from == "" {
			from = chatNumber(w.SenderData.ChatID)
		}
		if w.IDMessage == "" || from == "" {
			return Event{}, fmt.Errorf("%w: incomingMessageReceived without idMessage or a personal sender", ErrMalformed)
		}
		md := w.MessageData
		text := md.TextMessageData.TextMessage
		if text == "" {
			text = md.ExtendedTextMessageData.Text
		}
		if text == "" {
			text = md.FileMessageData.Caption
		}
		ev.Inbound = &Inbound{MessageID: w.IDMessage, From: "+" + from, Name: w.SenderData.SenderName,
			Type: md.TypeMessage, Text: text}
	case TypeStateInstanceChanged:
		if w.StateInstance == "" {
			return Event{}, fmt.Errorf("%w: stateInstanceChanged without stateInstance", ErrMalformed)
		}
		ev.State = w.StateInstance
	}
	return ev, nil
}

// report maps an outgoingMessageStatus to a status report; nil for an unknown status.
func report(id, st, description string) (*status.Report, provider.Kind) {
	r := &status.Report{MessageID: id, Channel: "grey"}
	desc := provider.Sanitize(description, maxReason)
	fail := func(code, reason string, kind provider.Kind) (*status.Report, provider.Kind) {
		r.State, r.Code, r.Reason = status.Failed, code, reason
		if desc != "" {
			r.Reason += ": " + desc
		}
		return r, kind
	}
	switch st {
	case "sent":
		r.State = status.Sent
	case "delivered":
		r.State = status.Delivered
	case "read":
		r.State = status.Read
	case "failed":
		return fail(CodeFailed, "the gateway could not send the message", provider.Channel)
	case "noAccount":
		return fail(CodeNoAccount, "the recipient has no WhatsApp account", provider.Channel)
	case "notInGroup":
		return fail(CodeNotInGroup, "the instance is not in the group chat", provider.Channel)
	case "yellowCard":
		return fail(CodeYellowCard, "the instance is suspended for spam (yellow card)", provider.Sender)
	default:
		return nil, 0
	}
	return r, 0
}

// chatNumber returns the digits of a personal chat id ("79001234567@c.us"), or "".
func chatNumber(chatID string) string {
	d, ok := strings.CutSuffix(chatID, "@c.us")
	if !ok || d == "" || strings.TrimLeft(d, "0123456789") != "" {
		return ""
	}
	if _, err := strconv.ParseUint(d, 10, 64); err != nil {
		return ""
	}
	return d
}
