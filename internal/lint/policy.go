package lint

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/herald-notify/herald/internal/templates"
)

// token is one word of a text: its byte span in the original text and its normalised form
// (lower case, ё as е).
type token struct {
	start, end int
	norm       string
}

// normWord lower-cases a word and folds ё into е, as Russian writing often omits the dots.
func normWord(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "ё", "е")
}

// tokenize splits text into words: runs of letters, digits and combining marks. Hyphens,
// apostrophes and punctuation separate words, so "промо-код" is two words.
func tokenize(text string) []token {
	var out []token
	start := -1
	for i, r := range text {
		inWord := unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
		switch {
		case inWord && start < 0:
			start = i
		case !inWord && start >= 0:
			out = append(out, token{start: start, end: i, norm: normWord(text[start:i])})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, token{start: start, end: len(text), norm: normWord(text[start:])})
	}
	return out
}

// wordPat is one word of a pattern: a whole word, or a stem when prefix is set.
type wordPat struct {
	word   string
	prefix bool
}

// pattern is a compiled vocabulary entry: one word or a phrase of consecutive words.
type pattern []wordPat

func compilePattern(s string) pattern {
	var p pattern
	for _, w := range strings.Fields(s) {
		stem, prefix := strings.CutSuffix(w, "*")
		p = append(p, wordPat{word: normWord(stem), prefix: prefix})
	}
	return p
}

// matchAt returns how many tokens p matches starting at toks[i], or 0.
func (p pattern) matchAt(toks []token, i int) int {
	if len(p) == 0 || i+len(p) > len(toks) {
		return 0
	}
	for k, w := range p {
		t := toks[i+k].norm
		if w.prefix && !strings.HasPrefix(t, w.word) || !w.prefix && t != w.word {
			return 0
		}
	}
	return len(p)
}

// compiledVocab is a vocab with its patterns compiled.
type compiledVocab struct {
	*vocab
	strong, weak []pattern
}

func compileAll(ss []string) []pattern {
	out := make([]pattern, 0, len(ss))
	for _, s := range ss {
		out = append(out, compilePattern(s))
	}
	return out
}

// The vocabulary compiled once, at package initialisation.
var (
	neutralPats       = compileAll(neutralPhrases)
	offerPats         = compileAll(offerWords)
	percentBeforePats = compileAll(percentBefore)
	percentAfterPats  = compileAll(percentAfter)
	greetingPats      = compileVocab(&greetingVocab)
	policyPats        = func() []compiledVocab {
		out := make([]compiledVocab, 0, len(policyVocab))
		for _, v := range policyVocab {
			out = append(out, compileVocab(v))
		}
		return out
	}()
	percentRE = regexp.MustCompile(`\d{1,3}(?:[.,]\d{1,2})?\s?%`)
)

func compileVocab(v *vocab) compiledVocab {
	return compiledVocab{vocab: v, strong: compileAll(v.strong), weak: compileAll(v.weak)}
}

// text is one scanned text of a template.
type text struct {
	comp    string
	raw     string
	toks    []token
	blocked []bool // tokens inside a neutral phrase
}

// match is one vocabulary hit: tokens [i, i+n) of a text.
type match struct {
	i, n   int
	strong bool
}

// matches returns the non-overlapping hits of a vocab in t, preferring at each position the
// longest pattern and, at equal length, a strong one.
func (t *text) matches(strong, weak []pattern) []match {
	var out []match
	for i := 0; i < len(t.toks); {
		best := match{i: i}
		try := func(ps []pattern, isStrong bool) {
			for _, p := range ps {
				n := p.matchAt(t.toks, i)
				if n == 0 || n < best.n || n == best.n && !isStrong {
					continue
				}
				if t.isBlocked(i, n) {
					continue
				}
				best = match{i: i, n: n, strong: isStrong}
			}
		}
		try(strong, true)
		try(weak, false)
		if best.n == 0 {
			i++
			continue
		}
		out = append(out, best)
		i += best.n
	}
	return out
}

func (t *text) isBlocked(i, n int) bool {
	for k := i; k < i+n; k++ {
		if t.blocked[k] {
			return true
		}
	}
	return false
}

func (t *text) span(m match) Span {
	return span(t.raw, t.toks[m.i].start, t.toks[m.i+m.n-1].end)
}

// maskVars blanks out the variables of s (keeping byte offsets), so that a variable named
// {{promo_code}} is not read as wording.
func maskVars(s string) string {
	b := []byte(s)
	for _, v := range scanVars(s) {
		end := v.end
		if !strings.HasSuffix(s[v.start:v.end], "}}") {
			end = v.start + 2 // an unclosed "{{": the rest is still text
		}
		for k := v.start; k < end; k++ {
			b[k] = ' '
		}
	}
	return string(b)
}

