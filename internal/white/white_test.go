package white

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/testutil"
)

const (
	testToken   = "EAAGtestTokenValue0123456789abcdef"
	testPhoneID = "107878721936019"
	testWABA    = "114503234599312"
)

// spans records every span of the package's tests; set once because the global tracer
// provider delegates only to the first provider installed.
var spans = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

// captured is one request as the fake Cloud API saw it.
type captured struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// fakeGraph is an httptest server that records requests and answers with handler.
func fakeGraph(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []captured) {
	t.Helper()
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, captured{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), b})
		mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

func newTestClient(srv *httptest.Server, timeout time.Duration) *Client {
	return New(Config{BaseURL: srv.URL, PhoneNumberID: testPhoneID, WABAID: testWABA, Token: testToken, Timeout: timeout}, srv.Client())
}

func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

const okBody = `{"messaging_product":"whatsapp","contacts":[{"input":"79001234567","wa_id":"79001234567"}],"messages":[{"id":"wamid.TEST123","message_status":"accepted"}]}`

// fixtureRequestBody returns the recorded request body of a VCR cassette (its first body),
// decoded.
func fixtureRequestBody(t *testing.T, name string) map[string]any {
	t.Helper()
	bodies := testutil.CassetteStrings(t, filepath.Base(name))
	if len(bodies) == 0 || bodies[0] == "" {
		t.Fatalf("%s: no request body", name)
	}
	return decodeJSON(t, []byte(bodies[0]))
}

// decodeJSON decodes a body with numbers normalised to their text, so a fixture's numeric
// "to" compares equal to our string one.
func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	var norm func(v any) any
	norm = func(v any) any {
		switch x := v.(type) {
		case json.Number:
			return x.String()
		case map[string]any:
			for k, e := range x {
				x[k] = norm(e)
			}
		case []any:
			for i, e := range x {
				x[i] = norm(e)
			}
		}
		return v
	}
	norm(m)
	return m
}

func TestSendBodyMatchesRecordedTraffic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		msg     func(fx map[string]any) Message
		// adjust turns the fixture into what Herald must send where the recorded client
		// differs on purpose.
		adjust func(fx map[string]any)
	}{
		{
			fixture: "send_template_with_success_response_by_passing_components_json.yml",
			msg:     func(fx map[string]any) Message { return Message{Template: fx["template"]} },
		},
		{
			fixture: "send_text_message_with_success_response.yml",
			msg: func(fx map[string]any) Message {
				return Message{Text: fx["text"].(map[string]any)["body"].(string)}
			},
		},
		{
			fixture: "send_image_message_with_a_link.yml",
			msg: func(fx map[string]any) Message {
				img := fx["image"].(map[string]any)
				return Message{Media: &job.Media{Type: job.MediaImage, URL: img["link"].(string), Caption: img["caption"].(string)}}
			},
		},
		{
			fixture: "send_document_message_with_file_name.yml",
			msg: func(fx map[string]any) Message {
				doc := fx["document"].(map[string]any)
				return Message{Media: &job.Media{Type: job.MediaDocument, URL: "https://shop.example/receipts/123456.pdf",
					Caption: doc["caption"].(string), Filename: doc["filename"].(string)}}
			},
			// The recording sends an uploaded media id; Herald always sends by link.
			adjust: func(fx map[string]any) {
				doc := fx["document"].(map[string]any)
				delete(doc, "id")
				doc["link"] = "https://shop.example/receipts/123456.pdf"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			srv, reqs := fakeGraph(t, answer(200, okBody))
			fx := fixtureRequestBody(t, tt.fixture)
			m := tt.msg(fx)
			m.JobID = "order-123456-ready"
			m.To = "+" + fx["to"].(string)

			res, err := newTestClient(srv, 0).Send(context.Background(), m)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if res.MessageID != "wamid.TEST123" {
				t.Errorf("MessageID = %q", res.MessageID)
			}
			got := reqs()
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			want := fx
			if tt.adjust != nil {
				tt.adjust(want)
			}
			want["biz_opaque_callback_data"] = "order-123456-ready"
			if body := decodeJSON(t, got[0].Body); !reflect.DeepEqual(body, want) {
				t.Errorf("body\n got %v\nwant %v", body, want)
			}
		})
	}
}

