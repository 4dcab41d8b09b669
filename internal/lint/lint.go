// Package lint is Herald's template linter: it predicts whether Meta will reject a WhatsApp
// template definition (Cloud API format) before it is submitted, because a rejection takes
// days and costs a campaign.
//
// Two kinds of rules run. Structure rules check what the Cloud API enforces mechanically:
// lengths, variable numbering and placement, examples, button counts. Policy rules look for
// wording Meta's review rejects: promotional content in a UTILITY or AUTHENTICATION template,
// surveys, threats and insults, and industries that are never approved. Policy words are
// matched by stem on word boundaries, in Russian and English; the vocabulary is data, in
// vocab.go.
//
// Every Finding is either an error (the template will very likely be rejected) or a warning
// (a risk worth a second look). Lint never fails: a definition that ParseDefinition would
// refuse is reported as findings, so the operator sees every problem at once.
package lint

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/herald-notify/herald/internal/templates"
)

// Severity of a finding.
type Severity string

// Severities.
const (
	// Error: the template will very likely be rejected (or the API refuses it outright).
	Error Severity = "error"
	// Warning: a risk of rejection or recategorisation; a human should look.
	Warning Severity = "warning"
)

// Span is the offending text of a finding: Start and End are CHARACTER (rune) offsets into
// the text of the finding's component (Text == string([]rune(componentText)[Start:End])), as
// a person counts them: 14 Cyrillic letters are 14, not 28. A finding about a component as a
// whole (too many buttons, no body) has an empty span.
type Span struct {
	Start int    `json:"start"`
	End   int    `json:"end"`
	Text  string `json:"text"`
}

// Finding is one problem found in a template.
type Finding struct {
	// Code names the rule, stable for scripts: "body_too_long", "var_at_start",
	// "promo_in_utility", "survey", "banned_industry", ...
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	// Component is where: "template", "header", "body", "footer", "buttons" (the component
	// as a whole), "buttons[i]" (the label of button i) or "buttons[i].url".
	Component string `json:"component"`
	Span      Span   `json:"span"`
	// Reason is one line of English.
	Reason string `json:"reason"`
}

// ErrNotTemplate is returned (wrapped) by LintJSON when the data is not a template
// definition at all: not a JSON object, or an object without "components".
var ErrNotTemplate = errors.New("not a template definition")

// Button limits of the Cloud API, per template.
const (
	maxURLButtons      = 2
	maxPhoneButtons    = 1
	maxQuickReplies    = 10
	maxCopyCodeButtons = 1
	maxButtonText      = 25
)

// LintJSON parses one template definition in the Cloud API's JSON format and lints it. The
// definition is not validated first: what templates.ParseDefinition would refuse is reported
// as findings. The error (wrapping ErrNotTemplate) is only for data that is not a template.
func LintJSON(data []byte) ([]Finding, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotTemplate, err)
	}
	if _, ok := probe["components"]; !ok {
		return nil, fmt.Errorf("%w: no \"components\"", ErrNotTemplate)
	}
	var d templates.Definition
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotTemplate, err)
	}
	return Lint(&d), nil
}

// HasErrors reports whether any finding is an error: the template should not be submitted.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == Error })
}

// Lint checks def and returns its findings sorted by component (template, header, body,
// footer, buttons in order), then position, then code. def is not modified and need not have
// been validated.
func Lint(def *templates.Definition) []Finding {
	if def == nil {
		return nil
	}
	d := normalised(def)
	l := &linter{def: d}
	l.name()
	l.structure()
	l.policy()
	if !HasErrors(l.out) {
		// A last net: whatever the catalogue itself refuses (a bad name or language code, a
		// rule added there later) must not lint clean.
		if err := d.Validate(); err != nil {
			l.add("invalid_definition", Error, "template", Span{}, err.Error())
		}
	}
	sortFindings(l.out)
	return l.out
}

// linter collects the findings of one definition.
type linter struct {
	def *templates.Definition
	out []Finding
}

func (l *linter) add(code string, sev Severity, comp string, sp Span, reason string) {
	for _, f := range l.out { // a rule reached twice (e.g. header and body) reports once
		if f.Code == code && f.Component == comp && f.Span == sp {
			return
		}
	}
	l.out = append(l.out, Finding{Code: code, Severity: sev, Component: comp, Span: sp, Reason: reason})
}

// category is the category the policy rules apply: an empty one is linted as UTILITY, which
// is what Herald sends.
func (l *linter) category() string {
	if l.def.Category == "" {
		return templates.CategoryUtility
	}
	return l.def.Category
}

