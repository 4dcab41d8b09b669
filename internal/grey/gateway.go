package grey

import (
	"net"
	"net/http"
	"time"
)

// WebhookClient is an HTTP client that posts as a GREEN-API instance with webhookUrlToken
// set does: every request to webhookURL carries "Authorization: Bearer <token>", the header
// Herald's /webhooks/grey requires. It is for whatever stands in for the gateway (the
// simulator of herald dev and the tests); other requests go out as they are.
func WebhookClient(webhookURL, token string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Timeout: 10 * time.Second, Transport: &tokenTransport{base: tr, url: webhookURL, token: token}}
}

type tokenTransport struct {
	base       http.RoundTripper
	url, token string
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token == "" || r.URL.String() != t.url {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context()) // a RoundTripper must not change the caller's request
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}
