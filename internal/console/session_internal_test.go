package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	kr := newKeyring(map[string]string{"shop-key-000001": "shop"}, map[string]string{"ops-key-0000001": "alice"})
	good := session{KeyID: keyID("shop-key-000001"), Tenant: "shop", Nonce: "n1", Expires: now.Add(time.Hour).Unix()}
	v := kr.encode(good)
	// The same keys on another replica accept it; other keys do not.
	replica := newKeyring(map[string]string{"shop-key-000001": "shop"}, map[string]string{"ops-key-0000001": "alice"})
	rotated := newKeyring(map[string]string{"shop-key-000001": "shop"}, map[string]string{"ops-key-0000002": "alice"})
	payload, sig, _ := strings.Cut(v, ".")
	forged := kr.encode(session{KeyID: keyID("ops-key-0000001"), Tenant: "bank", Nonce: "n1", Expires: good.Expires})
	_, forgedSig, _ := strings.Cut(forged, ".")
	tests := []struct {
		name   string
		kr     *keyring
		value  string
		at     time.Time
		wantOK bool
	}{
		{"valid", kr, v, now, true},
		{"another replica with the same keys", replica, v, now, true},
		{"keys changed", rotated, v, now, false},
		{"expired", kr, v, now.Add(2 * time.Hour), false},
		{"payload swapped under a valid signature", kr, strings.Split(forged, ".")[0] + "." + sig, now, false},
		{"signature of another payload", kr, payload + "." + forgedSig, now, false},
		{"no signature", kr, payload, now, false},
		{"garbage", kr, "%%%.%%%", now, false},
		{"empty", kr, "", now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, e, err := tt.kr.decode(tt.value, tt.at)
			if (err == nil) != tt.wantOK {
				t.Fatalf("decode: %v, want ok=%v", err, tt.wantOK)
			}
			if tt.wantOK && (s.Tenant != "shop" || e.tenant != "shop" || e.key != "shop-key-000001") {
				t.Fatalf("session %+v, key %+v", s, e)
			}
		})
	}
}

func TestCSRFToken(t *testing.T) {
	t.Parallel()
	kr := newKeyring(map[string]string{"shop-key-000001": "shop"}, nil)
	s := session{KeyID: keyID("shop-key-000001"), Nonce: "n1"}
	other := session{KeyID: keyID("shop-key-000001"), Nonce: "n2"}
	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{"its own", kr.csrf(s), true},
		{"missing", "", false},
		{"another session's (same key)", kr.csrf(other), false},
		{"forged", "AAAA", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := kr.validCSRF(s, tt.token); got != tt.want {
				t.Fatalf("validCSRF = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCookieFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		tls, proxy bool
		wantSecure bool
	}{
		{"plain HTTP", false, false, false},
		{"TLS", true, false, true},
		{"behind a TLS proxy", false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := "http://herald.example/console/login"
			if tt.tls {
				target = "https://herald.example/console/login" // httptest sets r.TLS
			}
			r := httptest.NewRequest(http.MethodPost, target, nil)
			if tt.proxy {
				r.Header.Set("X-Forwarded-Proto", "https")
			}
			w := httptest.NewRecorder()
			setCookie(w, r, sessionCookie, "v", 60)
			c := w.Result().Cookies()[0]
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != tt.wantSecure || c.Path != "/console/" {
				t.Fatalf("cookie %+v", c)
			}
		})
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"/console/campaigns?x=1", "/console/campaigns?x=1"},
		{"https://evil.example/", "/console/"},
		{"//evil.example/console/", "/console/"},
		{"/console/\\evil", "/console/"},
		{"", "/console/"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := safeNext(tt.in); got != tt.want {
				t.Fatalf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRecipients(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tmpl, csv, wantErr string
		wantJobs                 int
	}{
		{"two rows", "bonus", "to,name,button0\n+79001,Anna,X\n+79002,Ivan,Y", "", 2},
		{"no template", "", "to\n+79001", "template:", 0},
		{"no to column", "bonus", "phone,name\n+79001,Anna", `no "to" column`, 0},
		{"header only", "bonus", "to,name", "at least one recipient", 0},
		{"ragged CSV", "bonus", "to,name\n+79001", "not CSV", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jobs, err := parseRecipients("nov", tt.tmpl, "", "white, sms", tt.csv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(jobs) != tt.wantJobs {
				t.Fatalf("%d jobs, %v", len(jobs), err)
			}
			j := jobs[1]
			if j["id"] != "nov-000002" || j["campaign"] != "nov" || j["params"].(map[string]string)["name"] != "Ivan" ||
				j["buttons"].(map[string]string)["0"] != "Y" || len(j["channels"].([]string)) != 2 {
				t.Fatalf("job %v", j)
			}
		})
	}
}

func TestLooksLikePhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"+79001234567", true}, {"8 (900) 123-45-67", false}, {"8 (900) 123 45 67", true},
		{"nov-bonus-000002", false}, {"order-1", false}, {"12345", false},
	}
	for _, tt := range tests {
		if got := looksLikePhone(tt.in); got != tt.want {
			t.Errorf("looksLikePhone(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
