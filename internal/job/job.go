// Package job defines the notification job (version 1 of the contract in docs/contracts.md), its
// strict JSON decoding and its validation. The producer, the API and the worker all use it,
// so a job that one of them accepts is a job every other one accepts too.
package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/herald-notify/herald/internal/jsonw"
	"github.com/herald-notify/herald/internal/phone"
)

// Priority lanes. Bulk never delays transactional.
const (
	PriorityTransactional = "transactional"
	PriorityBulk          = "bulk"
)

// Channel names as they appear in a job's "channels" and in HERALD_CHANNELS.
const (
	ChannelWhite = "white"
	ChannelGrey  = "grey"
	ChannelSMS   = "sms"
)

// Limits of the contract.
const (
	MaxSize      = 64 << 10 // bytes of one encoded job
	MaxIDLen     = 128
	MaxTextLen   = 4096 // WhatsApp's limit for a text message body
	MaxSMSText   = 1600
	MaxParams    = 50
	MaxParamLen  = 1024
	MaxMetadata  = 32
	MaxButtonIdx = 9
)

// Job is one notification to one recipient. JSON field names are the contract.
type Job struct {
	ID       string            `json:"id"`
	To       string            `json:"to"`
	Template string            `json:"template,omitempty"`
	Language string            `json:"language,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Text     string            `json:"text,omitempty"`
	Priority string            `json:"priority,omitempty"`
	Channels []string          `json:"channels,omitempty"`
	Media    *Media            `json:"media,omitempty"`
	Buttons  map[string]string `json:"buttons,omitempty"`
	SMSText  string            `json:"sms_text,omitempty"`
	SendAt   *time.Time        `json:"send_at,omitempty"`
	ExpireAt *time.Time        `json:"expires_at,omitempty"`
	Campaign string            `json:"campaign,omitempty"`
	Tenant   string            `json:"tenant,omitempty"`
	// Sender pins the job to one sender of its tenant's pool (a fleet sender id): the
	// channel of that sender's kind goes through it alone; the others route as usual.
	Sender   string            `json:"sender,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// QuietHours overrides the priority's default: true holds a transactional job outside
	// HERALD_QUIET_HOURS too, false lets a bulk job through at any hour.
	QuietHours *bool `json:"quiet_hours,omitempty"`
	// Marketing is not part of the contract: the worker sets it from the template's category
	// before the claim, which then suppresses the job for a customer who stopped the
	// tenant's marketing messages (Meta's user_preferences).
	Marketing bool `json:"-"`
}

// Media is a file attached to the message: the template's media header, a media message
// inside the 24-hour window, a file by URL on grey, a link in SMS.
type Media struct {
	Type     string `json:"type"`
	URL      string `json:"url"`
	Filename string `json:"filename,omitempty"`
	Caption  string `json:"caption,omitempty"`
}

// Media types.
const (
	MediaImage    = "image"
	MediaVideo    = "video"
	MediaDocument = "document"
)

// Options carry the deployment defaults that validation applies.
type Options struct {
	// DefaultRegion is the ISO 3166 region used for national phone formats (HERALD_DEFAULT_REGION).
	DefaultRegion string
	// DefaultLanguage is the template language when a job names none (HERALD_DEFAULT_LANGUAGE).
	DefaultLanguage string
}

// FieldError names one invalid field of a job and why it is invalid.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError lists every invalid field of a job at once. It matches ErrInvalid with
// errors.Is.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

// ErrInvalid is the sentinel every ValidationError matches: the job can never be sent as it is.
var ErrInvalid = errors.New("invalid job")

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid job: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (e *ValidationError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// The shapes of names, checked byte by byte: these run on every job, and regexp matching
// cost as much as the rest of the validation. TestShapesMatchRegexps holds each to the
// regular expression in its comment.

// DefaultTenant is the tenant of a job that names none: the one tenant of a deployment
// configured by the HERALD_* variables alone.
const DefaultTenant = "default"

// MaxTenantLen is the longest tenant name.
const MaxTenantLen = 63

// ValidTenant: ^[a-z0-9-]{1,63}$. Tenant names are path segments of every key and subject
// (herald.hold.deadline.<tenant>.<id>), so they carry no dot, colon or slash.
func ValidTenant(s string) bool {
	if len(s) == 0 || len(s) > MaxTenantLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isLower(c) || isDigit(c) || c == '-') {
			return false
		}
	}
	return true
}

