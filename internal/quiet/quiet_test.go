package quiet_test

import (
	"errors"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/quiet"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want string
		err      bool
	}{
		{"21:00-09:00", "21:00-09:00", false},
		{" 22:30 - 07:15 ", "22:30-07:15", false},
		{"off", "off", false},
		{"OFF", "off", false},
		{"", "off", false},
		{"13:00-15:00", "13:00-15:00", false},
		{"21:00", "", true},
		{"25:00-09:00", "", true},
		{"09:00-09:00", "", true},
		{"nine-five", "", true},
	} {
		h, err := quiet.Parse(c.in)
		if c.err {
			if !errors.Is(err, quiet.ErrInvalid) {
				t.Errorf("Parse(%q) error = %v, want ErrInvalid", c.in, err)
			}
			continue
		}
		if err != nil || h.String() != c.want {
			t.Errorf("Parse(%q) = %s, %v; want %s", c.in, h, err, c.want)
		}
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	h, _ := quiet.Parse("21:00-09:00")
	msk := time.FixedZone("MSK", 3*3600)
	nsk := time.FixedZone("NSK", 7*3600)
	cases := []struct {
		name string
		now  time.Time
		to   string
		want time.Time
	}{
		{"Moscow afternoon: now", time.Date(2026, 11, 24, 14, 0, 0, 0, msk), "+79001234567", time.Date(2026, 11, 24, 14, 0, 0, 0, msk)},
		{"Moscow 3 a.m.: 9:00", time.Date(2026, 11, 24, 3, 0, 0, 0, msk), "+79001234567", time.Date(2026, 11, 24, 9, 0, 0, 0, msk)},
		{"Moscow 21:00 sharp is quiet", time.Date(2026, 11, 24, 21, 0, 0, 0, msk), "+79001234567", time.Date(2026, 11, 25, 9, 0, 0, 0, msk)},
		{"Moscow 20:59 goes", time.Date(2026, 11, 24, 20, 59, 30, 0, msk), "+79001234567", time.Date(2026, 11, 24, 20, 59, 30, 0, msk)},
		{"Novosibirsk local time, not the sender's", time.Date(2026, 11, 24, 18, 0, 0, 0, msk), "+73832123456", time.Date(2026, 11, 25, 9, 0, 0, 0, nsk)},
		{"New York across DST-free date", time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), "+12125551234", time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		if got := h.Next(c.now, c.to); !got.Equal(c.want) {
			t.Errorf("%s: Next = %v, want %v", c.name, got.In(c.want.Location()), c.want)
		}
	}
	off, _ := quiet.Parse("off")
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, msk)
	if got := off.Next(now, "+79001234567"); !got.Equal(now) {
		t.Errorf("off: Next = %v, want now", got)
	}
}
