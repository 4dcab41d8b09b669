package sim_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/sim"
)

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
	}}
}

// benchSend pushes template sends through a real loopback listener from parallel clients.
func benchSend(b *testing.B, cfg sim.Config) *sim.Sim {
	s := sim.New(cfg)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	s.Start(b.Context())
	client := benchClient()
	defer client.CloseIdleConnections()
	url := srv.URL + "/v21.0/" + phoneID + "/messages"
	body := []byte(templateBody)

	b.SetParallelism(8) // many requests in flight, like a worker fleet
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "req/s")
	if s.Count() != b.N {
		b.Fatalf("Count() = %d, want %d", s.Count(), b.N)
	}
	return s
}

func BenchmarkCloudAPISend(b *testing.B) {
	benchSend(b, sim.Config{PhoneNumberID: phoneID, Token: token, MaxMessages: 100_000})
}

// BenchmarkCloudAPISendWebhooks adds status webhooks to a discarding receiver: three
// statuses per send, batched.
func BenchmarkCloudAPISendWebhooks(b *testing.B) {
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer recv.Close()
	s := benchSend(b, sim.Config{
		PhoneNumberID: phoneID, Token: token, AppSecret: secret, WebhookURL: recv.URL, MaxMessages: 100_000,
	})
	b.StopTimer()
	st := s.Stats().Webhooks
	b.ReportMetric(float64(st.Dropped), "dropped")
}
