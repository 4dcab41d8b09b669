package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Rule injects an error into matching sends. The first matching rule that fires decides.
type Rule struct {
	// Channel is "white", "sms" or "grey"; "" means white (grey when Instance is set).
	Channel string `json:"channel,omitempty"`
	// To is the recipient's digits without '+' ("79001234567"); "" matches any recipient.
	To string `json:"to,omitempty"`
	// PhoneNumberID limits a white rule to sends from one business number; "" matches any.
	PhoneNumberID string `json:"phone_number_id,omitempty"`
	// Instance limits a grey rule to sends from one instance; "" matches any. A rule with an
	// Instance and no Channel is a grey rule.
	Instance string `json:"instance,omitempty"`
	// Code is the Cloud API error code to answer (131026, 130429, 100, ...), or 0 with
	// HTTPStatus for a bare HTTP error.
	Code int `json:"code,omitempty"`
	// HTTPStatus is the HTTP status of the error. 0 takes the code's real status for white
	// (400 for most codes, 130429 and 131056 included; 401 for 190; see [CodeInfo]), 503 for
	// sms, and for grey the Code itself when it is an HTTP status (GREEN-API's 466), else 500.
	HTTPStatus int `json:"http_status,omitempty"`
	// Rate is the probability 0..1 that a matching request fails; 0 is treated as 1.
	Rate float64 `json:"rate,omitempty"`
	// Times makes the rule fail only this many times, then pass; 0 is forever.
	Times int `json:"times,omitempty"`
	// RetryAfter, in seconds, is sent as a Retry-After header with a grey error answer (a
	// 429, say); 0 sends none.
	RetryAfter int `json:"retry_after,omitempty"`
	// Async accepts the send, then reports a failed status (white, grey) or a failed
	// delivery report (sms) with Code instead of delivered.
	Async bool `json:"async,omitempty"`
}

// ErrInvalidRule is returned (wrapped) by [Rule.Validate] for a rule that can never be
// applied.
var ErrInvalidRule = errors.New("invalid rule")

// Validate reports whether r can be applied.
func (r Rule) Validate() error {
	if r.Channel != "" {
		if _, ok := channelIndex(r.Channel); !ok {
			return fmt.Errorf("%w: channel %q is not white, sms or grey", ErrInvalidRule, r.Channel)
		}
	}
	if r.Rate < 0 || r.Rate > 1 {
		return fmt.Errorf("%w: rate %v is not within 0..1", ErrInvalidRule, r.Rate)
	}
	if r.Times < 0 {
		return fmt.Errorf("%w: times %d is negative", ErrInvalidRule, r.Times)
	}
	if r.RetryAfter < 0 {
		return fmt.Errorf("%w: retry_after %d is negative", ErrInvalidRule, r.RetryAfter)
	}
	if r.HTTPStatus != 0 && (r.HTTPStatus < 400 || r.HTTPStatus > 599) {
		return fmt.Errorf("%w: http_status %d is not an error status", ErrInvalidRule, r.HTTPStatus)
	}
	ch := r.channelOrDefault()
	if r.PhoneNumberID != "" && ch != channelNames[chanWhite] {
		return fmt.Errorf("%w: phone_number_id applies to white rules, not %s", ErrInvalidRule, ch)
	}
	if r.Instance != "" && ch != channelNames[chanGrey] {
		return fmt.Errorf("%w: instance applies to grey rules, not %s", ErrInvalidRule, ch)
	}
	return nil
}

// channelOrDefault is the rule's channel: white unless it names one, or an Instance.
func (r Rule) channelOrDefault() string {
	switch {
	case r.Channel != "":
		return r.Channel
	case r.Instance != "":
		return channelNames[chanGrey]
	}
	return channelNames[chanWhite]
}

// rule is an installed Rule with its fire counter.
type rule struct {
	Rule
	channel int
	fired   atomic.Int64
}

// rules is a copy-on-write list: the request path loads it without a lock.
type rules struct {
	mu   sync.Mutex // serialises writers only
	list atomic.Pointer[[]*rule]
}

// AddRule installs r after the existing rules. An empty Channel means white (grey with an
// Instance), a '+' in To is ignored and a Rate of 0 means always. A rule that fails [Rule.Validate] is logged and
// ignored (the control API answers 400 instead).
func (s *Sim) AddRule(r Rule) {
	if err := s.addRule(r); err != nil {
		s.log.Warn("sim: ignoring a rule", "error", err)
	}
}

func (s *Sim) addRule(r Rule) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r.Channel = r.channelOrDefault()
	ch, _ := channelIndex(r.Channel)
	if r.To != "" {
		r.To = digitsOf(r.To)
	}
	if r.Rate == 0 {
		r.Rate = 1
	}
	s.rules.mu.Lock()
	defer s.rules.mu.Unlock()
	var next []*rule
	if cur := s.rules.list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, &rule{Rule: r, channel: ch})
	s.rules.list.Store(&next)
	return nil
}

// ClearRules removes every rule.
func (s *Sim) ClearRules() {
	s.rules.mu.Lock()
	s.rules.list.Store(nil)
	s.rules.mu.Unlock()
}

// Rules returns the installed rules.
func (s *Sim) Rules() []Rule {
	cur := s.rules.list.Load()
	if cur == nil {
		return []Rule{}
	}
	out := make([]Rule, len(*cur))
	for i, r := range *cur {
		out[i] = r.Rule
	}
	return out
}

// match returns the rule that fails this send from sender (the phone number id of a white
// send, the instance of a grey one, "" for sms) to to, or nil. A rule with Times counts a
// firing only when its dice say fail, so Times failures happen exactly.
func (s *Sim) match(channel int, sender, to string) *Rule {
	cur := s.rules.list.Load()
	if cur == nil {
		return nil
	}
	for _, r := range *cur {
		if r.channel != channel || (r.To != "" && r.To != to) {
			continue
		}
		if from := r.PhoneNumberID + r.Instance; from != "" && from != sender { // at most one is set
			continue
		}
		if r.Rate < 1 && rand.Float64() >= r.Rate {
			continue
		}
		if r.Times > 0 && r.fired.Add(1) > int64(r.Times) {
			continue
		}
		return &r.Rule
	}
	return nil
}

func randDuration(max time.Duration) time.Duration {
	return time.Duration(rand.Int64N(int64(max) + 1))
}
