// Package templates is Herald's WhatsApp template catalogue and renderer.
//
// A template definition is kept in the Cloud API's own JSON format, as the Graph API lists it
// (GET /<WABA-ID>/message_templates), so definitions synced from Meta, exported from a BSP or
// written by hand all read the same. Definitions live in the NATS KV bucket herald-templates
// under the key <tenant>.<name>.<language>: each tenant has its own catalogue, since its
// templates belong to its WhatsApp Business Account, and no tenant's write or review touches
// another's. A Catalogue loads and watches that bucket so that every worker sees a change
// without a restart.
//
// Rendering turns a definition and a job's params, media and buttons into the components of
// a Cloud API template send (RenderWhite) or into plain text for the grey gateway and SMS
// (RenderText). Variable positions are compiled once per definition, so rendering, which runs
// for every job, does no parsing.
package templates

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode/utf8"
)

// Parameter formats of a template: how its variables are written.
const (
	// FormatPositional: {{1}}, {{2}}, ... (the Cloud API default).
	FormatPositional = "POSITIONAL"
	// FormatNamed: {{order}}, {{address}}, ...
	FormatNamed = "NAMED"
)

// Template statuses Herald acts on. Meta has more (REJECTED, DISABLED, IN_APPEAL,
// PENDING_DELETION, ...); any status but APPROVED keeps a template from being sent.
const (
	StatusApproved = "APPROVED"
	StatusPending  = "PENDING"
	StatusRejected = "REJECTED"
	StatusPaused   = "PAUSED"
	StatusDisabled = "DISABLED"
)

// Template categories.
const (
	CategoryUtility        = "UTILITY"
	CategoryMarketing      = "MARKETING"
	CategoryAuthentication = "AUTHENTICATION"
)

// Component types.
const (
	ComponentHeader  = "HEADER"
	ComponentBody    = "BODY"
	ComponentFooter  = "FOOTER"
	ComponentButtons = "BUTTONS"
)

// Header formats.
const (
	HeaderText     = "TEXT"
	HeaderImage    = "IMAGE"
	HeaderVideo    = "VIDEO"
	HeaderDocument = "DOCUMENT"
	HeaderLocation = "LOCATION"
)

// Button types Herald renders. Others (FLOW, CATALOG, OTP, MPM, SPM, ...) parse and are
// kept; see RenderWhite for how each is treated.
const (
	ButtonQuickReply  = "QUICK_REPLY"
	ButtonURL         = "URL"
	ButtonPhoneNumber = "PHONE_NUMBER"
	ButtonCopyCode    = "COPY_CODE"
)

// Limits of a template, from the Cloud API, in characters.
const (
	MaxBodyLen   = 1024
	MaxHeaderLen = 60
	MaxFooterLen = 60
	MaxButtons   = 10
)

// Definition is one template in one language, in the Graph API's JSON format plus Herald's
// catalogue version. Unknown JSON fields are ignored, because Meta adds fields over time.
//
// A Definition is compiled by ParseDefinition or Validate and must not be changed afterwards
// (the compiled variable positions would be stale): change a copy and Validate it again.
// Definitions handed out by the Catalogue are shared between goroutines and read-only.
type Definition struct {
	// ID is Meta's id of the template, when known (its listing, or the definition posted):
	// a review names it, so a review of another template of the same name is told apart.
	ID               string `json:"id,omitempty"`
	Name             string `json:"name"`
	Language         string `json:"language"`
	Status           string `json:"status,omitempty"`
	Category         string `json:"category,omitempty"`
	PreviousCategory string `json:"previous_category,omitempty"`
	// ParameterFormat is FormatPositional (also when empty on input) or FormatNamed; any case
	// is accepted on input and stored upper case.
	ParameterFormat string      `json:"parameter_format,omitempty"`
	Components      []Component `json:"components"`
	// Version is Herald's catalogue version, set by Put: 1 for the first, +1 for each change.
	Version int `json:"version,omitempty"`
	// UpdatedAt is when Put last stored the definition.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Tenant owns the definition: Put, Get, List and the Catalogue set it from the key it is
	// stored under, never from input.
	Tenant string `json:"tenant,omitempty"`
	// Approved is the last APPROVED version while this newer one is not (pending review, or
	// rejected): an approved version is never changed in place, and workers keep sending it
	// until Meta approves the change. Nil when this version is the approved one. With
	// reviews per WABA, it serves the WABAs where it is approved and this version is not.
	Approved *Definition `json:"approved,omitempty"`
	// WABAs are Meta's reviews of this version by WhatsApp Business Account id (`herald
	// templates sync` per WABA, template webhooks by their entry's WABA). When any is
	// recorded they decide where the version may be sent (ApprovedIn), and Status sums them
	// up: APPROVED when approved in at least one WABA. Empty: Status decides for every WABA.
	WABAs map[string]WABAReview `json:"wabas,omitempty"`

	prog *program // compiled by Validate; nil for a definition built in Go and not validated
}

