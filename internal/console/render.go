package console

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/herald-notify/herald/internal/phone"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"mask": phone.Mask,
	"pct": func(n, of float64) int {
		if of <= 0 {
			return 0
		}
		return min(100, int(n*100/of))
	},
	"num":   func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"money": func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"lower": strings.ToLower,
	// deref shows an optional figure of the API's answers (nil: nothing).
	"deref": func(v any) any {
		switch x := v.(type) {
		case *int:
			if x != nil {
				return *x
			}
		case *bool:
			if x != nil {
				return *x
			}
		}
		return ""
	},
}

// parsePages parses each page with the layout; a template error is a bug in this package.
func parsePages() map[string]*template.Template {
	names := []string{"login", "error", "overview", "campaigns", "campaign", "cancel", "import", "lookup", "dlq", "senders", "templates", "suppressions"}
	out := make(map[string]*template.Template, len(names))
	for _, n := range names {
		out[n] = template.Must(template.New(n).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html"))
	}
	return out
}