// TenantOr returns tenant, or DefaultTenant when it is empty.
func TenantOr(tenant string) string {
	if tenant == "" {
		return DefaultTenant
	}
	return tenant
}

// Ref is the tenant-qualified id of a job: "<tenant>/<id>". It, not the id alone, keys the
// job's record, claim, Nats-Msg-Id and schedules, so that one tenant's id never reads,
// blocks or changes another tenant's job. A slash is in neither alphabet, so a ref splits
// back into exactly one tenant and id.
func Ref(tenant, id string) string { return TenantOr(tenant) + "/" + id }

// SplitRef is the inverse of Ref.
func SplitRef(ref string) (tenant, id string, ok bool) {
	tenant, id, ok = strings.Cut(ref, "/")
	return tenant, id, ok && tenant != "" && id != ""
}

// Ref is j's tenant-qualified id (see the function Ref).
func (j *Job) Ref() string { return Ref(j.Tenant, j.ID) }

// validID: ^[A-Za-z0-9._:-]{1,128}$ (ids and campaign names).
func validID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isLower(c) || isUpper(c) || isDigit(c) || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// validTemplate: ^[a-z0-9_]{1,512}$, template names as Meta allows them.
func validTemplate(s string) bool {
	if len(s) == 0 || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isLower(c) || isDigit(c) || c == '_') {
			return false
		}
	}
	return true
}

// validLanguage: ^[a-z]{2,3}(_[A-Za-z]{2,4})?$, language codes as the Cloud API names them
// ("ru", "en_US", "pt_BR", "zh_CN").
func validLanguage(s string) bool {
	n := 0
	for n < len(s) && isLower(s[n]) {
		n++
	}
	if n < 2 || n > 3 {
		return false
	}
	if n == len(s) {
		return true
	}
	rest := s[n:]
	if rest[0] != '_' || len(rest) < 3 || len(rest) > 5 {
		return false
	}
	for i := 1; i < len(rest); i++ {
		if !isLower(rest[i]) && !isUpper(rest[i]) {
			return false
		}
	}
	return true
}