// texts returns the header, body, footer and button-label texts of the definition,
// tokenised, with neutral phrases marked.
func (l *linter) texts() []*text {
	var out []*text
	addText := func(comp, s string) {
		if strings.TrimSpace(s) == "" {
			return
		}
		t := &text{comp: comp, raw: s, toks: tokenize(maskVars(s))}
		t.blocked = make([]bool, len(t.toks))
		for i := range t.toks {
			for _, p := range neutralPats {
				for k := range p.matchAt(t.toks, i) {
					t.blocked[i+k] = true
				}
			}
		}
		out = append(out, t)
	}
	seen := map[string]bool{}
	for _, c := range l.def.Components {
		if seen[c.Type] {
			continue // a duplicate is already an error; lint the first one
		}
		seen[c.Type] = true
		switch c.Type {
		case templates.ComponentHeader:
			if c.Format == templates.HeaderText {
				addText("header", c.Text)
			}
		case templates.ComponentBody:
			addText("body", c.Text)
		case templates.ComponentFooter:
			addText("footer", c.Text)
		case templates.ComponentButtons:
			for i, b := range c.Buttons {
				addText(fmt.Sprintf("buttons[%d]", i), b.Text)
			}
		}
	}
	return out
}

// policy runs the policy rules over every text of the template.
func (l *linter) policy() {
	cat := l.category()
	marketing := cat == templates.CategoryMarketing
	texts := l.texts()

	hasOffer := false
	for _, t := range texts {
		if len(t.matches(offerPats, nil)) > 0 {
			hasOffer = true
		}
	}
	for _, t := range texts {
		for _, v := range policyPats {
			if v.marketingOK && marketing {
				continue
			}
			for _, m := range t.matches(v.strong, v.weak) {
				if m.strong {
					l.add(v.code, Error, t.comp, t.span(m), reason(v.strongReason, cat))
				} else {
					l.add(v.code, Warning, t.comp, t.span(m), reason(v.weakReason, cat))
				}
			}
		}
		if marketing {
			continue
		}
		for _, m := range t.matches(nil, greetingPats.weak) {
			if hasOffer {
				l.add("greeting_offer", Error, t.comp, t.span(m), reason(greetingVocab.strongReason, cat))
			} else {
				l.add(greetingVocab.code, Warning, t.comp, t.span(m), reason(greetingVocab.weakReason, cat))
			}
		}
		l.percentOff(t, cat)
		if t.comp == "body" {
			l.exclamations(t, cat)
		}
	}
}

// reason fills the category into a reason that names it.
func reason(format, cat string) string {
	if strings.Contains(format, "%s") {
		return fmt.Sprintf(format, cat)
	}
	return format
}

// percentOff flags a percentage offered as a reduction: "-20%", "до 70%", "up to 50%",
// "30% off", "скидка 10%". A bare percentage ("ставка 12%", "заказ собран на 80%") is not
// an offer.
func (l *linter) percentOff(t *text, cat string) {
	masked := maskVars(t.raw)
	for _, loc := range percentRE.FindAllStringIndex(masked, -1) {
		start, end := loc[0], loc[1]
		found := false
		before := strings.TrimRight(masked[:start], " \u00a0")
		for _, dash := range []string{"-", "\u2212", "\u2013"} { // hyphen, minus, en dash
			if r, ok := strings.CutSuffix(before, dash); ok {
				// "-20%" is an offer; "1-2%" is a range.
				if tr := strings.TrimRight(r, " "); tr == "" || !unicode.IsDigit(rune(tr[len(tr)-1])) {
					start, found = len(r), true
				}
				break
			}
		}
		prev, next := -1, -1
		for i, tok := range t.toks {
			if tok.end <= loc[0] && strings.TrimSpace(masked[tok.end:loc[0]]) == "" {
				prev = i
			}
			if tok.start >= loc[1] && next < 0 && strings.TrimSpace(masked[loc[1]:tok.start]) == "" {
				next = i
			}
		}
		if prev >= 0 && matchesAny(percentBeforePats, t.toks, prev) {
			// "до 5%" only reads as "up to" on its own; "to 5%" needs "up".
			start, found = t.toks[prev].start, true
		} else if prev >= 1 && t.toks[prev].norm == "to" && t.toks[prev-1].norm == "up" {
			start, found = t.toks[prev-1].start, true
		}
		if next >= 0 && matchesAny(percentAfterPats, t.toks, next) {
			end, found = t.toks[next].end, true
		}
		if found {
			l.add("percent_off", Error, t.comp, span(t.raw, start, end),
				reason("a percent-off offer in a %s template: Meta rejects discounts outside MARKETING", cat))
		}
	}
}

func matchesAny(ps []pattern, toks []token, i int) bool {
	for _, p := range ps {
		if p.matchAt(toks, i) > 0 {
			return true
		}
	}
	return false
}

// exclamations warns about an exclamation-heavy non-marketing body ("!!" or three "!"):
// reviewers read excitement as promotion.
func (l *linter) exclamations(t *text, cat string) {
	if i := strings.Index(t.raw, "!!"); i >= 0 {
		j := i
		for j < len(t.raw) && t.raw[j] == '!' {
			j++
		}
		l.add("exclamation", Warning, t.comp, span(t.raw, i, j), reason("repeated exclamation marks read as promotional in a %s template", cat))
		return
	}
	n := 0
	for i := 0; i < len(t.raw); i++ {
		if t.raw[i] == '!' {
			if n++; n == 3 {
				l.add("exclamation", Warning, t.comp, span(t.raw, i, i+1), reason("three or more exclamation marks read as promotional in a %s template", cat))
				return
			}
		}
	}
}
