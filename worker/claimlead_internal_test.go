package worker

import (
	"testing"
	"time"
)

// TestClaimLead: the lead follows the claim's usual round trip, starts at the first one,
// is not thrown by one slow claim, and is bounded.
func TestClaimLead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		claims  []time.Duration
		atLeast time.Duration
		atMost  time.Duration
	}{
		{"no claim yet", nil, 0, 0},
		{"first claim", []time.Duration{4 * time.Millisecond}, 4 * time.Millisecond, 4 * time.Millisecond},
		{"steady", repeat(10*time.Millisecond, 50), 9 * time.Millisecond, 10 * time.Millisecond},
		{"one slow claim among fast ones", append(repeat(2*time.Millisecond, 50), 40*time.Millisecond), 2 * time.Millisecond, 7 * time.Millisecond},
		{"back to fast", append(repeat(30*time.Millisecond, 50), repeat(time.Millisecond, 50)...), time.Millisecond, 2 * time.Millisecond},
		{"bounded", repeat(time.Second, 10), maxClaimLead, maxClaimLead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := &Worker{}
			for _, d := range tt.claims {
				w.observeClaim(d)
			}
			if got := w.claimLead(); got < tt.atLeast || got > tt.atMost {
				t.Fatalf("claimLead = %v, want in [%v, %v]", got, tt.atLeast, tt.atMost)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
