package webhook

import (
	"errors"
	"strings"
	"testing"
)

const testSecret = "app-secret-123"

var testBody = []byte(`{"object":"whatsapp_business_account","entry":[]}`)

func TestSign(t *testing.T) {
	t.Parallel()
	// Reference value computed independently:
	//   printf '%s' "$body" | openssl dgst -sha256 -hmac app-secret-123
	const want = "sha256=20e391a99a86fc5adf7e3a453236d20c906360291977896cf2f671e03bb95703"
	eq(t, "Sign", Sign(testSecret, testBody), want)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	good := Sign(testSecret, testBody)
	hexPart := strings.TrimPrefix(good, "sha256=")
	tests := []struct {
		name   string
		secret string
		body   []byte
		header string
		want   error
	}{
		{"good", testSecret, testBody, good, nil},
		{"good, upper-case hex and prefix", testSecret, testBody, "SHA256=" + strings.ToUpper(hexPart), nil},
		{"good, surrounding spaces", testSecret, testBody, " " + good + " ", nil},
		{"forged body", testSecret, []byte(`{"object":"whatsapp_business_account","entry":[{}]}`), good, ErrBadSignature},
		{"body re-encoded with a space", testSecret, []byte(`{"object": "whatsapp_business_account","entry":[]}`), good, ErrBadSignature},
		{"unsigned", testSecret, testBody, "", ErrUnsigned},
		{"blank header", testSecret, testBody, "   ", ErrUnsigned},
		{"wrong secret", "other-secret", testBody, good, ErrBadSignature},
		{"bad hex", testSecret, testBody, "sha256=" + strings.Repeat("zz", 32), ErrBadSignature},
		{"odd-length hex", testSecret, testBody, good[:len(good)-1], ErrBadSignature},
		{"truncated digest", testSecret, testBody, good[:len(good)-2], ErrBadSignature},
		{"digest too long", testSecret, testBody, good + "00", ErrBadSignature},
		{"no prefix", testSecret, testBody, hexPart, ErrBadSignature},
		{"sha1 prefix", testSecret, testBody, "sha1=" + hexPart, ErrBadSignature},
		{"prefix only", testSecret, testBody, "sha256=", ErrBadSignature},
		{"empty secret never accepts", "", testBody, Sign("", testBody), ErrNoSecret},
		{"empty secret, unsigned", "", testBody, "", ErrNoSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tt.secret, tt.body, tt.header)
			if tt.want == nil && err != nil {
				t.Fatalf("Verify = %v, want nil", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(testSecret, testBody, Sign(testSecret, testBody))
	f.Add(testSecret, testBody, "")
	f.Add("", testBody, Sign("", testBody))
	f.Add("s", []byte("x"), "sha256=zz")
	f.Add("s", []byte{}, "SHA256="+strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, secret string, body []byte, header string) {
		err := Verify(secret, body, header)
		switch {
		case err == nil:
			// Only the exact signature of this body under a real secret may pass.
			if secret == "" || !strings.EqualFold(strings.TrimSpace(header), Sign(secret, body)) {
				t.Fatalf("accepted header %q for secret %q", header, secret)
			}
		case !errors.Is(err, ErrUnsigned) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrNoSecret):
			t.Fatalf("unexpected error %v", err)
		}
		if secret != "" {
			if err := Verify(secret, body, Sign(secret, body)); err != nil {
				t.Fatalf("own signature rejected: %v", err)
			}
		}
	})
}
