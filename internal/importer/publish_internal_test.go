package importer

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// parseAck reads what nats-server answers a publish with, as jetstream's publisher reads it:
// the common shapes without encoding/json, anything else through it.
func TestParseAck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, data string
		dup        bool
		err        error // nil, jetstream.ErrInvalidJSAck, or an *jetstream.APIError (matched by type)
	}{
		{name: "stored", data: `{"stream":"HERALD_JOBS","seq":1}`},
		{name: "large seq", data: `{"stream":"HERALD_JOBS","seq":18446744073709551615}`},
		{name: "duplicate", data: `{"stream":"HERALD_JOBS","seq":42,"duplicate":true}`, dup: true},
		{name: "domain", data: `{"stream":"HERALD_JOBS","domain":"hub","seq":42}`},
		{name: "domain duplicate", data: `{"stream":"HERALD_JOBS","seq":42,"domain":"hub","duplicate":true}`, dup: true},
		{name: "duplicate false", data: `{"stream":"HERALD_JOBS","seq":42,"duplicate":false}`},
		{name: "escaped name", data: `{"stream":"A\u0042","seq":1,"duplicate":true}`, dup: true},
		{name: "error", data: `{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`,
			err: &jetstream.APIError{}},
		{name: "error beside a stream", data: `{"stream":"HERALD_JOBS","seq":1,"error":{"code":400,"description":"x"}}`,
			err: &jetstream.APIError{}},
		{name: "no stream", data: `{"seq":1}`, err: jetstream.ErrInvalidJSAck},
		{name: "empty stream", data: `{"stream":"","seq":1}`, err: jetstream.ErrInvalidJSAck},
		{name: "leading zero", data: `{"stream":"S","seq":01}`, err: jetstream.ErrInvalidJSAck},
		{name: "seq overflow", data: `{"stream":"S","seq":18446744073709551616}`, err: jetstream.ErrInvalidJSAck},
		{name: "cut short", data: `{"stream":"S","seq":1`, err: jetstream.ErrInvalidJSAck},
		{name: "trailing bytes", data: `{"stream":"S","seq":1}x`, err: jetstream.ErrInvalidJSAck},
		{name: "not json", data: `+OK`, err: jetstream.ErrInvalidJSAck},
		{name: "empty", data: ``, err: jetstream.ErrInvalidJSAck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dup, err := parseAck([]byte(tc.data))
			var apiErr *jetstream.APIError
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("err = %v, want none", err)
			case errors.As(tc.err, &apiErr):
				if !errors.As(err, &apiErr) || apiErr.Code == 0 {
					t.Fatalf("err = %#v, want the acknowledgement's APIError", err)
				}
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if dup != tc.dup {
				t.Fatalf("duplicate = %v, want %v", dup, tc.dup)
			}
		})
	}
}
