package templates

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-notify/herald/internal/job"
)

// HeaderParam is the params key that holds the value of a POSITIONAL template's header
// variable ({{1}} of the header, which is not {{1}} of the body).
const HeaderParam = "header"

// program is a definition compiled for rendering: literal text split around its variables,
// the params keys each variable reads, and what each button needs. It is built once per
// definition and read concurrently.
type program struct {
	named      bool
	header     *textProg // a TEXT header, with or without a variable
	headerFmt  string    // the header's format, "" without a header
	mediaType  string    // job.Media type an IMAGE, VIDEO or DOCUMENT header needs
	body       textProg
	footer     string
	buttons    []buttonProg
	keys       []string            // every params key the template needs, sorted
	keySet     map[string]struct{} // the same, for finding extra params
	unsupBtn   string              // the first button type RenderWhite cannot fill
	unsupIndex string
	unsupComp  string // the first component type RenderWhite cannot fill
}

// textProg is a header or body text split around its variables.
type textProg struct {
	lits   []string  // literal text: len(keys)+1 pieces around the variables
	keys   []string  // the params key of each variable occurrence, in text order
	send   []sendVar // each distinct variable once, in the order the Cloud API wants them
	static int       // characters of literal text, for the length limits
}

// sendVar is one parameter of a send: the params key it reads and, for a NAMED template,
// its parameter_name.
type sendVar struct{ key, name string }

// buttonProg is one button compiled.
type buttonProg struct {
	typ     string
	index   string // position in the BUTTONS component, the key of its value in a job
	text    string
	url     string // the full URL, or the part before the variable of a dynamic one
	dynamic bool   // a URL button ending in a variable
	phone   string
	// takesValue: the job may give a value for this button; required: it must.
	takesValue, required bool
}

func compile(d *Definition) (*program, error) {
	p := &program{named: d.ParameterFormat == FormatNamed, keySet: map[string]struct{}{}}
	var seen [4]bool
	for i := range d.Components {
		c := &d.Components[i]
		var slot int
		switch c.Type {
		case ComponentHeader:
			slot = 0
		case ComponentBody:
			slot = 1
		case ComponentFooter:
			slot = 2
		case ComponentButtons:
			slot = 3
		default:
			// CAROUSEL, LIMITED_TIME_OFFER, ...: kept, and left out of plain text, but
			// RenderWhite refuses them, as their send parameters have no place in a job.
			if p.unsupComp == "" {
				p.unsupComp = c.Type
			}
			continue
		}
		if seen[slot] {
			return nil, fmt.Errorf("more than one %s component", c.Type)
		}
		seen[slot] = true
		var err error
		switch slot {
		case 0:
			err = p.compileHeader(c)
		case 1:
			err = p.compileBody(c)
		case 2:
			err = p.compileFooter(c)
		case 3:
			err = p.compileButtons(c)
		}
		if err != nil {
			return nil, err
		}
	}
	if !seen[1] {
		return nil, errors.New("no BODY component")
	}
	for k := range p.keySet {
		p.keys = append(p.keys, k)
	}
	slices.Sort(p.keys)
	return p, nil
}

func (p *program) compileHeader(c *Component) error {
	p.headerFmt = c.Format
	switch c.Format {
	case HeaderText:
		if c.Text == "" {
			return errors.New("TEXT header without text")
		}
		if n := runes(c.Text); n > MaxHeaderLen {
			return fmt.Errorf("header text is %d characters, more than %d", n, MaxHeaderLen)
		}
		tp, err := p.compileText(c.Text, "header")
		if err != nil {
			return err
		}
		if len(tp.send) > 1 {
			return errors.New("header has more than one variable")
		}
		p.header = tp
	case HeaderImage:
		p.mediaType = job.MediaImage
	case HeaderVideo:
		p.mediaType = job.MediaVideo
	case HeaderDocument:
		p.mediaType = job.MediaDocument
	case "":
		return errors.New("header without format")
	}
	return nil
}

func (p *program) compileBody(c *Component) error {
	if c.Text == "" {
		return errors.New("BODY without text")
	}
	if n := runes(c.Text); n > MaxBodyLen {
		return fmt.Errorf("body text is %d characters, more than %d", n, MaxBodyLen)
	}
	tp, err := p.compileText(c.Text, "body")
	if err != nil {
		return err
	}
	p.body = *tp
	return nil
}

func (p *program) compileFooter(c *Component) error {
	if strings.Contains(c.Text, "{{") {
		return errors.New("footer cannot have variables")
	}
	if n := runes(c.Text); n > MaxFooterLen {
		return fmt.Errorf("footer text is %d characters, more than %d", n, MaxFooterLen)
	}
	p.footer = c.Text
	return nil
}