func TestSendRequest(t *testing.T) {
	t.Parallel()
	srv, reqs := fakeGraph(t, answer(200, okBody))
	res, err := newTestClient(srv, 0).Send(context.Background(), Message{JobID: "j-1", To: "+79001234567", Text: "hi"})
	if err != nil || res.MessageID != "wamid.TEST123" || res.Segments != 0 {
		t.Fatalf("Send = %+v, %v", res, err)
	}
	r := reqs()[0]
	if r.Method != http.MethodPost || r.Path != "/v21.0/"+testPhoneID+"/messages" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if body := decodeJSON(t, r.Body); body["to"] != "79001234567" {
		t.Errorf("to = %v, want digits without +", body["to"])
	}
}

func TestSendOtherShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"text with a link previews it", Message{Text: "Track: https://shop.example/o/1"},
			`{"type":"text","text":{"body":"Track: https://shop.example/o/1","preview_url":true}}`},
		{"video", Message{Media: &job.Media{Type: job.MediaVideo, URL: "https://x.example/v.mp4", Caption: "c", Filename: "ignored.mp4"}},
			`{"type":"video","video":{"link":"https://x.example/v.mp4","caption":"c"}}`},
		{"template wins over text and media", Message{Template: json.RawMessage(`{"name":"t","language":{"code":"ru"}}`), Text: "x",
			Media: &job.Media{Type: job.MediaImage, URL: "https://x.example/i.png"}},
			`{"type":"template","template":{"name":"t","language":{"code":"ru"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, reqs := fakeGraph(t, answer(200, okBody))
			m := tt.msg
			m.JobID, m.To = "j", "+79001234567"
			if _, err := newTestClient(srv, 0).Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			want := decodeJSON(t, []byte(tt.want))
			for k, v := range map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": "79001234567", "biz_opaque_callback_data": "j"} {
				want[k] = v
			}
			if got := decodeJSON(t, reqs()[0].Body); !reflect.DeepEqual(got, want) {
				t.Errorf("body\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestSendInvalidMessageIsJobErrorWithoutRequest(t *testing.T) {
	t.Parallel()
	tests := map[string]Message{
		"empty":         {JobID: "j", To: "+79001234567"},
		"no recipient":  {JobID: "j", Text: "x"},
		"bad recipient": {JobID: "j", To: "+7 900 abc", Text: "x"},
		"media type":    {JobID: "j", To: "+79001234567", Media: &job.Media{Type: "audio", URL: "https://x.example/a"}},
		"media url":     {JobID: "j", To: "+79001234567", Media: &job.Media{Type: job.MediaImage}},
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, reqs := fakeGraph(t, answer(200, okBody))
			_, err := newTestClient(srv, 0).Send(context.Background(), m)
			pe := provider.Classify(err)
			if err == nil || pe.Kind != provider.Job || pe.Code != "invalid_message" {
				t.Fatalf("err = %v, want a Job invalid_message", err)
			}
			if n := len(reqs()); n != 0 {
				t.Errorf("%d requests sent for an invalid message", n)
			}
		})
	}
}

func graphErrorBody(code int) string {
	return fmt.Sprintf(`{"error":{"message":"(#%d) Some title","type":"OAuthException","code":%d,`+
		`"error_data":{"messaging_product":"whatsapp","details":"details for %d"},"error_subcode":2494055,"fbtrace_id":"AzTrace"}}`, code, code, code)
}

func TestClassificationTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code   int
		status int
		kind   provider.Kind
		after  time.Duration
	}{
		// Retry.
		{1, 500, provider.Retry, 0},
		{2, 503, provider.Retry, 0},
		{4, 400, provider.Retry, time.Minute},
		{80007, 400, provider.Retry, time.Minute},
		{130429, 400, provider.Retry, 5 * time.Second},
		{131000, 500, provider.Retry, 0},
		{131016, 503, provider.Retry, 0},
		{131056, 400, provider.Retry, 6 * time.Second},
		{131057, 400, provider.Retry, time.Minute},
		{133004, 503, provider.Retry, 0},
		// Channel.
		{131026, 400, provider.Channel, 0},
		{131047, 400, provider.Channel, 0},
		{131049, 400, provider.Channel, 0},
		{131051, 400, provider.Channel, 0},
		{131053, 400, provider.Channel, 0},
		{130472, 400, provider.Channel, 0},
		{130497, 403, provider.Channel, 0},
		{132000, 400, provider.Channel, 0},
		{132001, 404, provider.Channel, 0},
		{132012, 400, provider.Channel, 0},
		{132015, 400, provider.Channel, 0},
		{132016, 400, provider.Channel, 0},
		{131021, 400, provider.Channel, 0},
		{131052, 400, provider.Channel, 0},
		{132005, 400, provider.Channel, 0},
		{132007, 400, provider.Channel, 0},
		// Sender.
		{368, 403, provider.Sender, 0},
		{131031, 403, provider.Sender, 0},
		{131042, 400, provider.Sender, 0},
		{131048, 400, provider.Sender, 0},
		{133010, 400, provider.Sender, 0},
		{0, 401, provider.Sender, 0},
		{190, 401, provider.Sender, 0},
		{3, 500, provider.Sender, 0},
		{10, 403, provider.Sender, 0},
		{131005, 403, provider.Sender, 0},
		{33, 400, provider.Sender, 0},
		{200, 403, provider.Sender, 0},
		{299, 403, provider.Sender, 0},
		// Job.
		{131050, 400, provider.Job, 0},
		{130403, 400, provider.Job, 0},
		{100, 400, provider.Job, 0},
		{131008, 400, provider.Job, 0},
		{131009, 400, provider.Job, 0},
		// Unknown codes fall to the HTTP status.
		{999999, 400, provider.Channel, 0},
		{999999, 404, provider.Channel, 0},
		{999999, 401, provider.Sender, 0},
		{999999, 500, provider.Retry, 0},
		{999999, 429, provider.Retry, 0},
	}
	seen := make(map[int]bool)
	for _, tt := range tests {
		seen[tt.code] = true
		t.Run(fmt.Sprintf("%d_%d", tt.code, tt.status), func(t *testing.T) {
			t.Parallel()
			if got := Classify(tt.status, tt.code); got != tt.kind {
				t.Errorf("Classify(%d, %d) = %v, want %v", tt.status, tt.code, got, tt.kind)
			}
			srv, _ := fakeGraph(t, answer(tt.status, graphErrorBody(tt.code)))
			_, err := newTestClient(srv, 0).Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: "hi"})
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *provider.Error", err)
			}
			if pe.Kind != tt.kind || pe.Code != strconv.Itoa(tt.code) || pe.After != tt.after {
				t.Errorf("got kind %v code %q after %v, want %v %d %v", pe.Kind, pe.Code, pe.After, tt.kind, tt.code, tt.after)
			}
			want := fmt.Sprintf("(#%d) Some title: details for %d (fbtrace_id AzTrace)", tt.code, tt.code)
			if pe.Reason != want {
				t.Errorf("Reason = %q, want %q", pe.Reason, want)
			}
			var ge *GraphError
			if !errors.As(err, &ge) || ge.Code != tt.code || ge.FBTraceID != "AzTrace" {
				t.Errorf("GraphError not wrapped: %+v", ge)
			}
		})
	}
	for code := range graphCodes {
		if !seen[code] {
			t.Errorf("code %d has no test row", code)
		}
	}
}

// TestRecordedGraphError replays the recorded answer to a send from a phone number id that
// does not exist (code 100, subcode 33): a sender error, since every job from that id fails
// alike, not one to dead-letter the job over.
func TestRecordedGraphError(t *testing.T) {
	t.Parallel()
	bodies := testutil.CassetteStrings(t, "send_text_handles_error_response.yml")
	if len(bodies) != 2 || !strings.Contains(bodies[1], `"code":100,"error_subcode":33`) {
		t.Fatalf("fixture changed: %q", bodies)
	}
	srv, _ := fakeGraph(t, answer(400, bodies[1]))
	_, err := newTestClient(srv, 0).Send(context.Background(), Message{JobID: "j", To: "+56789", Text: "hola"})
	pe := provider.Classify(err)
	if pe.Kind != provider.Sender || pe.Code != "100" || !strings.HasPrefix(pe.Reason, "Unsupported post request. Object with ID '123123'") ||
		!strings.HasSuffix(pe.Reason, "(fbtrace_id AzJYAMZdf4WaDlLDXeqjTr9)") {
		t.Errorf("got %+v, want a Sender error with code 100", pe)
	}
}

func TestClassifySubcode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		status, code, subcode int
		want                  provider.Kind
	}{
		{"100/33: no such phone number id, or no permission", 400, 100, 33, provider.Sender},
		{"100 with another subcode stays the job's", 400, 100, 2494010, provider.Job},
		{"100 without a subcode", 400, 100, 0, provider.Job},
		{"33 at the top level: the number was deleted", 400, 33, 0, provider.Sender},
		{"subcode 33 under another code changes nothing", 400, 131026, 33, provider.Channel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ClassifySubcode(tt.status, tt.code, tt.subcode); got != tt.want {
				t.Errorf("ClassifySubcode(%d, %d, %d) = %v, want %v", tt.status, tt.code, tt.subcode, got, tt.want)
			}
		})
	}
}

// TestCaptionCut: a window media message may carry the job's text (up to 4,096 characters)
// as its caption; the Cloud API takes 1,024, so the body carries the first 1,024 characters,
// cut between characters whatever their byte length.
func TestCaptionCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, caption, want string
	}{
		{"short", "Ваш чек", "Ваш чек"},
		{"exactly the limit", strings.Repeat("я", MaxCaption), strings.Repeat("я", MaxCaption)},
		{"ASCII text of a window message", strings.Repeat("a", 4096), strings.Repeat("a", MaxCaption)},
		{"two-byte letters", strings.Repeat("ж", 3000), strings.Repeat("ж", MaxCaption)},
		{"four-byte emoji after one ASCII", "x" + strings.Repeat("🎁", 2000), "x" + strings.Repeat("🎁", MaxCaption-1)},
	}
	for _, tt := range tests {
		for _, kind := range []string{job.MediaImage, job.MediaVideo, job.MediaDocument} {
			t.Run(tt.name+"/"+kind, func(t *testing.T) {
				t.Parallel()
				srv, reqs := fakeGraph(t, answer(200, okBody))
				m := Message{JobID: "j", To: "+79001234567", Media: &job.Media{Type: kind, URL: "https://x.example/f", Caption: tt.caption}}
				if _, err := newTestClient(srv, 0).Send(context.Background(), m); err != nil {
					t.Fatal(err)
				}
				body := reqs()[0].Body
				if !utf8.Valid(body) {
					t.Fatal("request body is not valid UTF-8")
				}
				got, _ := decodeJSON(t, body)[kind].(map[string]any)["caption"].(string)
				if got != tt.want {
					t.Errorf("caption of %d characters, want %d", utf8.RuneCountInString(got), utf8.RuneCountInString(tt.want))
				}
			})
		}
	}
}

func TestHTTPFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler func(http.ResponseWriter, *http.Request)
		kind    provider.Kind
		code    string
		after   time.Duration
	}{
		{"502 html", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(502)
			io.WriteString(w, "<html>Bad Gateway</html>")
		}, provider.Retry, "http_502", 0},
		{"500 empty", answer(500, ""), provider.Retry, "http_500", 0},
		{"429 with Retry-After seconds", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
		}, provider.Retry, "http_429", 7 * time.Second},
		{"429 with Retry-After date", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(2*time.Minute).UTC().Format(http.TimeFormat))
			w.WriteHeader(429)
		}, provider.Retry, "http_429", 2 * time.Minute},
		{"Retry-After beats the per-code delay", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(400)
			io.WriteString(w, graphErrorBody(130429))
		}, provider.Retry, "130429", 30 * time.Second},
		{"Retry-After ignored when not retrying", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(400)
			io.WriteString(w, graphErrorBody(131026))
		}, provider.Channel, "131026", 0},
		{"200 garbage", answer(200, "<html>hello</html>"), provider.Retry, "bad_response", 0},
		{"200 without message id", answer(200, `{"messages":[]}`), provider.Retry, "bad_response", 0},
		{"200 oversized", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			w.Write(bytes.Repeat([]byte(" "), maxResponse+10))
		}, provider.Retry, "bad_response", 0},
		{"403 garbage", answer(403, "denied"), provider.Channel, "http_403", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeGraph(t, tt.handler)
			_, err := newTestClient(srv, 0).Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: "hi"})
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *provider.Error", err)
			}
			after := pe.After.Round(time.Minute / 2)
			if tt.after < time.Minute {
				after = pe.After
			}
			if pe.Kind != tt.kind || pe.Code != tt.code || after != tt.after {
				t.Errorf("got %v %q after %v, want %v %q %v (%s)", pe.Kind, pe.Code, pe.After, tt.kind, tt.code, tt.after, pe.Reason)
			}
		})
	}
}

func TestClientTimeoutIsRetry(t *testing.T) {
	t.Parallel()
	srv, _ := fakeGraph(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	start := time.Now()
	_, err := newTestClient(srv, 50*time.Millisecond).Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: "hi"})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Retry || pe.Code != "timeout" {
		t.Fatalf("err = %v, want Retry timeout", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a provider timeout must not look like the caller's context: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v, the Client timeout was not applied", d)
	}
}

func TestCallerCancelIsNotAProviderError(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	srv, _ := fakeGraph(t, func(_ http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := newTestClient(srv, time.Minute).Send(ctx, Message{JobID: "j", To: "+79001234567", Text: "hi"})
		done <- err
	}()
	<-arrived
	cancel()
	err := <-done
	var pe *provider.Error
	if !errors.Is(err, context.Canceled) || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a wrapped context.Canceled and no provider error", err)
	}
}

func TestConnectionErrorIsRetry(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	c := newTestClient(srv, 0)
	srv.Close()
	_, err := c.Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: "hi"})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Retry || pe.Code != "connection" {
		t.Fatalf("err = %v, want Retry connection", err)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	// A hostile or buggy upstream that echoes the credentials and the number back.
	echo := func(status int) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			msg, _ := json.Marshal(r.Header.Get("Authorization") + " " + string(b))
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":%s,"code":131000,"error_data":{"details":%s},"fbtrace_id":"x"}}`, msg, msg)
		}
	}
	tests := map[string]func(http.ResponseWriter, *http.Request){
		"graph error": echo(500),
		"garbage 200": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Header.Get("Authorization")+" to 79001234567")
		},
		"garbage 502": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			io.WriteString(w, r.Header.Get("Authorization")+" +79001234567")
		},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeGraph(t, h)
			_, err := newTestClient(srv, 0).Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: "hi"})
			if err == nil {
				t.Fatal("no error")
			}
			var texts []string
			for e := err; e != nil; e = errors.Unwrap(e) {
				texts = append(texts, e.Error(), fmt.Sprintf("%+v", e))
			}
			texts = append(texts, provider.Classify(err).Reason)
			for _, s := range texts {
				if strings.Contains(s, testToken) || strings.Contains(s, "79001234567") {
					t.Errorf("secret leaked: %s", s)
				}
			}
		})
	}
}

