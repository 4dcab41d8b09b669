package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// GREEN-API instance states (getStateInstance and stateInstanceChanged).
const (
	GreyAuthorized    = "authorized"
	GreyNotAuthorized = "notAuthorized"
	GreyBlocked       = "blocked"
	GreySleepMode     = "sleepMode"
	GreyStarting      = "starting"
	GreyYellowCard    = "yellowCard"
)

// ErrInvalidGrey is returned (wrapped) by [Sim.SetGreyState] and [Sim.GreyIncoming] for a
// request the simulator cannot carry out: an unknown state, no instance, a bad number.
var ErrInvalidGrey = errors.New("invalid grey request")

func validGreyState(st string) bool {
	switch st {
	case GreyAuthorized, GreyNotAuthorized, GreyBlocked, GreySleepMode, GreyStarting, GreyYellowCard:
		return true
	}
	return false
}

// greyStates is a copy-on-write map of instance states: the send path loads it without a
// lock. An instance that was never set is authorized.
type greyStates struct {
	mu sync.Mutex // serialises writers only
	m  atomic.Pointer[map[string]string]
}

// GreyState returns the state of a grey instance: "authorized" unless set otherwise.
func (s *Sim) GreyState(instance string) string {
	if m := s.greyStates.m.Load(); m != nil {
		if st, ok := (*m)[instance]; ok {
			return st
		}
	}
	return GreyAuthorized
}

// SetGreyState sets the state of a grey instance ("" means Config.GreyInstanceID). Sends to
// an instance that is not authorized are refused with GREEN-API's 400 answer (a yellowCard
// instance accepts them and reports yellowCard); a change of state is POSTed to
// GreyWebhookURL as a stateInstanceChanged notification. Each instance has its own state.
func (s *Sim) SetGreyState(instance, state string) error {
	if instance == "" {
		instance = s.cfg.GreyInstanceID
	}
	switch {
	case instance == "":
		return fmt.Errorf("%w: no instance given and Config.GreyInstanceID is empty", ErrInvalidGrey)
	case !s.servesInstance(instance):
		return fmt.Errorf("%w: instance %q is not one the simulator serves (GreyInstanceID, GreyInstanceIDs)", ErrInvalidGrey, instance)
	case !validGreyState(state):
		return fmt.Errorf("%w: state %q is not one of authorized, notAuthorized, blocked, sleepMode, starting, yellowCard", ErrInvalidGrey, state)
	}
	s.greyStates.mu.Lock()
	old := GreyAuthorized
	next := map[string]string{}
	if cur := s.greyStates.m.Load(); cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
		if v, ok := (*cur)[instance]; ok {
			old = v
		}
	}
	next[instance] = state
	s.greyStates.m.Store(&next)
	// Queued under the lock, so that two quick changes are reported in the order they
	// happened.
	if old != state {
		s.postGrey(instance, s.greyStateChanged(instance, state, time.Now()))
	}
	s.greyStates.mu.Unlock()
	return nil
}

// GreyInbound is a customer's message to a grey instance, injected with [Sim.GreyIncoming].
type GreyInbound struct {
	// Instance receives the message; "" means Config.GreyInstanceID.
	Instance string `json:"instance,omitempty"`
	// From is the customer's number, E.164 or digits.
	From string `json:"from"`
	// Text is the message text.
	Text string `json:"text"`
	// SenderName is the customer's WhatsApp name; default "Customer".
	SenderName string `json:"sender_name,omitempty"`
	// Extended sends the text as an extendedTextMessage (what WhatsApp uses for text with a
	// link or a quote) instead of a textMessage.
	Extended bool `json:"extended,omitempty"`
}

// GreyIncoming POSTs an incomingMessageReceived notification for in to GreyWebhookURL and
// returns its idMessage. It needs [Sim.Start] to be delivered.
func (s *Sim) GreyIncoming(in GreyInbound) (string, error) {
	if in.Instance == "" {
		in.Instance = s.cfg.GreyInstanceID
	}
	from := digitsOf(in.From)
	switch {
	case in.Instance == "":
		return "", fmt.Errorf("%w: no instance given and Config.GreyInstanceID is empty", ErrInvalidGrey)
	case !s.servesInstance(in.Instance):
		return "", fmt.Errorf("%w: instance %q is not one the simulator serves (GreyInstanceID, GreyInstanceIDs)", ErrInvalidGrey, in.Instance)
	case len(from) < 5:
		return "", fmt.Errorf("%w: from %q is not a phone number", ErrInvalidGrey, in.From)
	case in.Text == "":
		return "", fmt.Errorf("%w: text is empty", ErrInvalidGrey)
	case s.cfg.GreyWebhookURL == "":
		return "", fmt.Errorf("%w: Config.GreyWebhookURL is empty", ErrInvalidGrey)
	}
	if in.SenderName == "" {
		in.SenderName = "Customer"
	}
	id := s.nextID("")
	s.postGrey(in.Instance, s.greyIncoming(in, from, id, time.Now()))
	return id, nil
}

