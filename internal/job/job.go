// Package job defines the notification job (version 1 of the contract in DESIGN.md), its
// strict JSON decoding and its validation. The producer, the API and the worker all use it,
// so a job that one of them accepts is a job every other one accepts too.
package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	Metadata map[string]string `json:"metadata,omitempty"`
	// QuietHours overrides the priority's default: true holds a transactional job outside
	// HERALD_QUIET_HOURS too, false lets a bulk job through at any hour.
	QuietHours *bool `json:"quiet_hours,omitempty"`
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

var (
	idRe   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	nameRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	// Template names as Meta allows them: lower case, digits, underscores.
	templateRe = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)
	// Language codes as the Cloud API names them: "ru", "en_US", "pt_BR", "zh_CN".
	languageRe = regexp.MustCompile(`^[a-z]{2,3}(_[A-Za-z]{2,4})?$`)
	paramRe    = regexp.MustCompile(`^([1-9][0-9]?|[a-z_][a-z0-9_]{0,63})$`)
)

// fields is the set of known top-level keys; anything else is rejected.
var fields = map[string]bool{
	"id": true, "to": true, "template": true, "language": true, "params": true, "text": true,
	"priority": true, "channels": true, "media": true, "buttons": true, "sms_text": true,
	"send_at": true, "expires_at": true, "campaign": true, "tenant": true, "metadata": true,
	"quiet_hours": true,
}

// Decode parses one encoded job strictly (unknown fields are errors), validates it and
// normalises it (E.164 number, default priority and language). The error is a
// *ValidationError naming every bad field, or a *ValidationError with field "$" when the
// input is not a JSON object at all.
func Decode(data []byte, opts Options) (*Job, error) {
	verr := &ValidationError{}
	if len(data) > MaxSize {
		verr.add("$", "job is %d bytes, more than the %d allowed", len(data), MaxSize)
		return nil, verr
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		reason := "not a JSON object"
		if err != nil {
			reason = "not a JSON object: " + err.Error()
		}
		verr.add("$", "%s", reason)
		return nil, verr
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var j Job
	for _, k := range keys {
		if !fields[k] {
			verr.add(k, "unknown field")
			continue
		}
		if err := decodeField(&j, k, raw[k]); err != nil {
			verr.add(k, "%s", err)
		}
	}
	j.validate(opts, verr, raw)
	if err := verr.orNil(); err != nil {
		return nil, err
	}
	return &j, nil
}

// decodeField decodes one known field strictly so that each type error names its field.
func decodeField(j *Job, k string, v json.RawMessage) error {
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
	j.validate(opts, verr, nil)
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

// validate applies every rule; present tells which keys the JSON had, so that an explicit
// empty value is reported once (nil for a job built in Go).
func (j *Job) validate(opts Options, verr *ValidationError, present map[string]json.RawMessage) {
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
		case !idRe.MatchString(j.ID):
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
		if present != nil && present["channels"] != nil && len(j.Channels) == 0 {
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
	if j.Campaign != "" && !nameRe.MatchString(j.Campaign) {
		verr.add("campaign", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
	}
	if j.Tenant != "" && !nameRe.MatchString(j.Tenant) {
		verr.add("tenant", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
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
	sort.SliceStable(verr.Fields, func(a, b int) bool { return verr.Fields[a].Field < verr.Fields[b].Field })
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
		if !templateRe.MatchString(j.Template) {
			verr.add("template", "must be a template name of lower-case letters, digits and underscores")
		}
		if j.Language == "" {
			j.Language = opts.DefaultLanguage
			if j.Language == "" {
				j.Language = "ru"
			}
		}
		if !bad("language") && !languageRe.MatchString(j.Language) {
			verr.add("language", "must be a language code such as ru, en or en_US, not %q", j.Language)
		}
		if !bad("params") {
			if len(j.Params) > MaxParams {
				verr.add("params", "more than %d parameters", MaxParams)
			}
			for k, v := range j.Params {
				if !paramRe.MatchString(k) {
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
	seen := map[string]bool{}
	for _, c := range chs {
		switch c {
		case ChannelWhite, ChannelGrey, ChannelSMS:
		default:
			return fmt.Errorf("unknown channel %q (white, grey or sms)", c)
		}
		if seen[c] {
			return fmt.Errorf("channel %q listed twice", c)
		}
		seen[c] = true
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
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Expired tells whether the job is past its expires_at at now.
func (j *Job) Expired(now time.Time) bool { return j.ExpireAt != nil && !now.Before(*j.ExpireAt) }

// ValidateID checks the id alone (for a job whose other fields are invalid).
func (j *Job) ValidateID() error {
	if !idRe.MatchString(j.ID) {
		return fmt.Errorf("id: must be 1-%d characters of A-Z a-z 0-9 . _ : -", MaxIDLen)
	}
	return nil
}

// PeekID returns the "id" string of an encoded job that could not be decoded, so that an
// error can name the job; "" when there is none or it is longer than MaxIDLen. The id is not
// validated further.
func PeekID(data []byte) string {
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	s, _ := v.ID.(string)
	if len(s) > MaxIDLen {
		return ""
	}
	return s
}
