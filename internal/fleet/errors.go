package fleet

import (
	"errors"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every [Errors] value: the fleet is not usable.
var ErrInvalid = errors.New("invalid fleet configuration")

// Error is one problem of a fleet: the path of the value and the reason, never the value of a
// secret or of anything read from the environment.
type Error struct {
	// Path is where the problem is: senders[2].mps, tenants.bank.senders[0],
	// portfolios.shop-portfolio.daily_unique; "" for the document as a whole (a YAML syntax
	// error, with its line).
	Path string
	// Reason says what is wrong and, where it helps, what would be right.
	Reason string
}

// Error is "path: reason".
func (e Error) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// Errors is every problem of a fleet, in document order: validation reports them all at once.
type Errors []Error

// Error is one problem per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As each problem, and ErrInvalid.
func (es Errors) Unwrap() []error {
	out := make([]error, 0, len(es)+1)
	out = append(out, ErrInvalid)
	for _, e := range es {
		out = append(out, e)
	}
	return out
}

// list collects problems while decoding and validating.
type list struct{ errs Errors }

func (l *list) add(path, reason string) { l.errs = append(l.errs, Error{Path: path, Reason: reason}) }

func (l *list) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return l.errs
}
