package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Signature errors returned by Verify. The HTTP handler answers 401 for ErrUnsigned and
// ErrBadSignature, and 500 for ErrNoSecret (a configuration fault, not the caller's).
var (
	// ErrUnsigned means the request carried no X-Hub-Signature-256 header.
	ErrUnsigned = errors.New("webhook: unsigned request")
	// ErrBadSignature means the header is malformed or does not match the body.
	ErrBadSignature = errors.New("webhook: bad signature")
	// ErrNoSecret means the app secret is empty; Verify never accepts a body then, because an
	// HMAC under an empty key is something anyone can forge.
	ErrNoSecret = errors.New("webhook: app secret not configured")
)

// signaturePrefix is how Meta labels the algorithm in X-Hub-Signature-256.
const signaturePrefix = "sha256="

// Verify checks header (the X-Hub-Signature-256 value, "sha256=<hex>") against the
// HMAC-SHA256 of the raw request body under appSecret. body must be the bytes exactly as
// received: re-encoded JSON does not verify. The comparison is constant-time.
func Verify(appSecret string, body []byte, header string) error {
	// The secret is checked first so a misconfigured server fails loudly on every request
	// instead of looking like a stream of bad callers.
	if appSecret == "" {
		return ErrNoSecret
	}
	header = strings.TrimSpace(header)
	if header == "" {
		return ErrUnsigned
	}
	if len(header) < len(signaturePrefix) || !strings.EqualFold(header[:len(signaturePrefix)], signaturePrefix) {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(header[len(signaturePrefix):])
	if err != nil || len(got) != sha256.Size {
		return ErrBadSignature
	}
	if !hmac.Equal(got, mac(appSecret, body)) {
		return ErrBadSignature
	}
	return nil
}

// Sign returns the X-Hub-Signature-256 value Meta would send for body: "sha256=<hex>".
// It exists for tests and the provider simulator.
func Sign(appSecret string, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(appSecret, body))
}

func mac(secret string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(body)
	return h.Sum(nil)
}
