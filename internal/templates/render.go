package templates

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/jsonw"
)

// Input is what a job gives a template: its params, media and button values.
type Input struct {
	// Params are the variable values: by name for a NAMED template; by position ("1", "2",
	// ...) for the body of a POSITIONAL one, whose header variable reads Params["header"].
	Params map[string]string
	// Media fills an IMAGE, VIDEO or DOCUMENT header; its type must match the header's.
	Media *job.Media
	// Buttons are keyed by button index, "0" to "9": the suffix of a URL button that ends
	// in a variable, the code of a COPY_CODE button, or the payload of a QUICK_REPLY
	// button (optional; echoed back when the customer taps it).
	Buttons map[string]string
}

// WhiteTemplate is the "template" object of a Cloud API send
// (POST /<PHONE_NUMBER_ID>/messages with "type":"template"); it marshals to exactly the
// shape the API expects.
type WhiteTemplate struct {
	Name       string          `json:"name"`
	Language   Language        `json:"language"`
	Components []SendComponent `json:"components,omitempty"`
}

// Language of a template send.
type Language struct {
	Code string `json:"code"`
}

// SendComponent is one header, body or button component of a send, with its parameters.
type SendComponent struct {
	Type       string          `json:"type"`               // header, body, button
	SubType    string          `json:"sub_type,omitempty"` // url, quick_reply, COPY_CODE
	Index      string          `json:"index,omitempty"`    // the button's index
	Parameters []SendParameter `json:"parameters"`
}

// SendParameter is one parameter of a send component.
type SendParameter struct {
	Type          string     `json:"type"` // text, image, video, document, payload, coupon_code
	ParameterName string     `json:"parameter_name,omitempty"`
	Text          string     `json:"text,omitempty"`
	Payload       string     `json:"payload,omitempty"`
	CouponCode    string     `json:"coupon_code,omitempty"`
	Image         *MediaLink `json:"image,omitempty"`
	Video         *MediaLink `json:"video,omitempty"`
	Document      *MediaLink `json:"document,omitempty"`
}

// MediaLink is a media header given by URL.
type MediaLink struct {
	Link     string `json:"link"`
	Filename string `json:"filename,omitempty"`
}