func (p *program) compileButtons(c *Component) error {
	if len(c.Buttons) > MaxButtons {
		return fmt.Errorf("%d buttons, more than %d", len(c.Buttons), MaxButtons)
	}
	for i, b := range c.Buttons {
		bp := buttonProg{typ: b.Type, index: strconv.Itoa(i), text: b.Text, url: b.URL, phone: b.PhoneNumber}
		switch b.Type {
		case ButtonURL:
			if b.URL == "" {
				return fmt.Errorf("URL button %d without url", i)
			}
			if n := strings.Count(b.URL, "{{"); n > 0 {
				start := strings.Index(b.URL, "{{")
				if n > 1 || !strings.HasSuffix(b.URL, "}}") || !validVar(b.URL[start+2:len(b.URL)-2]) {
					return fmt.Errorf("URL button %d: a URL may have one variable, at its end, such as https://example.com/{{1}}", i)
				}
				bp.url, bp.dynamic = b.URL[:start], true
				bp.takesValue, bp.required = true, true
			}
		case ButtonQuickReply:
			bp.takesValue = true // the payload echoed back on a tap; optional
		case ButtonCopyCode:
			bp.takesValue, bp.required = true, true
		case ButtonPhoneNumber:
			if b.PhoneNumber == "" {
				return fmt.Errorf("PHONE_NUMBER button %d without phone_number", i)
			}
		case "FLOW", "CATALOG", "VOICE_CALL":
			// Sent without parameters: the Cloud API fills in its defaults.
		case "":
			return fmt.Errorf("button %d without type", i)
		default:
			if p.unsupBtn == "" {
				p.unsupBtn, p.unsupIndex = b.Type, bp.index
			}
		}
		p.buttons = append(p.buttons, bp)
	}
	return nil
}

// compileText splits text around its variables and checks them against the parameter
// format: {{1}}..{{n}} with no gap, or {{name}}.
func (p *program) compileText(text, where string) (*textProg, error) {
	tp := &textProg{}
	rest := text
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("%s: unclosed {{", where)
		}
		v := rest[i+2 : i+2+j]
		if !validVar(v) {
			return nil, fmt.Errorf("%s: malformed variable {{%s}}: use {{1}} or {{lower_case_name}}", where, v)
		}
		positional := v[0] >= '0' && v[0] <= '9'
		switch {
		case p.named && positional:
			return nil, fmt.Errorf("%s: variable {{%s}} in a NAMED template", where, v)
		case !p.named && !positional:
			return nil, fmt.Errorf("%s: variable {{%s}} in a POSITIONAL template (set parameter_format to NAMED)", where, v)
		}
		tp.lits = append(tp.lits, rest[:i])
		tp.keys = append(tp.keys, v)
		rest = rest[i+2+j+2:]
	}
	tp.lits = append(tp.lits, rest)
	for _, l := range tp.lits {
		tp.static += runes(l)
	}

	// Distinct variables: in order of first use for NAMED, by position for POSITIONAL.
	for _, k := range tp.keys {
		if !slices.ContainsFunc(tp.send, func(s sendVar) bool { return s.key == k }) {
			tp.send = append(tp.send, sendVar{key: k})
		}
	}
	if p.named {
		for i := range tp.send {
			tp.send[i].name = tp.send[i].key
		}
	} else {
		slices.SortFunc(tp.send, func(a, b sendVar) int {
			x, _ := strconv.Atoi(a.key)
			y, _ := strconv.Atoi(b.key)
			return x - y
		})
		for i, s := range tp.send {
			if s.key != strconv.Itoa(i+1) {
				return nil, fmt.Errorf("%s: variables must be {{1}} to {{%d}} without a gap, {{%d}} is missing", where, len(tp.send), i+1)
			}
		}
		if where == "header" && len(tp.send) == 1 {
			// The header's {{1}} is its own variable, read from params["header"].
			tp.send[0].key = HeaderParam
			for i := range tp.keys {
				tp.keys[i] = HeaderParam
			}
		}
	}
	for _, s := range tp.send {
		p.keySet[s.key] = struct{}{}
	}
	return tp, nil
}

// validVar: a position without a leading zero (1-99) or a lower-case name, the same shapes
// a job's params keys may take.
func validVar(v string) bool {
	if v == "" {
		return false
	}
	if v[0] >= '0' && v[0] <= '9' {
		if v[0] == '0' || len(v) > 2 {
			return false
		}
		for i := 1; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return false
			}
		}
		return true
	}
	if len(v) > 64 || !(v[0] >= 'a' && v[0] <= 'z' || v[0] == '_') {
		return false
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
