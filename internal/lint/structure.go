package lint

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/herald-notify/herald/internal/templates"
)

// varKind is what the inside of {{ }} is.
type varKind int

const (
	varPositional varKind = iota // {{1}}
	varNamed                     // {{order_id}}
	varMalformed                 // {{ 1 }}, {{Name}}, {{01}}, an unclosed {{
)

// varRef is one variable occurrence in a text; start and end are byte offsets of the whole
// {{...}}.
type varRef struct {
	start, end int
	key        string // what is inside the braces
	kind       varKind
	num        int // the position of a positional variable
}

// scanVars finds the variables of a text. An unclosed "{{" is a malformed variable running
// to the end of the text.
func scanVars(text string) []varRef {
	var out []varRef
	for off := 0; ; {
		i := strings.Index(text[off:], "{{")
		if i < 0 {
			return out
		}
		i += off
		j := strings.Index(text[i+2:], "}}")
		if j < 0 {
			return append(out, varRef{start: i, end: len(text), key: text[i+2:], kind: varMalformed})
		}
		end := i + 2 + j + 2
		// "{{{1}}}" closes at the first "}}"; take the extra brace into the span.
		for end < len(text) && text[end] == '}' {
			end++
		}
		key := text[i+2 : i+2+j]
		v := varRef{start: i, end: end, key: key, kind: classify(key)}
		if end != i+2+j+2 {
			v.kind = varMalformed
		}
		if v.kind == varPositional {
			v.num, _ = strconv.Atoi(key)
		}
		out = append(out, v)
		off = end
	}
}

// classify: a position 1-99 without a leading zero, a lower-case name, or malformed: the
// same shapes the templates package accepts.
func classify(key string) varKind {
	if key == "" {
		return varMalformed
	}
	if key[0] >= '0' && key[0] <= '9' {
		if key[0] == '0' || len(key) > 2 {
			return varMalformed
		}
		for i := 1; i < len(key); i++ {
			if key[i] < '0' || key[i] > '9' {
				return varMalformed
			}
		}
		return varPositional
	}
	if len(key) > 64 || !(key[0] >= 'a' && key[0] <= 'z' || key[0] == '_') {
		return varMalformed
	}
	for i := 1; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return varMalformed
		}
	}
	return varNamed
}

// malformedReason says what is wrong with a malformed variable.
func malformedReason(key string) string {
	switch {
	case strings.TrimSpace(key) != key || strings.ContainsAny(key, " \t"):
		return "malformed variable: no spaces inside {{ }}"
	case strings.HasPrefix(key, "{") || strings.HasSuffix(key, "}"):
		return "malformed variable: use exactly two braces, {{1}}"
	case key != "" && key[0] >= '0' && key[0] <= '9':
		return "malformed variable: positions are 1 to 99 without a leading zero"
	case strings.ToLower(key) != key:
		return "malformed variable: names are lower case letters, digits and underscores"
	default:
		return "malformed variable: use {{1}} or {{lower_case_name}}"
	}
}

// structure runs the structure rules.
func (l *linter) structure() {
	d := l.def
	seen := map[string]bool{}
	for _, c := range d.Components {
		switch c.Type {
		case templates.ComponentHeader, templates.ComponentBody, templates.ComponentFooter, templates.ComponentButtons:
			if seen[c.Type] {
				l.add("duplicate_component", Error, "template", Span{}, fmt.Sprintf("more than one %s component", c.Type))
			}
			seen[c.Type] = true
		case "LIMITED_TIME_OFFER":
			if l.category() != templates.CategoryMarketing {
				l.add("promo_in_utility", Error, "template", Span{}, "a LIMITED_TIME_OFFER component is marketing by definition")
			}
		}
	}
	switch d.Category {
	case "":
		l.add("no_category", Warning, "template", Span{}, "no category: Meta requires one; linted as UTILITY")
	case templates.CategoryUtility, templates.CategoryMarketing, templates.CategoryAuthentication:
	default:
		l.add("unknown_category", Error, "template", Span{}, fmt.Sprintf("category %q is not UTILITY, MARKETING or AUTHENTICATION", d.Category))
	}
	if d.ParameterFormat != templates.FormatPositional && d.ParameterFormat != templates.FormatNamed {
		l.add("bad_parameter_format", Error, "template", Span{}, fmt.Sprintf("parameter_format %q is not POSITIONAL or NAMED", d.ParameterFormat))
	}

	header := l.component(templates.ComponentHeader)
	body := l.component(templates.ComponentBody)
	footer := l.component(templates.ComponentFooter)
	buttons := l.component(templates.ComponentButtons)

	var headerVars, bodyVars []varRef
	if header != nil {
		headerVars = l.header(header)
	}
	if body == nil || strings.TrimSpace(body.Text) == "" {
		l.add("no_body", Error, "template", Span{}, "a template needs a BODY with text")
	} else {
		bodyVars = scanVars(body.Text)
		l.tooLong("body_too_long", "body", body.Text, templates.MaxBodyLen)
		l.placement(body.Text, bodyVars)
	}
	l.variables(header, headerVars, body, bodyVars)
	if footer != nil {
		l.tooLong("footer_too_long", "footer", footer.Text, templates.MaxFooterLen)
		for _, v := range scanVars(footer.Text) {
			l.add("footer_variable", Error, "footer", span(footer.Text, v.start, v.end), "a footer cannot have variables")
		}
	}
	if buttons != nil {
		l.buttons(buttons.Buttons)
	}
}

