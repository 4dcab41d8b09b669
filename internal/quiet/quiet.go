// Package quiet decides when a bulk message may reach a recipient: never during the quiet
// hours (HERALD_QUIET_HOURS, default 21:00-09:00) of the recipient's local time, which comes
// from the phone number's time zones (libphonenumber).
package quiet

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/herald-notify/herald/internal/phone"
)

// ErrInvalid is returned (wrapped) by Parse for a malformed quiet-hours setting.
var ErrInvalid = errors.New("quiet hours must be HH:MM-HH:MM or off")

// Hours is a daily quiet period in local time. The zero value (and "off") is never quiet.
type Hours struct {
	on         bool
	start, end int // minutes after midnight; start > end wraps over midnight
	// Fallback is the zone used for numbers libphonenumber has no zone for.
	Fallback *time.Location
}

// Parse reads "21:00-09:00" or "off".
func Parse(s string) (Hours, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "off") {
		return Hours{}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Hours{}, fmt.Errorf("%w: %q", ErrInvalid, s)
	}
	start, err1 := clock(a)
	end, err2 := clock(b)
	if err1 != nil || err2 != nil || start == end {
		return Hours{}, fmt.Errorf("%w: %q", ErrInvalid, s)
	}
	return Hours{on: true, start: start, end: end}, nil
}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// On tells whether quiet hours are enforced.
func (h Hours) On() bool { return h.on }

// String is the setting in Parse's format.
func (h Hours) String() string {
	if !h.on {
		return "off"
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", h.start/60, h.start%60, h.end/60, h.end%60)
}

func (h Hours) quietAt(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	if h.start < h.end {
		return m >= h.start && m < h.end
	}
	return m >= h.start || m < h.end
}

// Next returns now when a message may go to e164 at now, else the first moment after now
// when it may: the end of the quiet hours in the recipient's time zone. A number spanning
// several zones (a mobile number of a large country) must be outside quiet hours in every
// one of them; when no moment of the day satisfies all (the zones are too far apart) the
// first zone libphonenumber lists decides.
func (h Hours) Next(now time.Time, e164 string) time.Time {
	if !h.on {
		return now
	}
	locs := h.zones(e164)
	if t, ok := h.nextAll(now, locs); ok {
		return t
	}
	t, _ := h.nextAll(now, locs[:1])
	return t
}

// nextAll scans minute by minute for 48 hours: simple, exact at DST changes, and cheap (it
// stops at the first allowed minute, and most calls return at once).
func (h Hours) nextAll(now time.Time, locs []*time.Location) (time.Time, bool) {
	t := now
	for i := 0; i <= 48*60; i++ {
		ok := true
		for _, l := range locs {
			if h.quietAt(t.In(l)) {
				ok = false
				break
			}
		}
		if ok {
			return t, true
		}
		t = t.Truncate(time.Minute).Add(time.Minute)
	}
	return time.Time{}, false
}

var zoneCache sync.Map // zone name → *time.Location

func (h Hours) zones(e164 string) []*time.Location {
	var locs []*time.Location
	for _, name := range phone.TimeZones(e164) {
		if v, ok := zoneCache.Load(name); ok {
			locs = append(locs, v.(*time.Location))
			continue
		}
		l, err := time.LoadLocation(name)
		if err != nil {
			continue
		}
		zoneCache.Store(name, l)
		locs = append(locs, l)
	}
	if len(locs) == 0 {
		fb := h.Fallback
		if fb == nil {
			fb = time.UTC
		}
		locs = []*time.Location{fb}
	}
	return locs
}