func TestSendSpan(t *testing.T) {
	t.Parallel()
	srv, reqs := fakeGraph(t, answer(200, okBody))
	jobID := "span-job-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tp := otel.GetTracerProvider()
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	_, err := newTestClient(srv, 0).Send(ctx, Message{JobID: jobID, To: "+79001234567", Text: "hi"})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	// The trace context travelled to the provider.
	tp0 := reqs()[0].Header.Get("traceparent")
	if !strings.Contains(tp0, parent.SpanContext().TraceID().String()) {
		t.Errorf("traceparent = %q, want trace %s", tp0, parent.SpanContext().TraceID())
	}
	var found bool
	for _, s := range spans.Ended() {
		var mine bool
		for _, a := range s.Attributes() {
			if a.Key == "herald.job_id" && a.Value.AsString() == jobID {
				mine = true
			}
		}
		if !mine {
			continue
		}
		found = true
		if s.Name() != "whatsapp.send" || s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %q kind %v parent %v", s.Name(), s.SpanKind(), s.Parent().SpanID())
		}
		var wamid bool
		for _, a := range s.Attributes() {
			v := a.Value.String()
			if strings.Contains(v, testToken) || strings.Contains(v, "79001234567") {
				t.Errorf("attribute %s leaks a secret: %s", a.Key, v)
			}
			wamid = wamid || (a.Key == "messaging.message.id" && v == "wamid.TEST123")
		}
		if !wamid {
			t.Error("span has no messaging.message.id")
		}
	}
	if !found {
		t.Fatal("no whatsapp.send span for the job")
	}
}