// validParam: ^([1-9][0-9]?|[a-z_][a-z0-9_]{0,63})$, a position 1-99 or a lower-case name.
func validParam(s string) bool {
	switch {
	case len(s) == 0:
		return false
	case s[0] >= '1' && s[0] <= '9':
		return len(s) == 1 || (len(s) == 2 && isDigit(s[1]))
	case (!isLower(s[0]) && s[0] != '_') || len(s) > 64:
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(isLower(c) || isDigit(c) || c == '_') {
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// fields is the set of known top-level keys; anything else is rejected.
var fields = map[string]bool{
	"id": true, "to": true, "template": true, "language": true, "params": true, "text": true,
	"priority": true, "channels": true, "media": true, "buttons": true, "sms_text": true,
	"send_at": true, "expires_at": true, "campaign": true, "tenant": true, "metadata": true,
	"quiet_hours": true, "sender": true,
}

// Decode parses one encoded job strictly (unknown fields are errors), validates it and
// normalises it (E.164 number, default priority and language). The error is a
// *ValidationError naming every bad field, or a *ValidationError with field "$" when the
// input is not a JSON object at all.
func Decode(data []byte, opts Options) (*Job, error) { return decode(data, opts, true) }

// decode is Decode; fast false takes the encoding/json way for every part, the reference
// the fast paths are tested against (TestDecodeFastPathsMatch, FuzzDecodeFastPaths).
func decode(data []byte, opts Options, fast bool) (*Job, error) {
	verr := &ValidationError{}
	if len(data) > MaxSize {
		verr.add("$", "job is %d bytes, more than the %d allowed", len(data), MaxSize)
		return nil, verr
	}
	var members []member
	ok := false
	if fast {
		members, ok = splitObject(data)
	}
	if !ok {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
			reason := "not a JSON object"
			if err != nil {
				reason = "not a JSON object: " + err.Error()
			}
			verr.add("$", "%s", reason)
			return nil, verr
		}
		members = members[:0]
		for k, v := range raw {
			members = append(members, member{k, v})
		}
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	var j Job
	channelsGiven := false
	for _, m := range members {
		if !fields[m.key] {
			verr.add(m.key, "unknown field")
			continue
		}
		channelsGiven = channelsGiven || m.key == "channels"
		if err := decodeField(&j, m.key, m.value, fast); err != nil {
			verr.add(m.key, "%s", err)
		}
	}
	j.validate(opts, verr, channelsGiven)
	if err := verr.orNil(); err != nil {
		return nil, err
	}
	return &j, nil
}

// member is one key of a job object and its value.
type member struct {
	key   string
	value json.RawMessage
}

// maxMembers bounds the keys splitObject handles (the contract has 17): more go through
// encoding/json's map, which finds repeated keys without splitObject's quadratic search.
const maxMembers = 24

// splitObject splits a JSON object into its keys and values as unmarshalling into a
// map[string]json.RawMessage would (a repeated key keeps its last value), without the map:
// the values are slices of data. ok is false when data is not valid JSON, not an object, has
// a key with an escape or invalid UTF-8 (which encoding/json would rewrite) or more than
// maxMembers keys; Decode then takes the encoding/json way, which also words the error.
func splitObject(data []byte) (_ []member, ok bool) {
	if !json.Valid(data) {
		return nil, false
	}
	b := skipSpace(data)
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	out := make([]member, 0, 16)
	b = skipSpace(b[1:])
	if b[0] == '}' {
		return out, true
	}
	for {
		k, rest, ok := plainString(b)
		if !ok {
			return nil, false
		}
		b = skipSpace(skipSpace(rest)[1:]) // the colon
		n := valueLen(b)
		v := json.RawMessage(b[:n:n])
		b = skipSpace(b[n:])
		if i := slices.IndexFunc(out, func(m member) bool { return m.key == k }); i >= 0 {
			out[i].value = v
		} else if len(out) == maxMembers {
			return nil, false
		} else {
			out = append(out, member{k, v})
		}
		if b[0] == '}' {
			return out, true
		}
		b = skipSpace(b[1:]) // the comma
	}
}

// valueLen is the length of the JSON value at the start of b, which is valid JSON.
func valueLen(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the end of the enclosing object, after a number or literal
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return len(b)
}

// decodeField decodes one known field strictly so that each type error names its field.
// Strings, arrays of strings and objects of strings in their plain form (the form every
// encoder writes for ordinary text) are read directly: a json.Decoder per field cost more
// than the rest of Decode. Anything else goes through encoding/json, as before.
func decodeField(j *Job, k string, v json.RawMessage, fast bool) error {
	if fast && decodePlain(j, k, v) {
		return nil
	}
	var dst any
	switch k {
	case "id":
		dst = &j.ID
	case "to":
		dst = &j.To
	case "template":
		dst = &j.Template
	case "language":
		dst = &j.Language
	case "params":
		dst = &j.Params
	case "text":
		dst = &j.Text
	case "priority":
		dst = &j.Priority
	case "channels":
		dst = &j.Channels
	case "media":
		dst = &j.Media
	case "buttons":
		dst = &j.Buttons
	case "sms_text":
		dst = &j.SMSText
	case "send_at":
		return decodeTime(&j.SendAt, v)
	case "expires_at":
		return decodeTime(&j.ExpireAt, v)
	case "campaign":
		dst = &j.Campaign
	case "tenant":
		dst = &j.Tenant
	case "sender":
		dst = &j.Sender
	case "metadata":
		dst = &j.Metadata
	case "quiet_hours":
		dst = &j.QuietHours
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return errors.New(jsonReason(err))
	}
	return nil
}

// decodePlain decodes the fields of type string, []string and map[string]string when v is in
// plain form, and reports whether it did. It gives exactly what encoding/json gives.
func decodePlain(j *Job, k string, v json.RawMessage) bool {
	var s *string
	switch k {
	case "id":
		s = &j.ID
	case "to":
		s = &j.To
	case "template":
		s = &j.Template
	case "language":
		s = &j.Language
	case "text":
		s = &j.Text
	case "priority":
		s = &j.Priority
	case "sms_text":
		s = &j.SMSText
	case "campaign":
		s = &j.Campaign
	case "tenant":
		s = &j.Tenant
	case "sender":
		s = &j.Sender
	case "params":
		return plainMap(&j.Params, v)
	case "buttons":
		return plainMap(&j.Buttons, v)
	case "metadata":
		return plainMap(&j.Metadata, v)
	case "channels":
		return plainArray(&j.Channels, v)
	default:
		return false
	}
	str, rest, ok := plainString(v)
	if !ok || len(rest) != 0 {
		return false
	}
	*s = str
	return true
}

// plainString reads a JSON string at the start of b that has no escape and is valid UTF-8
// (so that encoding/json would return its bytes unchanged), and returns the rest of b. b is
// known to be valid JSON (Decode unmarshalled it), so it has no raw control characters.
func plainString(b []byte) (string, []byte, bool) {
	if len(b) < 2 || b[0] != '"' {
		return "", nil, false
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			return "", nil, false
		case '"':
			v := b[1:i]
			if !utf8.Valid(v) {
				return "", nil, false
			}
			return string(v), b[i+1:], true
		}
	}
	return "", nil, false
}

// skipSpace drops JSON whitespace from the start of b.
func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// plainArray reads an array of plain strings into *dst (a new slice, empty for []).
func plainArray(dst *[]string, v []byte) bool {
	if len(v) == 0 || v[0] != '[' {
		return false
	}
	b := skipSpace(v[1:])
	out := []string{}
	if len(b) > 0 && b[0] == ']' {
		*dst = out
		return len(b) == 1
	}
	for {
		s, rest, ok := plainString(b)
		if !ok {
			return false
		}
		out = append(out, s)
		next, end, ok := nextItem(rest, ']')
		if !ok {
			return false
		}
		if end {
			*dst = out
			return len(next) == 1
		}
		b = next
	}
}

// nextItem reads what follows an array element or object value: a comma and the whitespace
// after it (end false; b starts at the next item), or closer (end true; b starts at it).
// ok is false for anything else.
func nextItem(rest []byte, closer byte) (b []byte, end, ok bool) {
	b = skipSpace(rest)
	switch {
	case len(b) == 0:
		return nil, false, false
	case b[0] == ',':
		return skipSpace(b[1:]), false, true
	case b[0] == closer:
		return b, true, true
	}
	return nil, false, false
}

// plainMap reads an object of plain strings into *dst (a new map; the last of repeated keys
// wins, as in encoding/json).
func plainMap(dst *map[string]string, v []byte) bool {
	if len(v) == 0 || v[0] != '{' {
		return false
	}
	b := skipSpace(v[1:])
	out := map[string]string{}
	if len(b) > 0 && b[0] == '}' {
		*dst = out
		return len(b) == 1
	}
	for {
		k, rest, ok := plainString(b)
		if !ok {
			return false
		}
		b = skipSpace(rest)
		if len(b) == 0 || b[0] != ':' {
			return false
		}
		s, rest, ok := plainString(skipSpace(b[1:]))
		if !ok {
			return false
		}
		out[k] = s
		next, end, ok := nextItem(rest, '}')
		if !ok {
			return false
		}
		if end {
			*dst = out
			return len(next) == 1
		}
		b = next
	}
}

func decodeTime(dst **time.Time, v json.RawMessage) error {
	var s *string
	if err := json.Unmarshal(v, &s); err != nil {
		return errors.New("must be an RFC 3339 time string")
	}
	if s == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return fmt.Errorf("must be an RFC 3339 time such as 2026-11-25T09:00:00+03:00, got %q", *s)
	}
	*dst = &t
	return nil
}

// jsonReason turns encoding/json's messages into ones that read well after a field name.
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s: must be %s, not %s", te.Field, kind(te.Type.String()), te.Value)
		}
		return fmt.Sprintf("must be %s, not %s", kind(te.Type.String()), te.Value)
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + rest
	}
	return strings.TrimPrefix(msg, "json: ")
}