// AppendJSON appends t's JSON encoding to b: exactly what encoding/json writes for t with
// HTML escaping off, as the Cloud API adapter encodes its requests
// (TestAppendJSONMatchesEncodingJSON). It spares every send a reflective encoding.
func (t *WhiteTemplate) AppendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = jsonw.String(b, t.Name)
	b = append(b, `,"language":{"code":`...)
	b = jsonw.String(b, t.Language.Code)
	b = append(b, '}')
	if len(t.Components) > 0 {
		b = append(b, `,"components":[`...)
		for i := range t.Components {
			if i > 0 {
				b = append(b, ',')
			}
			b = t.Components[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (c *SendComponent) appendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = jsonw.String(b, c.Type)
	b = jsonw.Field(b, "sub_type", c.SubType)
	b = jsonw.Field(b, "index", c.Index)
	if c.Parameters == nil {
		return append(b, `,"parameters":null}`...)
	}
	b = append(b, `,"parameters":[`...)
	for i := range c.Parameters {
		if i > 0 {
			b = append(b, ',')
		}
		b = c.Parameters[i].appendJSON(b)
	}
	return append(b, "]}"...)
}

func (p *SendParameter) appendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = jsonw.String(b, p.Type)
	b = jsonw.Field(b, "parameter_name", p.ParameterName)
	b = jsonw.Field(b, "text", p.Text)
	b = jsonw.Field(b, "payload", p.Payload)
	b = jsonw.Field(b, "coupon_code", p.CouponCode)
	for _, m := range []struct {
		key  string
		link *MediaLink
	}{{"image", p.Image}, {"video", p.Video}, {"document", p.Document}} {
		if m.link == nil {
			continue
		}
		b = append(b, `,"`...)
		b = append(b, m.key...)
		b = append(b, `":{"link":`...)
		b = jsonw.String(b, m.link.Link)
		b = jsonw.Field(b, "filename", m.link.Filename)
		b = append(b, '}')
	}
	return append(b, '}')
}

// program returns d's compiled form. A definition built in Go and never validated is
// compiled on every call, from a copy so that d is not written to by concurrent renders.
func (d *Definition) program() (*program, error) {
	if d.prog != nil {
		return d.prog, nil
	}
	c := d.clone()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.prog, nil
}

// RenderWhite renders the template for the Cloud API. Only components that take parameters
// are sent: header and body variables, a media header, URL buttons ending in a variable,
// COPY_CODE buttons, and QUICK_REPLY buttons the job gives a payload for. PHONE_NUMBER,
// static URL, FLOW, CATALOG and VOICE_CALL buttons are sent without parameters.
//
// Errors, checked in this order: ErrMissingParam, ErrExtraParam, ErrMissingButton,
// ErrExtraParam (a button value with no place), ErrMissingMedia, ErrTooLong,
// ErrUnsupported, ErrInvalidParam. A media given for a template without a media header is
// not sent (nor an error): other channels may still use it.
func (d *Definition) RenderWhite(in Input) (*WhiteTemplate, error) {
	p, err := d.program()
	if err != nil {
		return nil, err
	}
	if err := p.check(d, in); err != nil {
		return nil, err
	}
	t := &WhiteTemplate{Name: d.Name, Language: Language{Code: d.Language}}
	n := len(p.buttons) + 2
	t.Components = make([]SendComponent, 0, n)

	// Header.
	switch {
	case p.mediaType != "":
		m := in.Media
		switch {
		case m == nil || m.URL == "":
			return nil, fmt.Errorf("%w: %s has a%s %s header: give media of type %s", ErrMissingMedia, d.label(), an(p.headerFmt), p.headerFmt, p.mediaType)
		case m.Type != p.mediaType:
			return nil, fmt.Errorf("%w: %s has a%s %s header, the job's media is of type %q", ErrMissingMedia, d.label(), an(p.headerFmt), p.headerFmt, m.Type)
		}
		link := &MediaLink{Link: m.URL}
		par := SendParameter{Type: p.mediaType}
		switch p.mediaType {
		case job.MediaImage:
			par.Image = link
		case job.MediaVideo:
			par.Video = link
		case job.MediaDocument:
			link.Filename = m.Filename
			par.Document = link
		}
		t.Components = append(t.Components, SendComponent{Type: "header", Parameters: []SendParameter{par}})
	case p.header != nil && len(p.header.send) > 0:
		if l := p.header.length(in.Params); l > MaxHeaderLen {
			return nil, fmt.Errorf("%w: %s: header is %d characters with its parameter, more than %d", ErrTooLong, d.label(), l, MaxHeaderLen)
		}
		t.Components = append(t.Components, SendComponent{Type: "header", Parameters: p.header.params(in.Params)})
	}

	// Body.
	if len(p.body.send) > 0 {
		if l := p.body.length(in.Params); l > MaxBodyLen {
			return nil, fmt.Errorf("%w: %s: body is %d characters with its parameters, more than %d", ErrTooLong, d.label(), l, MaxBodyLen)
		}
		t.Components = append(t.Components, SendComponent{Type: "body", Parameters: p.body.params(in.Params)})
	}

	switch p.headerFmt {
	case "", HeaderText, HeaderImage, HeaderVideo, HeaderDocument:
	default:
		return nil, fmt.Errorf("%w: %s has a %s header, which a job cannot fill", ErrUnsupported, d.label(), p.headerFmt)
	}
	if p.unsupComp != "" {
		return nil, fmt.Errorf("%w: %s has a %s component, which a job cannot fill", ErrUnsupported, d.label(), p.unsupComp)
	}
	if p.unsupBtn != "" {
		return nil, fmt.Errorf("%w: %s: button %s is of type %s, which a job cannot fill", ErrUnsupported, d.label(), p.unsupIndex, p.unsupBtn)
	}
	if err := p.checkWhiteValues(d, in.Params); err != nil {
		return nil, err
	}

	// Buttons.
	for i := range p.buttons {
		b := &p.buttons[i]
		switch {
		case b.typ == ButtonURL && b.dynamic:
			t.Components = append(t.Components, SendComponent{Type: "button", SubType: "url", Index: b.index,
				Parameters: []SendParameter{{Type: "text", Text: in.Buttons[b.index]}}})
		case b.typ == ButtonCopyCode:
			t.Components = append(t.Components, SendComponent{Type: "button", SubType: ButtonCopyCode, Index: b.index,
				Parameters: []SendParameter{{Type: "coupon_code", CouponCode: in.Buttons[b.index]}}})
		case b.typ == ButtonQuickReply:
			if v := in.Buttons[b.index]; v != "" {
				t.Components = append(t.Components, SendComponent{Type: "button", SubType: "quick_reply", Index: b.index,
					Parameters: []SendParameter{{Type: "payload", Payload: v}}})
			}
		}
	}
	if len(t.Components) == 0 {
		t.Components = nil
	}
	return t, nil
}

// RenderText renders the template as plain text for the grey gateway and SMS: the TEXT
// header, the body and the footer, separated by a blank line; then, after another blank
// line, one line per URL button ("Text: https://...", with the job's suffix filled in) and
// per PHONE_NUMBER button ("Text: +15550051310"). Other buttons cannot be tapped in plain
// text and are left out, and so is the media: the channel sends the file (grey) or appends
// its link (SMS) itself.
//
// It checks params and buttons as RenderWhite does (ErrMissingParam, ErrExtraParam,
// ErrMissingButton) but not the WhatsApp-only rules (media, lengths, unsupported
// features, whitespace in parameters).
func (d *Definition) RenderText(in Input) (string, error) {
	p, err := d.program()
	if err != nil {
		return "", err
	}
	if err := p.check(d, in); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(p.body.static + 128)
	if p.header != nil {
		p.header.write(&b, in.Params)
		b.WriteString("\n\n")
	}
	p.body.write(&b, in.Params)
	if p.footer != "" {
		b.WriteString("\n\n")
		b.WriteString(p.footer)
	}
	first := true
	for i := range p.buttons {
		bt := &p.buttons[i]
		var target string
		switch bt.typ {
		case ButtonURL:
			target = bt.url
			if bt.dynamic {
				target += in.Buttons[bt.index]
			}
		case ButtonPhoneNumber:
			target = dialable(bt.phone)
		default:
			continue
		}
		if first {
			b.WriteString("\n\n")
			first = false
		} else {
			b.WriteByte('\n')
		}
		if bt.text != "" {
			b.WriteString(bt.text)
			b.WriteString(": ")
		}
		b.WriteString(target)
	}
	return b.String(), nil
}

// check finds params and button values that are missing or have no place in the template.
// It lists every offending key at once, so one dead-lettered job tells the whole story.
func (p *program) check(d *Definition, in Input) error {
	var missing []string
	for _, k := range p.keys {
		if in.Params[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s needs params %s", ErrMissingParam, d.label(), quoteList(missing))
	}
	// Every key of the template is present, so any surplus is a key it does not have.
	if len(in.Params) > len(p.keys) {
		var extra []string
		for k := range in.Params {
			if _, ok := p.keySet[k]; !ok {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		return fmt.Errorf("%w: %s has no variable for params %s (it takes %s)", ErrExtraParam, d.label(), quoteList(extra), p.takes())
	}

	given := 0
	for i := range p.buttons {
		b := &p.buttons[i]
		if !b.takesValue {
			continue
		}
		v, ok := in.Buttons[b.index]
		if ok {
			given++
		}
		if b.required && v == "" {
			what := "code"
			if b.typ == ButtonURL {
				what = "URL suffix for " + b.url + "..."
			}
			return fmt.Errorf("%w: %s: button %s (%s %q) needs its %s in buttons[%q]", ErrMissingButton, d.label(), b.index, b.typ, b.text, what, b.index)
		}
	}
	if len(in.Buttons) > given {
		var extra []string
		for k := range in.Buttons {
			if !p.buttonTakes(k) {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		return fmt.Errorf("%w: %s has no button that takes a value at index %s", ErrExtraParam, d.label(), quoteList(extra))
	}
	return nil
}

// checkWhiteValues applies the Cloud API's rule for text parameters: no newline, no tab,
// at most four spaces in a row.
func (p *program) checkWhiteValues(d *Definition, params map[string]string) error {
	for _, k := range p.keys {
		v := params[k]
		if strings.ContainsAny(v, "\n\r\t") || strings.Contains(v, "     ") {
			return fmt.Errorf("%w: %s: params[%q] has a newline, a tab or more than 4 spaces in a row", ErrInvalidParam, d.label(), k)
		}
	}
	return nil
}

func (p *program) buttonTakes(index string) bool {
	for i := range p.buttons {
		if p.buttons[i].index == index && p.buttons[i].takesValue {
			return true
		}
	}
	return false
}

// takes describes the params a template takes, for error messages.
func (p *program) takes() string {
	if len(p.keys) == 0 {
		return "none"
	}
	return quoteList(p.keys)
}

// length is the number of characters of the text with params filled in.
func (tp *textProg) length(params map[string]string) int {
	n := tp.static
	for _, k := range tp.keys {
		n += runes(params[k])
	}
	return n
}

// params returns the send parameters of the text's variables.
func (tp *textProg) params(params map[string]string) []SendParameter {
	out := make([]SendParameter, len(tp.send))
	for i, s := range tp.send {
		out[i] = SendParameter{Type: "text", ParameterName: s.name, Text: params[s.key]}
	}
	return out
}

// write writes the text with params filled in.
func (tp *textProg) write(b *strings.Builder, params map[string]string) {
	for i, k := range tp.keys {
		b.WriteString(tp.lits[i])
		b.WriteString(params[k])
	}
	b.WriteString(tp.lits[len(tp.lits)-1])
}

// dialable writes a phone button's number in international form, "+" first, as Meta's
// listings sometimes leave it out.
func dialable(phone string) string {
	if phone == "" || phone[0] == '+' {
		return phone
	}
	for i := 0; i < len(phone); i++ {
		if phone[i] < '0' || phone[i] > '9' {
			return phone
		}
	}
	return "+" + phone
}

func quoteList(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	return strings.Join(q, ", ")
}

// an returns "n" before a vowel-initial word, for "an IMAGE header".
func an(word string) string {
	if word != "" && strings.ContainsRune("AEIOU", rune(word[0])) {
		return "n"
	}
	return ""
}