func TestListTemplatesFollowsPaging(t *testing.T) {
	t.Parallel()
	var srvURL atomic.Value
	srv, reqs := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		base := srvURL.Load().(string) + "/v21.0/" + testWABA + "/message_templates?limit=100&access_token=" + testToken
		switch r.URL.Query().Get("after") {
		case "":
			fmt.Fprintf(w, `{"data":[{"name":"a"},{"name":"b"}],"paging":{"cursors":{"after":"c1"},"next":%q}}`, base+"&after=c1")
		case "c1":
			fmt.Fprintf(w, `{"data":[{"name":"c"}],"paging":{"cursors":{"after":"c2"},"next":%q}}`, base+"&after=c2")
		case "c2":
			io.WriteString(w, `{"data":[{"name":"d"},{"name":"e"}],"paging":{"cursors":{"before":"c1"}}}`)
		default:
			w.WriteHeader(400)
		}
	})
	srvURL.Store(srv.URL)

	var names []string
	var pages int
	err := newTestClient(srv, 0).ListTemplates(context.Background(), func(page []json.RawMessage) error {
		pages++
		for _, raw := range page {
			var tpl struct{ Name string }
			if err := json.Unmarshal(raw, &tpl); err != nil {
				return err
			}
			names = append(names, tpl.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages != 3 || strings.Join(names, ",") != "a,b,c,d,e" {
		t.Errorf("pages %d names %v", pages, names)
	}
	got := reqs()
	if len(got) != 3 {
		t.Fatalf("%d requests", len(got))
	}
	if got[0].Method != http.MethodGet || got[0].Path != "/v21.0/"+testWABA+"/message_templates" || got[0].RawQuery != "limit=100" {
		t.Errorf("first request %s %s?%s", got[0].Method, got[0].Path, got[0].RawQuery)
	}
	for _, r := range got {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("no bearer token on %s", r.RawQuery)
		}
		if strings.Contains(r.RawQuery, "access_token") {
			t.Errorf("token sent in the URL: %s", r.RawQuery)
		}
	}
}

func TestListTemplatesStops(t *testing.T) {
	t.Parallel()
	stop := errors.New("stop")
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request)
		fn      func([]json.RawMessage) error
		check   func(t *testing.T, err error, n int)
	}{
		{"fn error", answer(200, `{"data":[{}],"paging":{"next":"SELF"}}`), func([]json.RawMessage) error { return stop },
			func(t *testing.T, err error, n int) {
				if !errors.Is(err, stop) || n != 1 {
					t.Errorf("err %v after %d requests", err, n)
				}
			}},
		{"foreign host", answer(200, `{"data":[],"paging":{"next":"http://elsewhere.example/v21.0/x?after=1"}}`), nil,
			func(t *testing.T, err error, n int) {
				if err == nil || !strings.Contains(err.Error(), "elsewhere.example") || n != 1 {
					t.Errorf("err %v after %d requests", err, n)
				}
			}},
		{"graph error", answer(401, graphErrorBody(190)), nil,
			func(t *testing.T, err error, n int) {
				if pe := provider.Classify(err); pe.Kind != provider.Sender || pe.Code != "190" {
					t.Errorf("err %v", err)
				}
			}},
		{"paging loop", answer(200, `{"data":[],"paging":{"next":"SELF"}}`), nil,
			func(t *testing.T, err error, n int) {
				if err == nil || n != 2 {
					t.Errorf("err %v after %d requests", err, n)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var self string
			srv, reqs := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
				rec := httptest.NewRecorder()
				tt.handler(rec, r)
				body := strings.ReplaceAll(rec.Body.String(), "SELF", self+"/v21.0/"+testWABA+"/message_templates?limit=100&after=x")
				w.WriteHeader(rec.Code)
				io.WriteString(w, body)
			})
			self = srv.URL
			fn := tt.fn
			if fn == nil {
				fn = func([]json.RawMessage) error { return nil }
			}
			err := newTestClient(srv, 0).ListTemplates(context.Background(), fn)
			tt.check(t, err, len(reqs()))
		})
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	c := New(Config{PhoneNumberID: "1", WABAID: "2", Token: "t"}, nil)
	if c.sendURL != "https://graph.facebook.com/v21.0/1/messages" || c.timeout != 15*time.Second {
		t.Errorf("defaults: %s %v", c.sendURL, c.timeout)
	}
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost < 256 || c.hc.Timeout != 0 {
		t.Errorf("default client not tuned: %+v", c.hc)
	}
}

func BenchmarkSendBody(b *testing.B) {
	tpl := json.RawMessage(`{"name":"order_ready","language":{"code":"ru"},"components":[{"type":"body","parameters":[{"type":"text","text":"123456"}]}]}`)
	m := Message{JobID: "order-123456-ready", To: "+79001234567", Template: tpl}
	b.ReportAllocs()
	for b.Loop() {
		out, err := build(m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := encode(out); err != nil {
			b.Fatal(err)
		}
	}
}
