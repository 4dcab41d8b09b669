package provider_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/provider"
)

func TestSanitize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		max      int
		secrets  []string
		want     string
	}{
		{"secret", "bad password s3cr3t!", 100, []string{"s3cr3t!"}, "bad password [redacted]"},
		{"token", "token EAAB1234567890abcdefXYZ expired", 100, nil, "token [redacted] expired"},
		{"phone", "to +79001234567 failed", 100, nil, "to +7900*****67 failed"},
		{"whitespace", " a \n\t b ", 100, nil, "a b"},
		{"cap on a rune boundary", strings.Repeat("ж", 10), 5, nil, "жж…"},
		{"invalid utf-8", "a\xffb", 100, nil, "ab"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := provider.Sanitize(tc.in, tc.max, tc.secrets...); got != tc.want {
				t.Fatalf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"86400", time.Hour},
		{"-5", 0},
		{"soon", 0},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Retry-After", tc.header)
		}
		if got := provider.RetryAfter(h, now); got != tc.want {
			t.Errorf("RetryAfter(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
}

func TestTransportError(t *testing.T) {
	t.Parallel()
	cause := errors.New("own deadline")
	call := provider.Call{Prefix: "x", Name: "X", Timeout: time.Second, TimeoutCause: cause, Secrets: []string{"pw"}, MaxReason: 100}

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := provider.TransportError(canceled, canceled, errors.New("boom"), call); !errors.Is(err, context.Canceled) {
		t.Fatalf("caller's cancel: %v, want context.Canceled", err)
	}
	var pe *provider.Error
	if errors.As(provider.TransportError(canceled, canceled, errors.New("boom"), call), &pe) {
		t.Fatal("caller's cancel classified as a provider failure")
	}

	own, stop := context.WithTimeoutCause(context.Background(), 0, cause)
	defer stop()
	<-own.Done()
	err := provider.TransportError(context.Background(), own, context.DeadlineExceeded, call)
	if !errors.As(err, &pe) || pe.Kind != provider.Retry || pe.Code != "timeout" || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("own deadline: %#v", err)
	}

	err = provider.TransportError(context.Background(), context.Background(), errors.New("dial pw@host: refused"), call)
	if !errors.As(err, &pe) || pe.Code != "connection" || strings.Contains(pe.Reason, "pw") {
		t.Fatalf("connection error: %#v", err)
	}
}
