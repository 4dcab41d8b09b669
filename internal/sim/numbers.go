package sim

import (
	"crypto/subtle"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/herald-notify/herald/internal/fleet"
)

// senderConfig is the configuration of each business number and grey instance, resolved
// once in New: the request path reads it without a lock.
type senderConfig struct {
	// numbers and instances are the ids served; nil serves any.
	numbers, instances map[string]bool
	// wabas are the WABA ids the template listing serves; nil serves any.
	wabas map[string]bool
	// anyToken: no Cloud API token is configured at all.
	anyToken bool
}

func newSenderConfig(c *Config) senderConfig {
	var sc senderConfig
	if c.PhoneNumberID != "" || len(c.PhoneNumberIDs) > 0 {
		sc.numbers = set(append([]string{c.PhoneNumberID}, c.PhoneNumberIDs...))
	}
	if c.GreyInstanceID != "" || len(c.GreyInstanceIDs) > 0 {
		sc.instances = set(append([]string{c.GreyInstanceID}, c.GreyInstanceIDs...))
	}
	if c.WABAID != "" || len(c.WABAIDs) > 0 {
		sc.wabas = set(append([]string{c.WABAID}, slices.Collect(maps.Values(c.WABAIDs))...))
	}
	sc.anyToken = c.Token == "" && len(c.Tokens) == 0
	return sc
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != "" {
			m[id] = true
		}
	}
	return m
}

// servesNumber tells whether the simulator serves a business phone number id.
func (s *Sim) servesNumber(id string) bool { return s.senders.numbers == nil || s.senders.numbers[id] }

// servesInstance tells whether the simulator serves a grey instance.
func (s *Sim) servesInstance(id string) bool {
	return s.senders.instances == nil || s.senders.instances[id]
}

// or returns m[key], or def when m has none.
func or(m map[string]string, key, def string) string {
	if v, ok := m[key]; ok && v != "" {
		return v
	}
	return def
}

// tokenOf is the Cloud API token of a number ("": any).
func (s *Sim) tokenOf(phoneID string) string { return or(s.cfg.Tokens, phoneID, s.cfg.Token) }

// appSecretOf is the secret that signs a number's webhooks.
func (s *Sim) appSecretOf(phoneID string) string {
	return or(s.cfg.AppSecrets, phoneID, s.cfg.AppSecret)
}

// displayOf is a number's display phone number.
func (s *Sim) displayOf(phoneID string) string {
	return or(s.cfg.DisplayPhoneNumbers, phoneID, s.cfg.DisplayPhoneNumber)
}

// wabaOf is the WABA of a number: the entry id of its webhooks.
func (s *Sim) wabaOf(phoneID string) string {
	if w := or(s.cfg.WABAIDs, phoneID, s.cfg.WABAID); w != "" {
		return w
	}
	return "0"
}

// greyTokenOf is an instance's apiTokenInstance ("": any).
func (s *Sim) greyTokenOf(instance string) string {
	return or(s.cfg.GreyTokens, instance, s.cfg.GreyToken)
}

// greyWidOf is an instance's own number.
func (s *Sim) greyWidOf(instance string) string {
	return or(s.cfg.GreyWids, instance, s.cfg.DisplayPhoneNumber)
}

// greyWebhookTokenOf is the Bearer token of an instance's notifications ("": none).
func (s *Sim) greyWebhookTokenOf(instance string) string {
	return or(s.cfg.GreyWebhookTokens, instance, s.cfg.GreyWebhookToken)
}

// anyTokenMatches reports whether tok is Token or any number's token: the template listing
// belongs to a WABA, not to one number.
func (s *Sim) anyTokenMatches(tok string) bool {
	if s.senders.anyToken {
		return true
	}
	ok := s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
	for _, t := range s.cfg.Tokens {
		ok = ok || t != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1
	}
	return ok
}

// maxTracked bounds the numbers and instances counted one by one: a simulator that serves any
// id must not grow without bound on ids made up by a caller.
const maxTracked = 4096