func kind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "map[string]string"):
		return "an object of strings"
	case strings.HasPrefix(goType, "[]string"):
		return "an array of strings"
	case strings.Contains(goType, "Media"):
		return "an object"
	}
	return goType
}

// Validate checks a job built in Go (the producer's path) with the same rules Decode applies,
// and normalises it in place.
func (j *Job) Validate(opts Options) error {
	_, err := j.ValidateEncode(opts)
	return err
}

// ValidateEncode is Validate returning the job's encoding too, so that a publisher encodes
// each job once. A job built in Go has not been size-checked: it must fit once encoded, or
// the worker would reject what the producer accepted.
func (j *Job) ValidateEncode(opts Options) ([]byte, error) {
	verr := &ValidationError{}
	j.validate(opts, verr, false)
	if len(verr.Fields) > 0 {
		return nil, verr
	}
	b, err := j.Encode()
	if err != nil || len(b) > MaxSize {
		verr.add("$", "job is %d bytes encoded, more than the %d allowed", len(b), MaxSize)
		return nil, verr
	}
	return b, nil
}

// validate applies every rule; channelsGiven tells whether the JSON had a "channels" key
// (false for a job built in Go), so that an explicit empty list is reported.
func (j *Job) validate(opts Options, verr *ValidationError, channelsGiven bool) {
	bad := func(k string) bool { // a type error was already reported for this key
		for _, f := range verr.Fields {
			if f.Field == k || strings.HasPrefix(f.Field, k+".") {
				return true
			}
		}
		return false
	}
	if !bad("id") {
		switch {
		case j.ID == "":
			verr.add("id", "required")
		case !validID(j.ID):
			verr.add("id", "must be 1-%d characters of A-Z a-z 0-9 . _ : -", MaxIDLen)
		}
	}
	if !bad("to") {
		if j.To == "" {
			verr.add("to", "required")
		} else if n, err := phone.Normalize(j.To, regionOr(opts.DefaultRegion)); err != nil {
			verr.add("to", "not a valid phone number for region %s (give it in international format, +<country code><number>)", regionOr(opts.DefaultRegion))
		} else {
			j.To = n
		}
	}
	j.validateContent(opts, verr, bad)
	if !bad("priority") {
		switch j.Priority {
		case "":
			j.Priority = PriorityTransactional
		case PriorityTransactional, PriorityBulk:
		default:
			verr.add("priority", "must be %q or %q, not %q", PriorityTransactional, PriorityBulk, j.Priority)
		}
	}
	if !bad("channels") {
		if channelsGiven && len(j.Channels) == 0 {
			verr.add("channels", "must list at least one channel when given")
		}
		if err := ValidateChannels(j.Channels); err != nil {
			verr.add("channels", "%s", err)
		}
	}
	if j.Media != nil && !bad("media") {
		j.Media.validate(verr)
	}
	if !bad("buttons") {
		for k, v := range j.Buttons {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i > MaxButtonIdx || strconv.Itoa(i) != k {
				verr.add("buttons."+k, "key must be a button index from 0 to %d", MaxButtonIdx)
				continue
			}
			if v == "" || utf8.RuneCountInString(v) > 2000 {
				verr.add("buttons."+k, "must be 1-2000 characters")
			}
		}
	}
	if !bad("sms_text") && utf8.RuneCountInString(j.SMSText) > MaxSMSText {
		verr.add("sms_text", "longer than %d characters", MaxSMSText)
	}
	if j.SendAt != nil && j.ExpireAt != nil && !j.ExpireAt.After(*j.SendAt) {
		verr.add("expires_at", "must be after send_at")
	}
	if j.Campaign != "" && !validID(j.Campaign) {
		verr.add("campaign", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
	}
	if j.Tenant != "" && !ValidTenant(j.Tenant) {
		verr.add("tenant", "must be 1-63 characters of a-z 0-9 -")
	}
	if j.Sender != "" && !ValidTenant(j.Sender) { // sender ids follow the tenant name rule
		verr.add("sender", "must be 1-63 characters of a-z 0-9 - (a sender id of the fleet file)")
	}
	if !bad("metadata") {
		if len(j.Metadata) > MaxMetadata {
			verr.add("metadata", "more than %d keys", MaxMetadata)
		}
		for k, v := range j.Metadata {
			if k == "" || len(k) > 64 || len(v) > 1024 {
				verr.add("metadata."+k, "keys must be 1-64 bytes and values at most 1024")
			}
		}
	}
	if len(verr.Fields) > 1 {
		sort.SliceStable(verr.Fields, func(a, b int) bool { return verr.Fields[a].Field < verr.Fields[b].Field })
	}
}

func (j *Job) validateContent(opts Options, verr *ValidationError, bad func(string) bool) {
	switch {
	case j.Template == "" && j.Text == "":
		if !bad("template") && !bad("text") {
			verr.add("template", "one of template or text is required")
		}
	case j.Template != "" && j.Text != "":
		verr.add("text", "give either template or text, not both")
	case j.Template != "":
		if !validTemplate(j.Template) {
			verr.add("template", "must be a template name of lower-case letters, digits and underscores")
		}
		if j.Language == "" {
			j.Language = opts.DefaultLanguage
			if j.Language == "" {
				j.Language = "ru"
			}
		}
		if !bad("language") && !validLanguage(j.Language) {
			verr.add("language", "must be a language code such as ru, en or en_US, not %q", j.Language)
		}
		if !bad("params") {
			if len(j.Params) > MaxParams {
				verr.add("params", "more than %d parameters", MaxParams)
			}
			for k, v := range j.Params {
				if !validParam(k) {
					verr.add("params."+k, "name must be a position 1-99 or a lower-case name")
				}
				if utf8.RuneCountInString(v) > MaxParamLen {
					verr.add("params."+k, "longer than %d characters", MaxParamLen)
				}
			}
		}
	default: // text
		if j.Language != "" {
			verr.add("language", "only with template")
		}
		if len(j.Params) > 0 {
			verr.add("params", "only with template")
		}
		if utf8.RuneCountInString(j.Text) > MaxTextLen {
			verr.add("text", "longer than %d characters", MaxTextLen)
		}
	}
}

func (m *Media) validate(verr *ValidationError) {
	switch m.Type {
	case MediaImage, MediaVideo, MediaDocument:
	case "":
		verr.add("media.type", "required: image, video or document")
	default:
		verr.add("media.type", "must be image, video or document, not %q", m.Type)
	}
	if m.URL == "" {
		verr.add("media.url", "required")
	} else if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		verr.add("media.url", "must be an absolute http or https URL")
	}
	if m.Filename != "" && m.Type != MediaDocument {
		verr.add("media.filename", "only for a document")
	}
	if utf8.RuneCountInString(m.Filename) > 240 {
		verr.add("media.filename", "longer than 240 characters")
	}
	if utf8.RuneCountInString(m.Caption) > 1024 {
		verr.add("media.caption", "longer than 1024 characters")
	}
}