// header checks a header's format, length and variable count; it returns the variables of a
// TEXT header.
func (l *linter) header(h *templates.Component) []varRef {
	switch h.Format {
	case templates.HeaderText:
		if strings.TrimSpace(h.Text) == "" {
			l.add("header_empty", Error, "header", Span{}, "a TEXT header needs text")
			return nil
		}
		l.tooLong("header_too_long", "header", h.Text, templates.MaxHeaderLen)
		vars := scanVars(h.Text)
		distinct := map[string]bool{}
		for _, v := range vars {
			distinct[v.key] = true
			if len(distinct) > 1 {
				l.add("header_too_many_vars", Error, "header", span(h.Text, v.start, v.end), "a header may have one variable")
				break
			}
		}
		return vars
	case templates.HeaderImage, templates.HeaderVideo, templates.HeaderDocument:
		if h.Example == nil || len(h.Example.HeaderHandle) == 0 {
			l.add("missing_media_example", Warning, "header", Span{},
				fmt.Sprintf("an %s header needs a sample (example.header_handle) when submitted", h.Format))
		}
	case "":
		l.add("header_format", Error, "header", Span{}, "a header needs a format: TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION")
	}
	return nil
}

// placement: no variable at the very start or end of the body, none side by side.
func (l *linter) placement(text string, all []varRef) {
	var vars []varRef
	for _, v := range all {
		if strings.HasSuffix(text[v.start:v.end], "}}") { // an unclosed "{{" is reported as malformed only
			vars = append(vars, v)
		}
	}
	if len(vars) == 0 {
		return
	}
	first, last := vars[0], vars[len(vars)-1]
	if strings.TrimSpace(text[:first.start]) == "" {
		l.add("var_at_start", Error, "body", span(text, first.start, first.end),
			"the body must not start with a variable: put some words before it")
	}
	if strings.TrimSpace(text[last.end:]) == "" {
		l.add("var_at_end", Error, "body", span(text, last.start, last.end),
			"the body must not end with a variable: put some words after it")
	}
	for i := 1; i < len(vars); i++ {
		a, b := vars[i-1], vars[i]
		if strings.TrimSpace(text[a.end:b.start]) == "" {
			l.add("var_adjacent", Error, "body", span(text, a.start, b.end),
				"two variables side by side: put words between them")
		}
	}
}

