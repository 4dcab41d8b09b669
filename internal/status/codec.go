package status

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/herald-notify/herald/internal/jsonw"
)

// UnmarshalJSON accepts the empty object cjson writes for an empty Lua table in place of an
// empty array or map.
func (r *Record) UnmarshalJSON(b []byte) error {
	if rec, ok := parseRecord(string(b)); ok {
		*r = *rec
		return nil
	}
	return r.unmarshalSlow(b)
}

// unmarshalSlow is UnmarshalJSON through encoding/json: the reference parseRecord must
// agree with, and the path for any input parseRecord leaves to it.
func (r *Record) unmarshalSlow(b []byte) error {
	type plain Record
	var aux struct {
		plain
		History  json.RawMessage `json:"history,omitempty"`
		Channels json.RawMessage `json:"channels,omitempty"`
		Early    json.RawMessage `json:"early,omitempty"`
		EarlyCh  json.RawMessage `json:"early_ch,omitempty"`
		Metadata json.RawMessage `json:"metadata,omitempty"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*r = Record(aux.plain)
	for _, f := range []struct {
		raw json.RawMessage
		dst any
	}{{aux.History, &r.History}, {aux.Channels, &r.Channels}, {aux.Early, &r.Early}, {aux.EarlyCh, &r.EarlyChannels}, {aux.Metadata, &r.Metadata}} {
		if len(f.raw) == 0 || string(f.raw) == "{}" || string(f.raw) == "[]" || string(f.raw) == "null" {
			continue
		}
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalRecord decodes a stored record: by parseRecord when it can, else encoding/json.
func unmarshalRecord(s string) (*Record, error) {
	if rec, ok := parseRecord(s); ok {
		return rec, nil
	}
	var r Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// decode reads the record JSON of a script's reply.
func decode(v any) (*Record, error) {
	s, _ := v.(string)
	rec, err := unmarshalRecord(s)
	if err != nil {
		return nil, fmt.Errorf("status: bad record: %w", err)
	}
	return rec, nil
}

// The scripts' replies, in the shapes their lua/*.lua headers give.

// beginReply reads begin.lua's {verdict, record JSON, wait ms, window open}.
func beginReply(res []any) (Admission, error) {
	rec, err := decode(res[1])
	if err != nil {
		return Admission{}, err
	}
	return Admission{
		Verdict:    Verdict(res[0].(string)),
		Record:     rec,
		Wait:       time.Duration(res[2].(int64)) * time.Millisecond,
		WindowOpen: res[3].(int64) == 1,
	}, nil
}

// attemptReply reads attempt.lua's {old state, record JSON}: no JSON when there is no record.
func attemptReply(res []string) (old string, rec *Record, err error) {
	if res[1] == "" {
		return "", nil, ErrNotFound
	}
	rec, err = decode(res[1])
	return res[0], rec, err
}

// createReply reads create.lua's reply: 1 and an empty string when it created the record, else
// 0 and the existing record's JSON, or 0, an empty string and the tombstone (gone) of a
// record that left Redis for the history.
func createReply(res []any) (created bool, raw, gone string, err error) {
	if len(res) != 2 && len(res) != 3 {
		return false, "", "", fmt.Errorf("status create: unexpected reply %v", res)
	}
	n, _ := res[0].(int64)
	raw, _ = res[1].(string)
	if len(res) == 3 {
		gone, _ = res[2].(string)
	}
	return n == 1, raw, gone, nil
}

// settleReply reads settle.lua's {old state, record JSON, 'ok'|'busy'}.
func settleReply(res []string) (old string, rec *Record, err error) {
	rec, err = decode(res[1])
	if err == nil && res[2] == "busy" {
		err = ErrBusy
	}
	return res[0], rec, err
}

// statusReply reads status.lua's {old state, record JSON, 'changed'|'same'|'parked'|'missing'}.
func statusReply(res []string) (old string, rec *Record, changed bool, err error) {
	if res[2] == "missing" {
		return "", nil, false, ErrNotFound
	}
	rec, err = decode(res[1])
	return res[0], rec, res[2] == "changed", err
}

// parseRecord decodes a record as cjson and encoding/json write it, without reflection and
// with its strings sharing the input's memory: the scripts answer with the record on every
// call, and encoding/json spent more CPU on it than anything else in the worker. ok is false
// for anything outside that written form (whitespace, null, an unknown or repeated key, a
// surrogate escape, invalid UTF-8, a number that is not a plain integer, malformed JSON):
// the caller then decodes with encoding/json, which gives the same Record for every input
// parseRecord accepts (TestParseRecordMatchesEncodingJSON, FuzzParseRecord).
func parseRecord(s string) (*Record, bool) {
	p := recParser{s: s}
	r := &Record{}
	// encoding/json matches keys case-insensitively and merges a repeated object key into
	// the same value: object leaves both to it (unknown or repeated keys fail).
	ok := p.object(func(key string) (uint32, bool) {
		switch key {
		case "id":
			return 1 << 0, p.str(&r.ID)
		case "state":
			return 1 << 1, p.str(&r.State)
		case "reason":
			return 1 << 2, p.str(&r.Reason)
		case "to":
			return 1 << 3, p.str(&r.To)
		case "template":
			return 1 << 4, p.str(&r.Template)
		case "priority":
			return 1 << 5, p.str(&r.Priority)
		case "campaign":
			return 1 << 6, p.str(&r.Campaign)
		case "tenant":
			return 1 << 7, p.str(&r.Tenant)
		case "channels":
			return 1 << 8, p.strings(&r.Channels)
		case "channel":
			return 1 << 9, p.str(&r.Channel)
		case "channel_idx":
			return 1 << 10, p.int(&r.ChannelIdx)
		case "attempts":
			return 1 << 11, p.int(&r.Attempts)
		case "provider_message_id":
			return 1 << 12, p.str(&r.ProviderMessageID)
		case "send_at":
			return 1 << 13, p.str(&r.SendAt)
		case "created_at":
			return 1 << 14, p.str(&r.CreatedAt)
		case "updated_at":
			return 1 << 15, p.str(&r.UpdatedAt)
		case "history":
			return 1 << 16, p.history(&r.History)
		case "metadata":
			return 1 << 17, p.strMap(&r.Metadata)
		case "claim":
			return 1 << 18, p.claim(&r.Claim)
		case "resume":
			return 1 << 19, p.bool(&r.Resume)
		case "early":
			return 1 << 20, p.strMap(&r.Early)
		case "early_ch":
			return 1 << 21, p.strMap(&r.EarlyChannels)
		case "op":
			return 1 << 22, p.str(&r.Op)
		case "op_old":
			return 1 << 23, p.str(&r.OpOld)
		case "dlq":
			return 1 << 24, p.str(&r.DeadLetter)
		}
		return 0, true
	})
	if !ok {
		return nil, false
	}
	return r, p.i == len(p.s)
}

// recParser reads the JSON subset parseRecord accepts.
type recParser struct {
	s string
	i int
}

// byte consumes c if it is next.
func (p *recParser) byte(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// key reads an object key and its colon.
func (p *recParser) key() (string, bool) {
	var k string
	if !p.str(&k) || !p.byte(':') {
		return "", false
	}
	return k, true
}

// str reads a string. Strings without escapes are slices of the input.
func (p *recParser) str(dst *string) bool {
	if !p.byte('"') {
		return false
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			if !utf8.ValidString(v) { // encoding/json would replace the bad bytes
				return false
			}
			*dst = v
			return true
		case c == '\\':
			return p.strEscaped(dst, start)
		case c < 0x20:
			return false
		}
		p.i++
	}
	return false
}

// strEscaped finishes a string with escapes, from start (just after the opening quote).
// Surrogate escapes (\ud83d...) are left to encoding/json, which pairs or replaces them.
func (p *recParser) strEscaped(dst *string, start int) bool {
	b := make([]byte, 0, p.i-start+16)
	b = append(b, p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(b) {
				return false
			}
			*dst = string(b)
			return true
		case c < 0x20:
			return false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			return false
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if p.i+4 > len(p.s) {
				return false
			}
			r, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
			if err != nil || utf16.IsSurrogate(rune(r)) {
				return false
			}
			b = utf8.AppendRune(b, rune(r))
			p.i += 4
		default:
			return false
		}
	}
	return false
}

// int reads a JSON integer that fits an int with room to spare.
func (p *recParser) int(dst *int) bool {
	var n int64
	if !p.int64(&n) {
		return false
	}
	*dst = int(n)
	return true
}

func (p *recParser) int64(dst *int64) bool {
	start := p.i
	p.byte('-')
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	nd := p.i - digits
	// No leading zero (invalid JSON), at most 18 digits (no overflow), and no fraction or
	// exponent (encoding/json refuses those for an int field with its own error).
	if nd == 0 || nd > 18 || (nd > 1 && p.s[digits] == '0') {
		return false
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		return false
	}
	n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	if err != nil {
		return false
	}
	*dst = n
	return true
}

func (p *recParser) bool(dst *bool) bool {
	switch {
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		*dst = true
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		*dst = false
	default:
		return false
	}
	return true
}

// empty consumes the "{}" or "[]" that UnmarshalJSON reads as no value (cjson writes an empty
// Lua table as an object).
func (p *recParser) empty() bool {
	if strings.HasPrefix(p.s[p.i:], "{}") || strings.HasPrefix(p.s[p.i:], "[]") {
		p.i += 2
		return true
	}
	return false
}

// strings reads a non-empty array of strings.
func (p *recParser) strings(dst *[]string) bool { return parseArray(p, dst, 4, p.str) }

// parseArray reads a JSON array of items (or the empty "{}"/"[]") into dst.
func parseArray[T any](p *recParser, dst *[]T, capacity int, item func(*T) bool) bool {
	if p.empty() {
		return true
	}
	if !p.byte('[') {
		return false
	}
	out := make([]T, 0, capacity)
	for {
		var v T
		if !item(&v) {
			return false
		}
		out = append(out, v)
		if p.byte(',') {
			continue
		}
		if !p.byte(']') {
			return false
		}
		*dst = out
		return true
	}
}

// strMap reads a non-empty object of strings.
func (p *recParser) strMap(dst *map[string]string) bool {
	if p.empty() {
		return true
	}
	if !p.byte('{') {
		return false
	}
	out := make(map[string]string)
	for {
		k, ok := p.key()
		var v string
		if !ok || !p.str(&v) {
			return false
		}
		out[k] = v // a repeated key: the last one wins, as in encoding/json
		if p.byte(',') {
			continue
		}
		if !p.byte('}') {
			return false
		}
		*dst = out
		return true
	}
}

// claim reads a Claim object.
func (p *recParser) claim(dst **Claim) bool {
	c := &Claim{}
	ok := p.object(func(k string) (uint32, bool) {
		switch k {
		case "owner":
			return 1, p.str(&c.Owner)
		case "until":
			return 2, p.int64(&c.Until)
		case "channel":
			return 4, p.str(&c.Channel)
		}
		return 0, true
	})
	if ok {
		*dst = c
	}
	return ok
}

// history reads a non-empty array of Attempt objects.
func (p *recParser) history(dst *[]Attempt) bool { return parseArray(p, dst, 2, p.attempt) }

func (p *recParser) attempt(a *Attempt) bool {
	return p.object(func(k string) (uint32, bool) {
		switch k {
		case "channel":
			return 1 << 0, p.str(&a.Channel)
		case "provider_message_id":
			return 1 << 1, p.str(&a.ProviderMessageID)
		case "state":
			return 1 << 2, p.str(&a.State)
		case "code":
			return 1 << 3, p.str(&a.Code)
		case "reason":
			return 1 << 4, p.str(&a.Reason)
		case "at":
			return 1 << 5, p.str(&a.At)
		case "status_at":
			return 1 << 6, p.str(&a.StatusAt)
		case "statuses":
			return 1 << 7, parseArray(p, &a.Statuses, 2, p.statusChange)
		}
		return 0, true
	})
}

func (p *recParser) statusChange(c *StatusChange) bool {
	return p.object(func(k string) (uint32, bool) {
		switch k {
		case "state":
			return 1 << 0, p.str(&c.State)
		case "code":
			return 1 << 1, p.str(&c.Code)
		case "reason":
			return 1 << 2, p.str(&c.Reason)
		case "at":
			return 1 << 3, p.str(&c.At)
		}
		return 0, true
	})
}

// object reads {"key":value,...}: field reads the value of key and says which of the
// object's keys it is (a bit; 0 for an unknown key). An unknown or repeated key, a bad value
// or malformed JSON fails.
func (p *recParser) object(field func(key string) (uint32, bool)) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	var seen uint32
	for {
		key, ok := p.key()
		if !ok {
			return false
		}
		bit, ok := field(key)
		if bit == 0 || seen&bit != 0 || !ok {
			return false
		}
		seen |= bit
		if p.byte(',') {
			continue
		}
		return p.byte('}')
	}
}

// marshalRecord is json.Marshal(r), byte for byte (TestMarshalRecordMatchesEncodingJSON),
// without reflection: Begin and Settle send a first record with every call.
func marshalRecord(r *Record) []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"id":`...)
	b = jsonw.StringHTML(b, r.ID)
	b = append(b, `,"state":`...)
	b = jsonw.StringHTML(b, r.State)
	b = jsonw.FieldHTML(b, "reason", r.Reason)
	b = jsonw.FieldHTML(b, "to", r.To)
	b = jsonw.FieldHTML(b, "template", r.Template)
	b = jsonw.FieldHTML(b, "priority", r.Priority)
	b = jsonw.FieldHTML(b, "campaign", r.Campaign)
	b = jsonw.FieldHTML(b, "tenant", r.Tenant)
	if len(r.Channels) > 0 {
		b = append(b, `,"channels":[`...)
		for i, c := range r.Channels {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.StringHTML(b, c)
		}
		b = append(b, ']')
	}
	b = jsonw.FieldHTML(b, "channel", r.Channel)
	b = append(b, `,"channel_idx":`...)
	b = strconv.AppendInt(b, int64(r.ChannelIdx), 10)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = jsonw.FieldHTML(b, "provider_message_id", r.ProviderMessageID)
	b = jsonw.FieldHTML(b, "send_at", r.SendAt)
	b = jsonw.FieldHTML(b, "created_at", r.CreatedAt)
	b = jsonw.FieldHTML(b, "updated_at", r.UpdatedAt)
	if len(r.History) > 0 {
		b = append(b, `,"history":[`...)
		for i := range r.History {
			a := &r.History[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"channel":`...)
			b = jsonw.StringHTML(b, a.Channel)
			b = jsonw.FieldHTML(b, "provider_message_id", a.ProviderMessageID)
			b = append(b, `,"state":`...)
			b = jsonw.StringHTML(b, a.State)
			b = jsonw.FieldHTML(b, "code", a.Code)
			b = jsonw.FieldHTML(b, "reason", a.Reason)
			b = append(b, `,"at":`...)
			b = jsonw.StringHTML(b, a.At)
			b = jsonw.FieldHTML(b, "status_at", a.StatusAt)
			if len(a.Statuses) > 0 {
				b = append(b, `,"statuses":[`...)
				for k := range a.Statuses {
					c := &a.Statuses[k]
					if k > 0 {
						b = append(b, ',')
					}
					b = append(b, `{"state":`...)
					b = jsonw.StringHTML(b, c.State)
					b = jsonw.FieldHTML(b, "code", c.Code)
					b = jsonw.FieldHTML(b, "reason", c.Reason)
					b = append(b, `,"at":`...)
					b = jsonw.StringHTML(b, c.At)
					b = append(b, '}')
				}
				b = append(b, ']')
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = jsonw.MapHTML(b, "metadata", r.Metadata)
	if c := r.Claim; c != nil {
		b = append(b, `,"claim":{"owner":`...)
		b = jsonw.StringHTML(b, c.Owner)
		b = append(b, `,"until":`...)
		b = strconv.AppendInt(b, c.Until, 10)
		b = jsonw.FieldHTML(b, "channel", c.Channel)
		b = append(b, '}')
	}
	if r.Resume {
		b = append(b, `,"resume":true`...)
	}
	b = jsonw.MapHTML(b, "early", r.Early)
	b = jsonw.MapHTML(b, "early_ch", r.EarlyChannels)
	b = jsonw.FieldHTML(b, "op", r.Op)
	b = jsonw.FieldHTML(b, "op_old", r.OpOld)
	b = jsonw.FieldHTML(b, "dlq", r.DeadLetter)
	return append(b, '}')
}
