package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Cookie names. The session cookie is the signed-in key's id, never the key.
const (
	sessionCookie = "herald_console"
	loginCookie   = "herald_console_login"
)

// ErrBadSession is returned for a session cookie that is missing, forged, expired, or names
// a key no longer configured.
var ErrBadSession = errors.New("console: no valid session")

// session is who is signed in: the key id (its hash's prefix), whether it is an operator's,
// the tenant it acts for, and a nonce that CSRF tokens are bound to.
type session struct {
	KeyID    string `json:"k"`
	Tenant   string `json:"t"`
	Operator string `json:"o,omitempty"`
	Nonce    string `json:"n"`
	Expires  int64  `json:"e"`
}

// keyring knows the keys that may sign in and the secret that signs the cookies.
//
// Sessions are stateless: the cookie carries the key id, signed with HMAC-SHA256 under a
// secret derived from every configured key. Any API replica with the same keys accepts it,
// restarts keep people signed in, and changing any key signs everyone out.
type keyring struct {
	secret []byte
	byID   map[string]keyEntry
}

type keyEntry struct {
	key, tenant, operator string
}

// keyID is the public name of a key: a prefix of its SHA-256, enough to tell keys apart and
// useless for recovering one.
func keyID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12])
}

func newKeyring(tenantKeys, adminKeys map[string]string) *keyring {
	kr := &keyring{byID: map[string]keyEntry{}}
	var all []string
	for k, t := range tenantKeys {
		kr.byID[keyID(k)] = keyEntry{key: k, tenant: t}
		all = append(all, "t:"+k+"="+t)
	}
	for k, name := range adminKeys {
		kr.byID[keyID(k)] = keyEntry{key: k, operator: name}
		all = append(all, "o:"+k+"="+name)
	}
	sort.Strings(all)
	h := sha256.New()
	h.Write([]byte("herald console session v1\x00"))
	for _, s := range all {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	kr.secret = h.Sum(nil)
	return kr
}

// lookup finds the entry of a key typed at sign-in, comparing every key in constant time.
func (kr *keyring) lookup(key string) (keyEntry, bool) {
	var found keyEntry
	ok := false
	for _, e := range kr.byID {
		if subtle.ConstantTimeCompare([]byte(e.key), []byte(key)) == 1 {
			found, ok = e, true
		}
	}
	return found, ok
}

func (kr *keyring) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, kr.secret)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// encode signs s into a cookie value: base64(json) "." base64(hmac).
func (kr *keyring) encode(s session) string {
	b, _ := json.Marshal(s)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(kr.mac("session", payload))
}

// decode verifies a cookie value and returns its session and key.
func (kr *keyring) decode(v string, now time.Time) (session, keyEntry, error) {
	payload, sig, ok := strings.Cut(v, ".")
	if !ok {
		return session{}, keyEntry{}, ErrBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, kr.mac("session", payload)) {
		return session{}, keyEntry{}, ErrBadSession
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return session{}, keyEntry{}, ErrBadSession
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil || now.Unix() >= s.Expires {
		return session{}, keyEntry{}, ErrBadSession
	}
	e, ok := kr.byID[s.KeyID]
	if !ok {
		return session{}, keyEntry{}, ErrBadSession
	}
	return s, e, nil
}

// csrf is the token of a session's forms: bound to its nonce, so it dies with the session.
func (kr *keyring) csrf(s session) string {
	return base64.RawURLEncoding.EncodeToString(kr.mac("csrf", s.KeyID, s.Nonce))
}

func (kr *keyring) validCSRF(s session, token string) bool {
	want := kr.csrf(s)
	return token != "" && subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1
}

func randomToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secure tells whether the browser reached us over TLS, directly or through a proxy that
// says so: only then may cookies be marked Secure (they would not be sent back otherwise).
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/console/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
}