// variables checks the format, numbering and examples of the header's and the body's
// variables.
func (l *linter) variables(header *templates.Component, headerVars []varRef, body *templates.Component, bodyVars []varRef) {
	named := l.def.ParameterFormat == templates.FormatNamed
	var nPos, nNamed int
	for _, v := range slices.Concat(headerVars, bodyVars) {
		switch v.kind {
		case varPositional:
			nPos++
		case varNamed:
			nNamed++
		}
	}
	mixed := nPos > 0 && nNamed > 0
	check := func(comp string, c *templates.Component, vars []varRef) {
		if c == nil {
			return
		}
		var good []varRef // well-formed and of the declared format
		for _, v := range vars {
			sp := span(c.Text, v.start, v.end)
			switch {
			case v.kind == varMalformed:
				l.add("var_malformed", Error, comp, sp, malformedReason(v.key))
			case mixed && (v.kind == varPositional) == named:
				l.add("var_mixed", Error, comp, sp, "positional and named variables mixed: use one style throughout")
			case v.kind == varNamed && !named:
				l.add("var_format_mismatch", Error, comp, sp, "a named variable in a POSITIONAL template: set parameter_format to NAMED")
			case v.kind == varPositional && named:
				l.add("var_format_mismatch", Error, comp, sp, "a positional variable in a NAMED template: use {{lower_case_name}}")
			default:
				good = append(good, v)
			}
		}
		seen := map[string]bool{}
		for _, v := range good {
			if seen[v.key] {
				l.add("var_repeated", Warning, comp, span(c.Text, v.start, v.end),
					fmt.Sprintf("{{%s}} is used twice: reviewers read it as an error; give each place its own variable", v.key))
			}
			seen[v.key] = true
		}
		if named {
			l.namedExamples(comp, c, good)
		} else {
			l.positionalNumbering(comp, c, good)
			l.positionalExamples(comp, c, good)
		}
	}
	check("header", header, headerVars)
	if body != nil {
		check("body", body, bodyVars)
	}
}

// positionalNumbering: {{1}} to {{n}} without a gap, within one component.
func (l *linter) positionalNumbering(comp string, c *templates.Component, vars []varRef) {
	if len(vars) == 0 {
		return
	}
	nums := map[int]bool{}
	top := vars[0]
	for _, v := range vars {
		nums[v.num] = true
		if v.num > top.num {
			top = v
		}
	}
	for k := 1; k < top.num; k++ {
		if !nums[k] {
			l.add("var_gap", Error, comp, span(c.Text, top.start, top.end),
				fmt.Sprintf("{{%d}} is missing: variables must be numbered {{1}} to {{%d}} without a gap", k, top.num))
			return
		}
	}
}

// positionalExamples: example.header_text or example.body_text[0] has a non-empty value for
// every position.
func (l *linter) positionalExamples(comp string, c *templates.Component, vars []varRef) {
	var have []string
	if c.Example != nil {
		if comp == "header" {
			have = c.Example.HeaderText
		} else if len(c.Example.BodyText) > 0 {
			have = c.Example.BodyText[0]
		}
	}
	reported := map[int]bool{}
	top := 0
	for _, v := range vars {
		top = max(top, v.num)
		if reported[v.num] {
			continue
		}
		if v.num > len(have) || strings.TrimSpace(have[v.num-1]) == "" {
			reported[v.num] = true
			l.add("missing_example", Error, comp, span(c.Text, v.start, v.end),
				fmt.Sprintf("no example value for {{%d}}: Meta requires a sample for every variable", v.num))
		}
	}
	if len(have) > top {
		l.add("example_extra", Warning, comp, Span{},
			fmt.Sprintf("%d example values for %d variables", len(have), top))
	}
}

// namedExamples: example.*_named_params names every variable once.
func (l *linter) namedExamples(comp string, c *templates.Component, vars []varRef) {
	var have []templates.NamedExample
	if c.Example != nil {
		if comp == "header" {
			have = c.Example.HeaderTextNamedParams
		} else {
			have = c.Example.BodyTextNamedParams
		}
	}
	ex := map[string]string{}
	for _, e := range have {
		if _, dup := ex[e.ParamName]; dup {
			l.add("example_duplicate", Error, comp, Span{}, fmt.Sprintf("two examples for %q", e.ParamName))
		}
		ex[e.ParamName] = e.Example
	}
	used := map[string]bool{}
	for _, v := range vars {
		if used[v.key] {
			continue
		}
		used[v.key] = true
		if strings.TrimSpace(ex[v.key]) == "" {
			l.add("missing_example", Error, comp, span(c.Text, v.start, v.end),
				fmt.Sprintf("no example value for {{%s}}: Meta requires a sample for every variable", v.key))
		}
	}
	for _, e := range have {
		if !used[e.ParamName] {
			l.add("example_extra", Warning, comp, Span{}, fmt.Sprintf("example for %q, which the text does not use", e.ParamName))
		}
	}
}

