package sms

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseKannelDLR(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0).UTC()
	tests := []struct {
		name  string
		query string
		want  DLR
	}{
		{"delivered", "id=order-1&type=1&to=%2B79001234567&ts=1700000000&reply=id%3A42+stat%3ADELIVRD",
			DLR{JobID: "order-1", State: StateDelivered, Type: 1, To: "+79001234567", At: at, Reply: "id:42 stat:DELIVRD"}},
		{"failed", "id=j&type=2&to=%2B79001234567&ts=1700000000", DLR{JobID: "j", State: StateFailed, Type: 2, To: "+79001234567", At: at}},
		{"buffered", "id=j&type=4&to=%2B79001234567&ts=1700000000", DLR{JobID: "j", State: StateBuffered, Type: 4, To: "+79001234567", At: at}},
		{"submitted", "id=j&type=8&to=%2B79001234567&ts=1700000000", DLR{JobID: "j", State: StateSubmitted, Type: 8, To: "+79001234567", At: at}},
		{"rejected", "id=j&type=16&to=%2B79001234567&ts=1700000000", DLR{JobID: "j", State: StateRejected, Type: 16, To: "+79001234567", At: at}},
		{"expired 0x22 is failed", "id=j&type=34", DLR{JobID: "j", State: StateFailed, Type: 34}},
		{"plus decoded to a space", "id=j&type=1&to=+79001234567", DLR{JobID: "j", State: StateDelivered, Type: 1, To: "+79001234567"}},
		{"digits without plus", "id=j&type=1&to=79001234567", DLR{JobID: "j", State: StateDelivered, Type: 1, To: "+79001234567"}},
		{"alphanumeric kept", "id=j&type=1&to=Shop", DLR{JobID: "j", State: StateDelivered, Type: 1, To: "Shop"}},
		{"escaped id", "id=shop%3Aorder.1&type=1", DLR{JobID: "shop:order.1", State: StateDelivered, Type: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseKannelDLR(q)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseKannelDLRInvalid(t *testing.T) {
	t.Parallel()
	for _, query := range []string{
		"type=1",
		"id=&type=1",
		"id=j",
		"id=j&type=x",
		"id=j&type=0",
		"id=j&type=32",
		"id=j&type=1&ts=yesterday",
		"id=" + strings.Repeat("a", 193) + "&type=1",
	} {
		t.Run(query, func(t *testing.T) {
			t.Parallel()
			q, _ := url.ParseQuery(query)
			if _, err := ParseKannelDLR(q); !errors.Is(err, ErrInvalidDLR) {
				t.Errorf("err = %v, want ErrInvalidDLR", err)
			}
		})
	}
}

func TestParseKannelDLRCapsReply(t *testing.T) {
	t.Parallel()
	d, err := ParseKannelDLR(url.Values{"id": {"j"}, "type": {"1"}, "reply": {strings.Repeat("x", 2000)}})
	if err != nil || len(d.Reply) != maxReply {
		t.Errorf("reply len %d, err %v", len(d.Reply), err)
	}
}

// TestDLRToken: only the secret's holder can make a report's token, for one job id only.
func TestDLRToken(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	good := DLRToken(secret, "order-1")
	if DLRToken(secret, "order-1") != good {
		t.Fatal("DLRToken is not deterministic")
	}
	tests := []struct {
		name   string
		secret []byte
		id     string
		token  string
		want   bool
	}{
		{"the job's own token", secret, "order-1", good, true},
		{"another job's id", secret, "order-2", good, false},
		{"another secret", []byte("another secret of thirty-two chars"), "order-1", good, false},
		{"no secret verifies nothing", nil, "order-1", DLRToken(nil, "order-1"), false},
		{"no token", secret, "order-1", "", false},
		{"a truncated token", secret, "order-1", good[:len(good)-2], false},
		{"not base64url", secret, "order-1", "!!" + good[2:], false},
		{"one character changed", secret, "order-1", flip(good), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := VerifyDLRToken(tt.secret, tt.id, tt.token); got != tt.want {
				t.Errorf("VerifyDLRToken = %v, want %v", got, tt.want)
			}
		})
	}
	if strings.ContainsAny(good, "%&=?+/") {
		t.Errorf("token %q has characters a dlr-url would have to escape", good)
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}