// ValidateChannels checks a channel cascade: known names, each at most once.
func ValidateChannels(chs []string) error {
	var seen [3]bool // white, grey, sms: no map on every job
	for _, c := range chs {
		var i int
		switch c {
		case ChannelWhite:
			i = 0
		case ChannelGrey:
			i = 1
		case ChannelSMS:
			i = 2
		default:
			return fmt.Errorf("unknown channel %q (white, grey or sms)", c)
		}
		if seen[i] {
			return fmt.Errorf("channel %q listed twice", c)
		}
		seen[i] = true
	}
	return nil
}

func regionOr(r string) string {
	if r == "" {
		return "RU"
	}
	return strings.ToUpper(r)
}

// Encode returns the job's canonical JSON, the form published to JetStream. HTML escaping is
// off so that the encoded job is no larger than the JSON it was decoded from (a job of "<"
// characters would otherwise grow sixfold past MaxSize).
func (j *Job) Encode() ([]byte, error) {
	if b, ok := j.appendJSON(make([]byte, 0, 384)); ok {
		return b, nil
	}
	return j.encodeSlow()
}

// encodeSlow is Encode through encoding/json: the reference appendJSON is tested against,
// and the path for a time that cannot be encoded (its error is encoding/json's).
func (j *Job) encodeSlow() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// appendJSON appends exactly what encodeSlow returns, without reflection (the producer
// encodes every job it publishes); ok is false only for a time MarshalJSON refuses.
func (j *Job) appendJSON(b []byte) (_ []byte, ok bool) {
	b = append(b, `{"id":`...)
	b = jsonw.String(b, j.ID)
	b = append(b, `,"to":`...)
	b = jsonw.String(b, j.To)
	b = jsonw.Field(b, "template", j.Template)
	b = jsonw.Field(b, "language", j.Language)
	b = jsonw.Map(b, "params", j.Params)
	b = jsonw.Field(b, "text", j.Text)
	b = jsonw.Field(b, "priority", j.Priority)
	if len(j.Channels) > 0 {
		b = append(b, `,"channels":[`...)
		for i, c := range j.Channels {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.String(b, c)
		}
		b = append(b, ']')
	}
	if m := j.Media; m != nil {
		b = append(b, `,"media":{"type":`...)
		b = jsonw.String(b, m.Type)
		b = append(b, `,"url":`...)
		b = jsonw.String(b, m.URL)
		b = jsonw.Field(b, "filename", m.Filename)
		b = jsonw.Field(b, "caption", m.Caption)
		b = append(b, '}')
	}
	b = jsonw.Map(b, "buttons", j.Buttons)
	b = jsonw.Field(b, "sms_text", j.SMSText)
	for _, t := range []struct {
		key string
		t   *time.Time
	}{{"send_at", j.SendAt}, {"expires_at", j.ExpireAt}} {
		if t.t == nil {
			continue
		}
		tb, err := t.t.MarshalJSON()
		if err != nil {
			return nil, false
		}
		b = append(b, `,"`...)
		b = append(b, t.key...)
		b = append(b, `":`...)
		b = append(b, tb...)
	}
	b = jsonw.Field(b, "campaign", j.Campaign)
	b = jsonw.Field(b, "tenant", j.Tenant)
	b = jsonw.Field(b, "sender", j.Sender)
	b = jsonw.Map(b, "metadata", j.Metadata)
	if j.QuietHours != nil {
		b = append(b, `,"quiet_hours":`...)
		b = strconv.AppendBool(b, *j.QuietHours)
	}
	return append(b, '}'), true
}