// Component is a HEADER, BODY, FOOTER or BUTTONS part of a template.
type Component struct {
	Type string `json:"type"`
	// Format of a HEADER: TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION.
	Format  string   `json:"format,omitempty"`
	Text    string   `json:"text,omitempty"`
	Example *Example `json:"example,omitempty"`
	Buttons []Button `json:"buttons,omitempty"`
}

// Example holds the sample values Meta's review requires for every variable.
type Example struct {
	HeaderText            []string       `json:"header_text,omitempty"`
	HeaderHandle          []string       `json:"header_handle,omitempty"`
	BodyText              [][]string     `json:"body_text,omitempty"`
	HeaderTextNamedParams []NamedExample `json:"header_text_named_params,omitempty"`
	BodyTextNamedParams   []NamedExample `json:"body_text_named_params,omitempty"`
}

// NamedExample is the sample value of one named variable.
type NamedExample struct {
	ParamName string `json:"param_name"`
	Example   string `json:"example"`
}

// Button is one button of a BUTTONS component. Its index in the component is the key of its
// value in a job's "buttons".
type Button struct {
	Type        string `json:"type"`
	Text        string `json:"text,omitempty"`
	URL         string `json:"url,omitempty"`
	PhoneNumber string `json:"phone_number,omitempty"`
	// Example: the sample full URL of a dynamic URL button, or the sample code of a
	// COPY_CODE button (which Meta writes as a plain string, not an array).
	Example []string `json:"example,omitempty"`
	OTPType string   `json:"otp_type,omitempty"`
}