// senderCounters counts outcomes per number or instance. Loads take no lock.
type senderCounters struct {
	m sync.Map // id → *channelCounters
	n atomic.Int64
}

// get returns the counters of id, creating them; nil beyond maxTracked ids.
func (sc *senderCounters) get(id string) *channelCounters {
	if v, ok := sc.m.Load(id); ok {
		return v.(*channelCounters)
	}
	if sc.n.Load() >= maxTracked {
		return nil
	}
	v, loaded := sc.m.LoadOrStore(id, &channelCounters{})
	if !loaded {
		sc.n.Add(1)
	}
	return v.(*channelCounters)
}

func (sc *senderCounters) snapshot() map[string]ChannelStats {
	out := map[string]ChannelStats{}
	sc.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*channelCounters).stats()
		return true
	})
	return out
}

func (sc *senderCounters) reset() {
	sc.m.Clear()
	sc.n.Store(0)
}

func (c *channelCounters) stats() ChannelStats {
	return ChannelStats{
		Accepted: c.accepted.Load(), Failed: c.failed.Load(), AsyncFailed: c.asyncFailed.Load(), Rejected: c.rejected.Load(),
	}
}

// counters are the counters an outcome goes to: its channel's and, when the request names a
// number or instance the simulator serves, that one's.
type counters struct{ channel, sender *channelCounters }

func (c counters) accept()    { c.each(func(x *channelCounters) { x.accepted.Add(1) }) }
func (c counters) fail()      { c.each(func(x *channelCounters) { x.failed.Add(1) }) }
func (c counters) asyncFail() { c.each(func(x *channelCounters) { x.asyncFailed.Add(1) }) }
func (c counters) reject()    { c.each(func(x *channelCounters) { x.rejected.Add(1) }) }

func (c counters) each(fn func(*channelCounters)) {
	fn(c.channel)
	if c.sender != nil {
		fn(c.sender)
	}
}

// WithFleet returns c serving every sender of a fleet: its white numbers (with their tokens,
// app secrets, WABAs and display numbers) and grey instances (with their tokens and webhook
// tokens). The single fields of c stay the defaults; SMS accounts are not told apart (Kannel
// credentials stay KannelUser and KannelPassword).
func (c Config) WithFleet(f *fleet.Fleet) Config {
	c.PhoneNumberIDs = slices.Clone(c.PhoneNumberIDs)
	c.GreyInstanceIDs = slices.Clone(c.GreyInstanceIDs)
	c.Tokens, c.AppSecrets = maps.Clone(c.Tokens), maps.Clone(c.AppSecrets)
	c.WABAIDs, c.DisplayPhoneNumbers = maps.Clone(c.WABAIDs), maps.Clone(c.DisplayPhoneNumbers)
	c.GreyTokens, c.GreyWebhookTokens = maps.Clone(c.GreyTokens), maps.Clone(c.GreyWebhookTokens)
	put := func(m *map[string]string, k, v string) {
		if v == "" {
			return
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[k] = v
	}
	for _, s := range f.Senders {
		switch s.Kind {
		case fleet.KindWhite:
			c.PhoneNumberIDs = append(c.PhoneNumberIDs, s.PhoneNumberID)
			put(&c.Tokens, s.PhoneNumberID, s.Token.Reveal())
			put(&c.AppSecrets, s.PhoneNumberID, s.AppSecret.Reveal())
			put(&c.WABAIDs, s.PhoneNumberID, s.WABAID)
			put(&c.DisplayPhoneNumbers, s.PhoneNumberID, s.DisplayPhoneNumber)
		case fleet.KindGrey:
			c.GreyInstanceIDs = append(c.GreyInstanceIDs, s.InstanceID)
			put(&c.GreyTokens, s.InstanceID, s.Token.Reveal())
			put(&c.GreyWebhookTokens, s.InstanceID, s.WebhookToken.Reveal())
		}
	}
	return c
}