// Expired tells whether the job is past its expires_at at now.
func (j *Job) Expired(now time.Time) bool { return j.ExpireAt != nil && !now.Before(*j.ExpireAt) }

// ValidateID checks the id alone (for a job whose other fields are invalid).
func (j *Job) ValidateID() error {
	if !validID(j.ID) {
		return fmt.Errorf("id: must be 1-%d characters of A-Z a-z 0-9 . _ : -", MaxIDLen)
	}
	return nil
}

// PeekID returns the "id" string of an encoded job that could not be decoded, so that an
// error can name the job; "" when there is none or it is longer than MaxIDLen. The id is not
// validated further.
func PeekID(data []byte) string {
	id, _ := Peek(data)
	return id
}

// Peek returns the id and tenant of a job that may not decode, as far as they can be read
// (each "" when not); the tenant only when it is a valid tenant name.
func Peek(data []byte) (id, tenant string) {
	var v struct {
		ID     any `json:"id"`
		Tenant any `json:"tenant"`
	}
	if json.Unmarshal(data, &v) != nil {
		return "", ""
	}
	id, _ = v.ID.(string)
	if len(id) > MaxIDLen {
		id = ""
	}
	tenant, _ = v.Tenant.(string)
	if !ValidTenant(tenant) {
		tenant = ""
	}
	return id, tenant
}