// span makes the Span of text[start:end], given in bytes (the rules work on bytes), with
// its offsets in characters.
func span(text string, start, end int) Span {
	s := utf8.RuneCountInString(text[:start])
	return Span{Start: s, End: s + utf8.RuneCountInString(text[start:end]), Text: text[start:end]}
}

// MaxNameLen is the longest template name Meta accepts.
const MaxNameLen = 512

// name checks the template name the way Meta does: 1-512 lower-case letters, digits and
// underscores. It runs whatever else is wrong, since a bad name alone is refused.
func (l *linter) name() {
	n := l.def.Name
	switch {
	case n == "":
		l.add("bad_name", Error, "template", Span{}, "the template needs a name: lower-case letters, digits and underscores")
	case utf8.RuneCountInString(n) > MaxNameLen:
		l.add("bad_name", Error, "template", Span{}, fmt.Sprintf("the name is %d characters, the limit is %d", utf8.RuneCountInString(n), MaxNameLen))
	default:
		for i, r := range n {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
				l.add("bad_name", Error, "template", Span{}, fmt.Sprintf("name %q: only lower-case letters, digits and underscores are allowed, not %q at character %d", n, r, utf8.RuneCountInString(n[:i])))
				return
			}
		}
	}
}

// Errors counts the findings that predict a rejection (severity error): the number both
// herald templates lint and herald templates add report.
func Errors(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

// normalised returns a deep copy of d upper-cased the way templates.Validate does it, so
// that Lint sees "body" and "BODY" alike without touching the caller's definition.
func normalised(d *templates.Definition) *templates.Definition {
	c := &templates.Definition{
		ID: d.ID, Name: d.Name, Language: d.Language, Status: strings.ToUpper(d.Status),
		Category:         strings.ToUpper(d.Category),
		PreviousCategory: strings.ToUpper(d.PreviousCategory),
		ParameterFormat:  strings.ToUpper(d.ParameterFormat),
		Version:          d.Version, UpdatedAt: d.UpdatedAt,
	}
	if c.ParameterFormat == "" {
		c.ParameterFormat = templates.FormatPositional
	}
	c.Components = make([]templates.Component, len(d.Components))
	for i, comp := range d.Components {
		comp.Type = strings.ToUpper(comp.Type)
		comp.Format = strings.ToUpper(comp.Format)
		if comp.Type == templates.ComponentHeader && comp.Format == "" && comp.Text != "" {
			comp.Format = templates.HeaderText
		}
		comp.Buttons = slices.Clone(comp.Buttons)
		for j := range comp.Buttons {
			comp.Buttons[j].Type = strings.ToUpper(comp.Buttons[j].Type)
		}
		c.Components[i] = comp
	}
	return c
}

// component returns the first component of a type, or nil.
func (l *linter) component(typ string) *templates.Component {
	for i := range l.def.Components {
		if l.def.Components[i].Type == typ {
			return &l.def.Components[i]
		}
	}
	return nil
}

// componentRank orders findings the way a template reads.
func componentRank(c string) (int, int) {
	switch c {
	case "template":
		return 0, 0
	case "header":
		return 1, 0
	case "body":
		return 2, 0
	case "footer":
		return 3, 0
	case "buttons":
		return 4, 0
	}
	if rest, ok := strings.CutPrefix(c, "buttons["); ok {
		n, _, _ := strings.Cut(rest, "]")
		i, err := strconv.Atoi(n)
		if err == nil {
			return 5, i
		}
	}
	return 6, 0
}

func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		ra, ia := componentRank(a.Component)
		rb, ib := componentRank(b.Component)
		return cmp.Or(
			cmp.Compare(ra, rb), cmp.Compare(ia, ib), strings.Compare(a.Component, b.Component),
			cmp.Compare(a.Span.Start, b.Span.Start), cmp.Compare(a.Span.End, b.Span.End),
			strings.Compare(a.Code, b.Code), strings.Compare(a.Reason, b.Reason),
		)
	})
}

// runeOffset returns the byte offset of the n-th rune of s (len(s) when s is shorter).
func runeOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// tooLong reports the part of text beyond max characters.
func (l *linter) tooLong(code, comp, text string, max int) {
	if n := utf8.RuneCountInString(text); n > max {
		l.add(code, Error, comp, span(text, runeOffset(text, max), len(text)),
			fmt.Sprintf("%s is %d characters, the limit is %d", comp, n, max))
	}
}