// UnmarshalJSON accepts "example" both as an array of strings and as a single string.
func (b *Button) UnmarshalJSON(data []byte) error {
	type plain Button
	var raw struct {
		plain
		Example json.RawMessage `json:"example,omitempty"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*b = Button(raw.plain)
	ex := bytes.TrimSpace(raw.Example)
	switch {
	case len(ex) == 0 || bytes.Equal(ex, []byte("null")):
	case ex[0] == '"':
		var s string
		if err := json.Unmarshal(ex, &s); err != nil {
			return fmt.Errorf("button example: %w", err)
		}
		b.Example = []string{s}
	default:
		if err := json.Unmarshal(ex, &b.Example); err != nil {
			return fmt.Errorf("button example: must be a string or an array of strings: %w", err)
		}
	}
	return nil
}

// MarshalJSON writes a COPY_CODE button's example as a string, the way Meta expects it.
func (b Button) MarshalJSON() ([]byte, error) {
	type plain Button
	if strings.EqualFold(b.Type, ButtonCopyCode) && len(b.Example) == 1 {
		return json.Marshal(struct {
			plain
			Example string `json:"example"`
		}{plain(b), b.Example[0]})
	}
	return json.Marshal(plain(b))
}

// ParseDefinition parses one template definition in the Graph API's JSON format, normalises
// it (upper-case types, statuses and parameter_format) and validates it. Errors wrap
// ErrInvalidDefinition.
func ParseDefinition(data []byte) (*Definition, error) {
	var d Definition
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDefinition, err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// ParseListing parses one page of GET /<WABA-ID>/message_templates:
// {"data":[...],"paging":{"cursors":{"after":...},"next":...}}. after is the cursor of the
// next page, or "" when this is the last page (Meta sends a cursor but no "next" then).
// Every definition must be valid; the error names the first one that is not.
func ParseListing(data []byte) (defs []*Definition, after string, err error) {
	var page struct {
		Data   []json.RawMessage `json:"data"`
		Paging struct {
			Cursors struct {
				After string `json:"after"`
			} `json:"cursors"`
			Next string `json:"next"`
		} `json:"paging"`
	}
	if err := json.Unmarshal(data, &page); err != nil {
		return nil, "", fmt.Errorf("%w: template listing: %v", ErrInvalidDefinition, err)
	}
	defs = make([]*Definition, 0, len(page.Data))
	for i, raw := range page.Data {
		d, err := ParseDefinition(raw)
		if err != nil {
			return nil, "", fmt.Errorf("template listing entry %d: %w", i, err)
		}
		defs = append(defs, d)
	}
	if page.Paging.Next != "" {
		after = page.Paging.Cursors.After
	}
	return defs, after, nil
}

// Validate normalises d in place (upper-case types, statuses and parameter_format; an
// empty parameter_format becomes POSITIONAL; a HEADER with text and no format becomes TEXT),
// checks its structure and compiles its variables for rendering. Call it on a definition
// built in Go before sharing it; errors wrap ErrInvalidDefinition.
func (d *Definition) Validate() error {
	d.prog = nil
	d.Status = strings.ToUpper(d.Status)
	d.Category = strings.ToUpper(d.Category)
	d.PreviousCategory = strings.ToUpper(d.PreviousCategory)
	d.ParameterFormat = strings.ToUpper(d.ParameterFormat)
	for w, r := range d.WABAs {
		r.Status, r.Category = strings.ToUpper(r.Status), strings.ToUpper(r.Category)
		d.WABAs[w] = r
	}
	if d.ParameterFormat == "" {
		d.ParameterFormat = FormatPositional
	}
	for i := range d.Components {
		c := &d.Components[i]
		c.Type = strings.ToUpper(c.Type)
		c.Format = strings.ToUpper(c.Format)
		if c.Type == ComponentHeader && c.Format == "" && c.Text != "" {
			c.Format = HeaderText
		}
		for j := range c.Buttons {
			c.Buttons[j].Type = strings.ToUpper(c.Buttons[j].Type)
		}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidDefinition, d.label(), fmt.Sprintf(format, args...))
	}
	if !validName(d.Name) {
		return bad("name must be 1-512 lower-case letters, digits and underscores")
	}
	if !validLanguage(d.Language) {
		return bad("language must be a code such as ru, en or en_US")
	}
	for w := range d.WABAs {
		if w == "" || strings.ContainsAny(w, " \t\r\n") {
			return bad("wabas: %q is not a WABA id", w)
		}
	}
	if d.ParameterFormat != FormatPositional && d.ParameterFormat != FormatNamed {
		return bad("parameter_format must be POSITIONAL or NAMED, not %q", d.ParameterFormat)
	}
	p, err := compile(d)
	if err != nil {
		return bad("%s", err)
	}
	d.prog = p
	if d.Approved != nil {
		d.Approved.Approved = nil
		if err := d.Approved.Validate(); err != nil {
			return bad("its last approved version: %s", err)
		}
	}
	return nil
}

// SameContent tells whether a and b say the same thing to Meta: category, parameter format
// and components (not status, version or times).
func SameContent(a, b *Definition) bool {
	type content struct {
		Category, ParameterFormat string
		Components                []Component
	}
	ja, _ := json.Marshal(content{strings.ToUpper(a.Category), strings.ToUpper(a.ParameterFormat), a.Components})
	jb, _ := json.Marshal(content{strings.ToUpper(b.Category), strings.ToUpper(b.ParameterFormat), b.Components})
	return bytes.Equal(ja, jb)
}

// label names d in messages: "order_ready.ru", or what there is of it.
func (d *Definition) label() string {
	if d.Name == "" && d.Language == "" {
		return "template"
	}
	return legacyKey(d.Name, d.Language)
}

// setTenant records the tenant a freshly parsed definition (and its approved version) is
// stored for.
func (d *Definition) setTenant(tenant string) {
	d.Tenant = tenant
	if d.Approved != nil {
		d.Approved.Tenant = tenant
	}
}

// clone returns a deep copy of d's definition fields, so that normalising the copy leaves d
// untouched.
func (d *Definition) clone() *Definition {
	c := *d
	c.prog = nil
	c.WABAs = maps.Clone(d.WABAs)
	if d.Approved != nil {
		c.Approved = d.Approved.clone()
	}
	c.Components = make([]Component, len(d.Components))
	for i, comp := range d.Components {
		comp.Buttons = append([]Button(nil), comp.Buttons...)
		c.Components[i] = comp
	}
	return &c
}

// validName: template names as Meta allows them. Dots are excluded, which also keeps
// <name>.<language> an unambiguous KV key.
func validName(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validLanguage: a Cloud API language code: "ru", "en", "en_US", "pt_BR", "zh_CN", "fil".
func validLanguage(s string) bool {
	lang, region, hasRegion := strings.Cut(s, "_")
	if len(lang) < 2 || len(lang) > 3 {
		return false
	}
	for i := 0; i < len(lang); i++ {
		if lang[i] < 'a' || lang[i] > 'z' {
			return false
		}
	}
	if !hasRegion {
		return true
	}
	if len(region) < 2 || len(region) > 4 {
		return false
	}
	for i := 0; i < len(region); i++ {
		c := region[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// runes counts characters the way the length limits do.
func runes(s string) int { return utf8.RuneCountInString(s) }
