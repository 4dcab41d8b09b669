package lint

import (
	"fmt"
	"io"
	"strconv"
)

// Format writes one line per finding, the way a compiler reports:
//
//	order_ready.json: error promo_in_utility body[0:12]: promotional wording ... — "Скидки"
//
// The span is [start:end] in characters and is left out, with the quoted text, when empty.
// Write errors are ignored: this is for a terminal.
func Format(w io.Writer, file string, fs []Finding) {
	for _, f := range fs {
		where := f.Component
		if f.Span != (Span{}) {
			where = fmt.Sprintf("%s[%d:%d]", f.Component, f.Span.Start, f.Span.End)
		}
		line := fmt.Sprintf("%s: %s %s %s: %s", file, f.Severity, f.Code, where, f.Reason)
		if f.Span.Text != "" {
			line += " \u2014 " + strconv.Quote(f.Span.Text)
		}
		fmt.Fprintln(w, line)
	}
}