// buttons checks counts per type, grouping, labels, URLs and phone numbers.
func (l *linter) buttons(bs []templates.Button) {
	if len(bs) == 0 {
		l.add("buttons_empty", Error, "buttons", Span{}, "a BUTTONS component without buttons")
		return
	}
	count := map[string]int{}
	for _, b := range bs {
		count[b.Type]++
	}
	limit := func(code string, n, max int, what string) {
		if n > max {
			l.add(code, Error, "buttons", Span{}, fmt.Sprintf("%d %s, the limit is %d", n, what, max))
		}
	}
	limit("too_many_buttons", len(bs), templates.MaxButtons, "buttons")
	limit("too_many_url_buttons", count[templates.ButtonURL], maxURLButtons, "URL buttons")
	limit("too_many_phone_buttons", count[templates.ButtonPhoneNumber], maxPhoneButtons, "phone-number buttons")
	limit("too_many_quick_replies", count[templates.ButtonQuickReply], maxQuickReplies, "quick-reply buttons")
	limit("too_many_copy_code_buttons", count[templates.ButtonCopyCode], maxCopyCodeButtons, "copy-code buttons")
	if count[templates.ButtonCopyCode] > 0 && l.category() != templates.CategoryMarketing {
		l.add("copy_code_not_marketing", Error, "buttons", Span{}, "a COPY_CODE (coupon) button is for MARKETING templates only")
	}
	// Quick replies and the other buttons must each form one group, or the API refuses the
	// combination.
	groups := 0
	for i, b := range bs {
		if i == 0 || (b.Type == templates.ButtonQuickReply) != (bs[i-1].Type == templates.ButtonQuickReply) {
			groups++
		}
	}
	if groups > 2 {
		l.add("buttons_not_grouped", Error, "buttons", Span{}, "quick-reply buttons and the other buttons must each be grouped together")
	}

	for i, b := range bs {
		comp := fmt.Sprintf("buttons[%d]", i)
		switch {
		case b.Type == "":
			l.add("button_type_missing", Error, comp, Span{}, "a button needs a type")
		case strings.TrimSpace(b.Text) == "" && b.Type != templates.ButtonCopyCode && b.Type != "OTP":
			l.add("button_text_missing", Error, comp, Span{}, "a button needs a label")
		}
		if n := utf8.RuneCountInString(b.Text); n > maxButtonText {
			l.add("button_text_too_long", Error, comp, span(b.Text, runeOffset(b.Text, maxButtonText), len(b.Text)),
				fmt.Sprintf("button label is %d characters, the limit is %d", n, maxButtonText))
		}
		for _, v := range scanVars(b.Text) {
			l.add("button_text_variable", Error, comp, span(b.Text, v.start, v.end), "a button label cannot have variables")
		}
		switch b.Type {
		case templates.ButtonURL:
			l.urlButton(comp+".url", b)
		case templates.ButtonPhoneNumber:
			if strings.TrimSpace(b.PhoneNumber) == "" {
				l.add("button_phone_missing", Error, comp, Span{}, "a PHONE_NUMBER button needs phone_number")
			}
		}
	}
}

// urlButton: a URL, with at most one variable, at its very end, after the host, with an
// example.
func (l *linter) urlButton(comp string, b templates.Button) {
	u := b.URL
	if strings.TrimSpace(u) == "" {
		l.add("button_url_missing", Error, comp, Span{}, "a URL button needs url")
		return
	}
	vars := scanVars(u)
	if len(vars) == 0 {
		return
	}
	if len(vars) > 1 {
		l.add("url_too_many_vars", Error, comp, span(u, vars[1].start, vars[len(vars)-1].end), "a URL may have one variable")
	}
	v := vars[0]
	sp := span(u, v.start, v.end)
	if v.end != len(u) || len(vars) > 1 {
		l.add("url_var_not_at_end", Error, comp, sp, "the URL variable must be at the very end, e.g. https://example.com/order/{{1}}")
	}
	if v.kind == varMalformed {
		l.add("var_malformed", Error, comp, sp, malformedReason(v.key))
	} else if v.key != "1" {
		l.add("url_var_name", Warning, comp, sp, "a URL button's variable is written {{1}}")
	}
	_, rest, ok := strings.Cut(u[:v.start], "://")
	if !ok {
		rest = u[:v.start]
	}
	if !strings.Contains(rest, "/") {
		l.add("url_var_in_host", Error, comp, sp, "the variable must come after the domain: https://example.com/{{1}}")
	}
	if len(b.Example) == 0 || strings.TrimSpace(b.Example[0]) == "" {
		l.add("missing_example", Error, comp, sp, "a URL with a variable needs an example: the full sample URL")
	}
}
