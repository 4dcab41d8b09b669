package main

import (
	"testing"
	"time"
)

// at builds sorted arrivals from offsets in milliseconds and recipients.
func at(base time.Time, sends ...any) []arrival {
	var out []arrival
	for i := 0; i < len(sends); i += 2 {
		out = append(out, arrival{At: base.Add(time.Duration(sends[i].(int)) * time.Millisecond), To: sends[i+1].(string), JobID: "bulk-x"})
	}
	return out
}

func TestMaxPerSecond(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name               string
		arr                []arrival
		sliding, calendary int
	}{
		{"empty", nil, 0, 0},
		{"one", at(base, 0, "a"), 1, 1},
		// 3 sends across a calendar boundary: 2 per calendar second, but 3 within 1 s.
		{"straddles a second", at(base, 700, "a", 900, "b", 1100, "c", 2500, "d"), 3, 2},
		// exactly 1 s apart are not in one window [t, t+1s).
		{"window is half open", at(base, 0, "a", 1000, "b", 2000, "c"), 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, c := maxPerSecond(tt.arr)
			if s != tt.sliding || c != tt.calendary {
				t.Errorf("maxPerSecond = %d sliding, %d calendar; want %d, %d", s, c, tt.sliding, tt.calendary)
			}
		})
	}
}

func TestPairGaps(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		arr        []arrival
		violations int
		minGap     time.Duration
	}{
		{"distinct recipients", at(base, 0, "a", 10, "b", 20, "c"), 0, 0},
		{"exactly the interval is fine", at(base, 0, "a", 6000, "a"), 0, 6 * time.Second},
		{"one too close", at(base, 0, "a", 100, "b", 5990, "a", 12000, "a"), 1, 5990 * time.Millisecond},
		{"each pair counted", at(base, 0, "a", 1000, "a", 2000, "a"), 2, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, g := pairGaps(tt.arr, 6*time.Second)
			if v != tt.violations || g != tt.minGap {
				t.Errorf("pairGaps = %d, %s; want %d, %s", v, g, tt.violations, tt.minGap)
			}
		})
	}
}

func TestSteadyRates(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// 100 sends 10 ms apart (100/s), then a slow tail: the steady rate ignores the tail.
	var arr []arrival
	for i := range 100 {
		arr = append(arr, arrival{JobID: "bulk-1", At: base.Add(time.Duration(i) * 10 * time.Millisecond)})
	}
	for i := range 5 {
		arr = append(arr, arrival{JobID: "bulk-1", At: base.Add(time.Second + time.Duration(i)*time.Second)})
	}
	tests := []struct {
		name string
		f    func([]arrival) float64
	}{
		{"steadyRate", steadyRate},
		{"steadyBulkRate", steadyBulkRate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.f(arr); got < 95 || got > 105 {
				t.Errorf("%s = %.1f, want about 100", tt.name, got)
			}
			if got := tt.f(arr[:5]); got != 0 {
				t.Errorf("%s of too few = %.1f, want 0", tt.name, got)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{9, 1, 3, 7}, 7},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