// postGrey queues a grey notification of an instance without blocking. State changes and
// inbound messages share one shard, so they arrive in the order they happened.
func (s *Sim) postGrey(instance string, body []byte) {
	if s.cfg.GreyWebhookURL == "" {
		return
	}
	cb := callback{method: "POST", url: s.cfg.GreyWebhookURL, body: body, bearer: s.greyWebhookTokenOf(instance)}
	select {
	case s.cbShards[0] <- cb:
	default:
		s.deliver.callbackDropped.Add(1)
		s.warnDrop(1, "queue full")
	}
}

type greyInstanceData struct {
	IDInstance   int64  `json:"idInstance"`
	Wid          string `json:"wid"`
	TypeInstance string `json:"typeInstance"`
}

func (s *Sim) greyInstance(instance string) greyInstanceData {
	id, _ := strconv.ParseInt(instance, 10, 64)
	return greyInstanceData{IDInstance: id, Wid: s.greyWidOf(instance) + "@c.us", TypeInstance: "whatsapp"}
}

// greyStateChanged is a GREEN-API stateInstanceChanged notification.
func (s *Sim) greyStateChanged(instance, state string, now time.Time) []byte {
	body, _ := json.Marshal(struct {
		TypeWebhook   string           `json:"typeWebhook"`
		InstanceData  greyInstanceData `json:"instanceData"`
		Timestamp     int64            `json:"timestamp"`
		StateInstance string           `json:"stateInstance"`
	}{"stateInstanceChanged", s.greyInstance(instance), now.Unix(), state})
	return body
}

// greyIncoming is a GREEN-API incomingMessageReceived notification with a text message.
func (s *Sim) greyIncoming(in GreyInbound, from, id string, now time.Time) []byte {
	type senderData struct {
		ChatID            string `json:"chatId"`
		ChatName          string `json:"chatName"`
		Sender            string `json:"sender"`
		SenderName        string `json:"senderName"`
		SenderContactName string `json:"senderContactName"`
	}
	type textData struct {
		TextMessage string `json:"textMessage"`
	}
	type extendedData struct {
		Text        string `json:"text"`
		Description string `json:"description"`
		Title       string `json:"title"`
	}
	type messageData struct {
		TypeMessage             string        `json:"typeMessage"`
		TextMessageData         *textData     `json:"textMessageData,omitempty"`
		ExtendedTextMessageData *extendedData `json:"extendedTextMessageData,omitempty"`
	}
	md := messageData{TypeMessage: "textMessage", TextMessageData: &textData{in.Text}}
	if in.Extended {
		md = messageData{TypeMessage: "extendedTextMessage", ExtendedTextMessageData: &extendedData{Text: in.Text}}
	}
	chat := from + "@c.us"
	body, _ := json.Marshal(struct {
		TypeWebhook  string           `json:"typeWebhook"`
		InstanceData greyInstanceData `json:"instanceData"`
		Timestamp    int64            `json:"timestamp"`
		IDMessage    string           `json:"idMessage"`
		SenderData   senderData       `json:"senderData"`
		MessageData  messageData      `json:"messageData"`
	}{
		TypeWebhook: "incomingMessageReceived", InstanceData: s.greyInstance(in.Instance),
		Timestamp: now.Unix(), IDMessage: id,
		SenderData: senderData{ChatID: chat, ChatName: in.SenderName, Sender: chat,
			SenderName: in.SenderName, SenderContactName: in.SenderName},
		MessageData: md,
	})
	return body
}

// noAccountSet turns Config.GreyNoAccount into a set of digit strings.
func noAccountSet(numbers []string) map[string]bool {
	set := make(map[string]bool, len(numbers))
	for _, n := range numbers {
		if d := digitsOf(strings.TrimSpace(n)); d != "" {
			set[d] = true
		}
	}
	return set
}
