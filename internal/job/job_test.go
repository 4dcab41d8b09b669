package job_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/job"
)

// opts are the documented deployment defaults (HERALD_DEFAULT_REGION, HERALD_DEFAULT_LANGUAGE).
var opts = job.Options{DefaultRegion: "RU", DefaultLanguage: "ru"}

// designExample is the example job of docs/contracts.md, byte for byte.
const designExample = `{
  "id": "order-123456-ready",
  "to": "+79001234567",
  "template": "order_ready",
  "language": "ru",
  "params": {"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2021"},
  "priority": "transactional",
  "channels": ["white", "sms"],
  "media": {"type": "document", "url": "https://shop.example/receipts/123456.pdf", "filename": "receipt.pdf"},
  "buttons": {"0": "orders/123456"},
  "sms_text": "Заказ 123456 ждёт вас до 21.02.2021",
  "send_at": "2026-11-25T09:00:00+03:00",
  "expires_at": "2026-11-26T00:00:00+03:00",
  "campaign": "balance-expiry-2026-11",
  "tenant": "shop",
  "metadata": {"order_id": "123456"}
}`

// obj is a job as generic JSON, so that a test case can set any field to any JSON value,
// including values of the wrong type.
type obj = map[string]any

// base returns a minimal valid template job.
func base() obj {
	return obj{"id": "job-1", "to": "+79001234567", "template": "order_ready"}
}

// with returns base() with the given keys set; a nil value deletes the key.
func with(kv obj) obj {
	o := base()
	for k, v := range kv {
		if v == nil {
			delete(o, k)
			continue
		}
		o[k] = v
	}
	return o
}

// jsonNull stands for an explicit JSON null in with() (nil deletes the key).
type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal test input: %v", err)
	}
	return b
}

// fieldsOf returns the sorted field names of a *ValidationError, failing the test for any
// other kind of error.
func fieldsOf(t testing.TB, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	if !errors.Is(err, job.ErrInvalid) {
		t.Fatalf("error %v does not match job.ErrInvalid", err)
	}
	var verr *job.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %T %v is not a *job.ValidationError", err, err)
	}
	if len(verr.Fields) == 0 {
		t.Fatalf("ValidationError with no fields: %v", err)
	}
	names := make([]string, len(verr.Fields))
	for i, f := range verr.Fields {
		if f.Reason == "" {
			t.Errorf("field %q reported without a reason", f.Field)
		}
		names[i] = f.Field
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// reasonOf returns the reasons reported for one field, joined.
func reasonOf(err error, field string) string {
	var verr *job.ValidationError
	if !errors.As(err, &verr) {
		return ""
	}
	var rs []string
	for _, f := range verr.Fields {
		if f.Field == field {
			rs = append(rs, f.Reason)
		}
	}
	return strings.Join(rs, "; ")
}

// decodeCase is one Decode input and what must come of it.
type decodeCase struct {
	name  string
	in    obj    // encoded with encoding/json; ignored when raw is set
	raw   string // the exact bytes to decode
	opts  *job.Options
	want  []string             // field names of the error, sorted; nil means the job is accepted
	why   string               // a substring of the reason for want[0]
	check func(*job.Job) error // on an accepted job
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := []byte(tc.raw)
			if tc.raw == "" {
				data = mustJSON(t, tc.in)
			}
			o := opts
			if tc.opts != nil {
				o = *tc.opts
			}
			j, err := job.Decode(data, o)
			got := fieldsOf(t, err)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Decode(%s): invalid fields %q, want %q (err: %v)", data, got, tc.want, err)
			}
			if err != nil {
				if j != nil {
					t.Errorf("Decode returned a job together with error %v", err)
				}
				if tc.why != "" && !strings.Contains(reasonOf(err, tc.want[0]), tc.why) {
					t.Errorf("reason for %q = %q, want it to contain %q", tc.want[0], reasonOf(err, tc.want[0]), tc.why)
				}
				return
			}
			if j == nil {
				t.Fatal("Decode returned neither a job nor an error")
			}
			if tc.check != nil {
				if err := tc.check(j); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestContractsShowTheExample keeps docs/contracts.md true: its example job is the one these
// tests decode.
func TestContractsShowTheExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "contracts.md"))
	if err != nil {
		t.Fatal(err)
	}
	const fence = "```json\n"
	i := strings.Index(string(doc), fence)
	if i < 0 {
		t.Fatal("docs/contracts.md has no JSON example")
	}
	rest := string(doc)[i+len(fence):]
	shown := rest[:strings.Index(rest, "\n```")]
	if shown != designExample {
		t.Errorf("docs/contracts.md shows another example job:\n%s\nwant:\n%s", shown, designExample)
	}
}

func TestDecodeDesignExample(t *testing.T) {
	t.Parallel()
	j, err := job.Decode([]byte(designExample), opts)
	if err != nil {
		t.Fatalf("the docs/contracts.md example job must decode: %v", err)
	}
	sendAt := time.Date(2026, 11, 25, 9, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	expiresAt := time.Date(2026, 11, 26, 0, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	want := job.Job{
		ID:       "order-123456-ready",
		To:       "+79001234567",
		Template: "order_ready",
		Language: "ru",
		Params:   map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2021"},
		Priority: job.PriorityTransactional,
		Channels: []string{job.ChannelWhite, job.ChannelSMS},
		Media:    &job.Media{Type: job.MediaDocument, URL: "https://shop.example/receipts/123456.pdf", Filename: "receipt.pdf"},
		Buttons:  map[string]string{"0": "orders/123456"},
		SMSText:  "Заказ 123456 ждёт вас до 21.02.2021",
		SendAt:   &sendAt,
		ExpireAt: &expiresAt,
		Campaign: "balance-expiry-2026-11",
		Tenant:   "shop",
		Metadata: map[string]string{"order_id": "123456"},
	}
	if diff := jobDiff(&want, j); diff != "" {
		t.Errorf("decoded contract example differs: %s", diff)
	}
	if _, off := j.SendAt.Zone(); off != 3*3600 {
		t.Errorf("send_at offset = %ds, want the job's +03:00 kept", off)
	}
}

func TestDecodeID(t *testing.T) {
	t.Parallel()
	runDecodeCases(t, []decodeCase{
		{name: "one char", in: with(obj{"id": "a"})},
		{name: "every allowed class", in: with(obj{"id": "Az09._:-"})},
		{name: "128 chars", in: with(obj{"id": strings.Repeat("x", 128)})},
		{name: "129 chars", in: with(obj{"id": strings.Repeat("x", 129)}), want: []string{"id"}, why: "1-128"},
		{name: "missing", in: with(obj{"id": nil}), want: []string{"id"}, why: "required"},
		{name: "empty", in: with(obj{"id": ""}), want: []string{"id"}, why: "required"},
		{name: "null", in: with(obj{"id": jsonNull{}}), want: []string{"id"}, why: "required"},
		{name: "space", in: with(obj{"id": "order 1"}), want: []string{"id"}},
		{name: "slash", in: with(obj{"id": "order/1"}), want: []string{"id"}},
		{name: "non-ASCII letter", in: with(obj{"id": "заказ-1"}), want: []string{"id"}},
		{name: "trailing newline", in: with(obj{"id": "order-1\n"}), want: []string{"id"}},
		{name: "hash", in: with(obj{"id": "order#1"}), want: []string{"id"}},
		{name: "number", in: with(obj{"id": 123}), want: []string{"id"}, why: "string"},
	})
}

func TestDecodeTo(t *testing.T) {
	t.Parallel()
	wantTo := func(want string) func(*job.Job) error {
		return func(j *job.Job) error {
			if j.To != want {
				return fmt.Errorf("to = %q, want %q", j.To, want)
			}
			return nil
		}
	}
	us := job.Options{DefaultRegion: "us"}
	none := job.Options{}
	runDecodeCases(t, []decodeCase{
		{name: "E.164", in: with(obj{"to": "+79001234567"}), check: wantTo("+79001234567")},
		{name: "national with trunk 8", in: with(obj{"to": "8 900 123-45-67"}), check: wantTo("+79001234567")},
		{name: "national digits only", in: with(obj{"to": "89001234567"}), check: wantTo("+79001234567")},
		{name: "international formatted", in: with(obj{"to": "+7 (900) 123-45-67"}), check: wantTo("+79001234567")},
		{name: "surrounding spaces", in: with(obj{"to": "  +7 900 123 45 67 "}), check: wantTo("+79001234567")},
		{name: "Moscow landline", in: with(obj{"to": "8 (495) 123-45-67"}), check: wantTo("+74951234567")},
		{name: "foreign number in international format", in: with(obj{"to": "+1 650-253-0000"}), check: wantTo("+16502530000")},
		{name: "default region from options, lower case", in: with(obj{"to": "(650) 253-0000"}), opts: &us, check: wantTo("+16502530000")},
		{name: "no region in options means RU", in: with(obj{"to": "8 900 123-45-67"}), opts: &none, check: wantTo("+79001234567")},
		{name: "RU national under region US", in: with(obj{"to": "8 900 123-45-67"}), opts: &us, want: []string{"to"}, why: "region US"},
		{name: "too short", in: with(obj{"to": "12345"}), want: []string{"to"}, why: "not a valid phone number"},
		{name: "unassigned range", in: with(obj{"to": "+7 000 000-00-00"}), want: []string{"to"}},
		{name: "too long", in: with(obj{"to": "+7900123456789012"}), want: []string{"to"}},
		{name: "letters", in: with(obj{"to": "call me"}), want: []string{"to"}},
		{name: "missing", in: with(obj{"to": nil}), want: []string{"to"}, why: "required"},
		{name: "empty", in: with(obj{"to": ""}), want: []string{"to"}, why: "required"},
		{name: "number type", in: with(obj{"to": 79001234567}), want: []string{"to"}, why: "string"},
	})
}

func TestDecodeToErrorHidesNumber(t *testing.T) {
	t.Parallel()
	// The reason ends up in logs and API answers: it must not repeat the number.
	for _, to := range []string{"+7 000 000-00-00", "8 000 000 00 00", "+999 123 456 789"} {
		_, err := job.Decode(mustJSON(t, with(obj{"to": to})), opts)
		if err == nil {
			t.Fatalf("to %q accepted", to)
		}
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, to)
		if strings.Contains(err.Error(), digits) || strings.Contains(err.Error(), to) {
			t.Errorf("error %q repeats the number %q", err, to)
		}
	}
}

func TestDecodeContent(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("ж", n) } // two bytes a rune: limits count runes
	params := func(n int) obj {
		p := obj{}
		for i := range n {
			p[fmt.Sprintf("p%d", i)] = "v"
		}
		return p
	}
	runDecodeCases(t, []decodeCase{
		{name: "template only", in: base(), check: func(j *job.Job) error {
			if j.Template != "order_ready" || j.Text != "" {
				return fmt.Errorf("template %q text %q", j.Template, j.Text)
			}
			return nil
		}},
		{name: "text only", in: with(obj{"template": nil, "text": "Привет"}), check: func(j *job.Job) error {
			if j.Text != "Привет" || j.Language != "" {
				return fmt.Errorf("text %q language %q (a text job gets no default language)", j.Text, j.Language)
			}
			return nil
		}},
		{name: "empty template with text", in: with(obj{"template": "", "text": "hi"})},
		{name: "neither", in: with(obj{"template": nil}), want: []string{"template"}, why: "one of template or text"},
		{name: "both empty", in: with(obj{"template": "", "text": ""}), want: []string{"template"}},
		{name: "both", in: with(obj{"text": "hi"}), want: []string{"text"}, why: "not both"},
		{name: "template name with capitals", in: with(obj{"template": "Order_Ready"}), want: []string{"template"}},
		{name: "template name with dash", in: with(obj{"template": "order-ready"}), want: []string{"template"}},
		{name: "template name 512", in: with(obj{"template": strings.Repeat("a", 512)})},
		{name: "template name 513", in: with(obj{"template": strings.Repeat("a", 513)}), want: []string{"template"}},
		{name: "text with language", in: with(obj{"template": nil, "text": "hi", "language": "ru"}), want: []string{"language"}, why: "only with template"},
		{name: "text with params", in: with(obj{"template": nil, "text": "hi", "params": obj{"1": "x"}}), want: []string{"params"}, why: "only with template"},
		{name: "text 4096 runes", in: with(obj{"template": nil, "text": long(4096)})},
		{name: "text 4097 runes", in: with(obj{"template": nil, "text": long(4097)}), want: []string{"text"}, why: "4096"},
		{name: "positional params", in: with(obj{"params": obj{"1": "a", "2": "b", "99": "c"}})},
		{name: "named params", in: with(obj{"params": obj{"order": "1", "_x": "2", "a1_b": "3"}})},
		{name: "param 0", in: with(obj{"params": obj{"0": "a"}}), want: []string{"params.0"}},
		{name: "param 100", in: with(obj{"params": obj{"100": "a"}}), want: []string{"params.100"}},
		{name: "param 01", in: with(obj{"params": obj{"01": "a"}}), want: []string{"params.01"}},
		{name: "param upper case", in: with(obj{"params": obj{"Order": "a"}}), want: []string{"params.Order"}},
		{name: "param with dash", in: with(obj{"params": obj{"order-id": "a"}}), want: []string{"params.order-id"}},
		{name: "param empty name", in: with(obj{"params": obj{"": "a"}}), want: []string{"params."}},
		{name: "param value 1024 runes", in: with(obj{"params": obj{"1": long(1024)}})},
		{name: "param value 1025 runes", in: with(obj{"params": obj{"1": long(1025)}}), want: []string{"params.1"}, why: "1024"},
		{name: "50 params", in: with(obj{"params": params(50)})},
		{name: "51 params", in: with(obj{"params": params(51)}), want: []string{"params"}, why: "50"},
		{name: "params with a number value", in: with(obj{"params": obj{"order": 5}}), want: []string{"params"}, why: "string"},
		{name: "params as array", in: with(obj{"params": []any{"a"}}), want: []string{"params"}},
		{name: "template as number", in: with(obj{"template": 5}), want: []string{"template"}},
		{name: "text as object", in: with(obj{"template": nil, "text": obj{}}), want: []string{"text"}},
	})
}

func TestDecodeLanguage(t *testing.T) {
	t.Parallel()
	lang := func(want string) func(*job.Job) error {
		return func(j *job.Job) error {
			if j.Language != want {
				return fmt.Errorf("language = %q, want %q", j.Language, want)
			}
			return nil
		}
	}
	en := job.Options{DefaultRegion: "RU", DefaultLanguage: "en"}
	none := job.Options{}
	runDecodeCases(t, []decodeCase{
		{name: "default from options", in: base(), check: lang("ru")},
		{name: "other default from options", in: base(), opts: &en, check: lang("en")},
		{name: "no default in options means ru", in: base(), opts: &none, check: lang("ru")},
		{name: "empty string takes the default", in: with(obj{"language": ""}), opts: &en, check: lang("en")},
		{name: "explicit wins over default", in: with(obj{"language": "kk"}), check: lang("kk")},
		{name: "en_US", in: with(obj{"language": "en_US"}), check: lang("en_US")},
		{name: "pt_BR", in: with(obj{"language": "pt_BR"}), check: lang("pt_BR")},
		{name: "zh_CN", in: with(obj{"language": "zh_CN"}), check: lang("zh_CN")},
		{name: "three letters", in: with(obj{"language": "fil"}), check: lang("fil")},
		{name: "upper case", in: with(obj{"language": "RU"}), want: []string{"language"}, why: `"RU"`},
		{name: "BCP 47 dash", in: with(obj{"language": "ru-RU"}), want: []string{"language"}},
		{name: "a word", in: with(obj{"language": "russian"}), want: []string{"language"}},
		{name: "one letter", in: with(obj{"language": "r"}), want: []string{"language"}},
		{name: "number", in: with(obj{"language": 7}), want: []string{"language"}, why: "string"},
		{name: "invalid default is reported", in: base(), opts: &job.Options{DefaultLanguage: "Russian"}, want: []string{"language"}},
	})
}

func TestDecodePriority(t *testing.T) {
	t.Parallel()
	prio := func(want string) func(*job.Job) error {
		return func(j *job.Job) error {
			if j.Priority != want {
				return fmt.Errorf("priority = %q, want %q", j.Priority, want)
			}
			return nil
		}
	}
	runDecodeCases(t, []decodeCase{
		{name: "default", in: base(), check: prio(job.PriorityTransactional)},
		{name: "empty takes the default", in: with(obj{"priority": ""}), check: prio(job.PriorityTransactional)},
		{name: "transactional", in: with(obj{"priority": "transactional"}), check: prio(job.PriorityTransactional)},
		{name: "bulk", in: with(obj{"priority": "bulk"}), check: prio(job.PriorityBulk)},
		{name: "unknown", in: with(obj{"priority": "urgent"}), want: []string{"priority"}, why: `"urgent"`},
		{name: "case matters", in: with(obj{"priority": "BULK"}), want: []string{"priority"}},
		{name: "number", in: with(obj{"priority": 1}), want: []string{"priority"}},
	})
}

func TestDecodeChannels(t *testing.T) {
	t.Parallel()
	chans := func(want ...string) func(*job.Job) error {
		return func(j *job.Job) error {
			if !slices.Equal(j.Channels, want) {
				return fmt.Errorf("channels = %q, want %q", j.Channels, want)
			}
			return nil
		}
	}
	runDecodeCases(t, []decodeCase{
		{name: "absent", in: base(), check: chans()},
		{name: "one", in: with(obj{"channels": []string{"sms"}}), check: chans("sms")},
		{name: "all three, order kept", in: with(obj{"channels": []string{"grey", "white", "sms"}}), check: chans("grey", "white", "sms")},
		{name: "unknown", in: with(obj{"channels": []string{"white", "fax"}}), want: []string{"channels"}, why: `"fax"`},
		{name: "case matters", in: with(obj{"channels": []string{"White"}}), want: []string{"channels"}},
		{name: "duplicate", in: with(obj{"channels": []string{"white", "sms", "white"}}), want: []string{"channels"}, why: "twice"},
		{name: "empty list given", in: with(obj{"channels": []string{}}), want: []string{"channels"}, why: "at least one"},
		{name: "empty name", in: with(obj{"channels": []string{""}}), want: []string{"channels"}},
		{name: "string instead of list", in: with(obj{"channels": "white"}), want: []string{"channels"}, why: "array"},
		{name: "number in list", in: with(obj{"channels": []any{"white", 1}}), want: []string{"channels"}},
	})
}

func TestDecodeMedia(t *testing.T) {
	t.Parallel()
	media := func(kv obj) obj {
		m := obj{"type": "image", "url": "https://cdn.example/a.jpg"}
		for k, v := range kv {
			if v == nil {
				delete(m, k)
				continue
			}
			m[k] = v
		}
		return with(obj{"media": m})
	}
	runDecodeCases(t, []decodeCase{
		{name: "absent", in: base(), check: func(j *job.Job) error {
			if j.Media != nil {
				return fmt.Errorf("media = %+v, want nil", j.Media)
			}
			return nil
		}},
		{name: "null", in: with(obj{"media": jsonNull{}})},
		{name: "image with caption", in: media(obj{"caption": "Ваш чек"}), check: func(j *job.Job) error {
			want := job.Media{Type: "image", URL: "https://cdn.example/a.jpg", Caption: "Ваш чек"}
			if j.Media == nil || *j.Media != want {
				return fmt.Errorf("media = %+v, want %+v", j.Media, want)
			}
			return nil
		}},
		{name: "video", in: media(obj{"type": "video"})},
		{name: "document with filename", in: media(obj{"type": "document", "filename": "receipt.pdf"})},
		{name: "document without filename", in: media(obj{"type": "document"})},
		{name: "http url", in: media(obj{"url": "http://cdn.example/a.jpg"})},
		{name: "filename on an image", in: media(obj{"filename": "a.jpg"}), want: []string{"media.filename"}, why: "document"},
		{name: "filename on a video", in: media(obj{"type": "video", "filename": "a.mp4"}), want: []string{"media.filename"}},
		{name: "filename 240 runes", in: media(obj{"type": "document", "filename": strings.Repeat("ф", 240)})},
		{name: "filename 241 runes", in: media(obj{"type": "document", "filename": strings.Repeat("ф", 241)}), want: []string{"media.filename"}},
		{name: "caption 1024 runes", in: media(obj{"caption": strings.Repeat("ф", 1024)})},
		{name: "caption 1025 runes", in: media(obj{"caption": strings.Repeat("ф", 1025)}), want: []string{"media.caption"}},
		{name: "audio type", in: media(obj{"type": "audio"}), want: []string{"media.type"}, why: `"audio"`},
		{name: "sticker type", in: media(obj{"type": "sticker"}), want: []string{"media.type"}},
		{name: "type missing", in: media(obj{"type": nil}), want: []string{"media.type"}, why: "required"},
		{name: "url missing", in: media(obj{"url": nil}), want: []string{"media.url"}, why: "required"},
		{name: "ftp url", in: media(obj{"url": "ftp://cdn.example/a.jpg"}), want: []string{"media.url"}},
		{name: "file url", in: media(obj{"url": "file:///etc/passwd"}), want: []string{"media.url"}},
		{name: "javascript url", in: media(obj{"url": "javascript:alert(1)"}), want: []string{"media.url"}},
		{name: "relative url", in: media(obj{"url": "/a.jpg"}), want: []string{"media.url"}},
		{name: "no host", in: media(obj{"url": "https://"}), want: []string{"media.url"}},
		{name: "unparsable url", in: media(obj{"url": "https://exa mple.com/%zz"}), want: []string{"media.url"}},
		{name: "empty object", in: with(obj{"media": obj{}}), want: []string{"media.type", "media.url"}},
		{name: "unknown key", in: media(obj{"mime": "image/jpeg"}), want: []string{"media"}, why: "mime"},
		{name: "string instead of object", in: with(obj{"media": "https://cdn.example/a.jpg"}), want: []string{"media"}},
		{name: "type as number", in: media(obj{"type": 1}), want: []string{"media"}},
	})
}

func TestDecodeButtons(t *testing.T) {
	t.Parallel()
	b := func(kv obj) obj { return with(obj{"buttons": kv}) }
	runDecodeCases(t, []decodeCase{
		{name: "index 0", in: b(obj{"0": "orders/1"})},
		{name: "indexes 0 to 9", in: b(obj{"0": "a", "1": "b", "5": "c", "9": "d"})},
		{name: "value 2000 runes", in: b(obj{"0": strings.Repeat("ы", 2000)})},
		{name: "value 2001 runes", in: b(obj{"0": strings.Repeat("ы", 2001)}), want: []string{"buttons.0"}},
		{name: "empty value", in: b(obj{"0": ""}), want: []string{"buttons.0"}},
		{name: "index 10", in: b(obj{"10": "a"}), want: []string{"buttons.10"}, why: "0 to 9"},
		{name: "negative", in: b(obj{"-1": "a"}), want: []string{"buttons.-1"}},
		{name: "leading zero", in: b(obj{"01": "a"}), want: []string{"buttons.01"}},
		{name: "plus sign", in: b(obj{"+1": "a"}), want: []string{"buttons.+1"}},
		{name: "name", in: b(obj{"url": "a"}), want: []string{"buttons.url"}},
		{name: "two bad keys", in: b(obj{"x": "a", "y": "b", "0": "ok"}), want: []string{"buttons.x", "buttons.y"}},
		{name: "number value", in: b(obj{"0": 1}), want: []string{"buttons"}},
		{name: "array", in: with(obj{"buttons": []string{"a"}}), want: []string{"buttons"}},
	})
}

func TestDecodeTimes(t *testing.T) {
	t.Parallel()
	at := func(field string, want time.Time) func(*job.Job) error {
		return func(j *job.Job) error {
			got := j.SendAt
			if field == "expires_at" {
				got = j.ExpireAt
			}
			if got == nil || !got.Equal(want) {
				return fmt.Errorf("%s = %v, want %v", field, got, want)
			}
			return nil
		}
	}
	msk := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	runDecodeCases(t, []decodeCase{
		{name: "send_at with offset", in: with(obj{"send_at": "2026-11-25T09:00:00+03:00"}), check: at("send_at", msk)},
		{name: "send_at UTC", in: with(obj{"send_at": "2026-11-25T06:00:00Z"}), check: at("send_at", msk)},
		{name: "send_at fractional", in: with(obj{"send_at": "2026-11-25T06:00:00.25Z"}), check: at("send_at", msk.Add(250*time.Millisecond))},
		{name: "expires_at alone", in: with(obj{"expires_at": "2026-11-25T09:00:00+03:00"}), check: at("expires_at", msk)},
		{name: "null send_at", in: with(obj{"send_at": jsonNull{}}), check: func(j *job.Job) error {
			if j.SendAt != nil {
				return fmt.Errorf("send_at = %v, want nil", j.SendAt)
			}
			return nil
		}},
		{name: "expires after send", in: with(obj{"send_at": "2026-11-25T09:00:00+03:00", "expires_at": "2026-11-25T06:00:01Z"})},
		{name: "expires equal to send", in: with(obj{"send_at": "2026-11-25T09:00:00+03:00", "expires_at": "2026-11-25T06:00:00Z"}), want: []string{"expires_at"}, why: "after send_at"},
		{name: "expires before send", in: with(obj{"send_at": "2026-11-26T00:00:00+03:00", "expires_at": "2026-11-25T09:00:00+03:00"}), want: []string{"expires_at"}},
		{name: "date only", in: with(obj{"send_at": "2026-11-25"}), want: []string{"send_at"}, why: "RFC 3339"},
		{name: "no offset", in: with(obj{"send_at": "2026-11-25T09:00:00"}), want: []string{"send_at"}},
		{name: "space separator", in: with(obj{"send_at": "2026-11-25 09:00:00+03:00"}), want: []string{"send_at"}},
		{name: "Russian format", in: with(obj{"expires_at": "25.11.2026 09:00"}), want: []string{"expires_at"}},
		{name: "month 13", in: with(obj{"send_at": "2026-13-25T09:00:00Z"}), want: []string{"send_at"}},
		{name: "unix seconds", in: with(obj{"send_at": 1795586400}), want: []string{"send_at"}, why: "RFC 3339"},
		{name: "empty string", in: with(obj{"expires_at": ""}), want: []string{"expires_at"}},
		{name: "both bad", in: with(obj{"send_at": "tomorrow", "expires_at": "later"}), want: []string{"expires_at", "send_at"}},
	})
}

func TestDecodeOtherFields(t *testing.T) {
	t.Parallel()
	meta := func(n int) obj {
		m := obj{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	runDecodeCases(t, []decodeCase{
		{name: "sms_text 1600 runes", in: with(obj{"sms_text": strings.Repeat("щ", 1600)})},
		{name: "sms_text 1601 runes", in: with(obj{"sms_text": strings.Repeat("щ", 1601)}), want: []string{"sms_text"}, why: "1600"},
		{name: "sms_text number", in: with(obj{"sms_text": 1}), want: []string{"sms_text"}},
		{name: "campaign", in: with(obj{"campaign": "balance-expiry-2026-11"})},
		{name: "campaign with space", in: with(obj{"campaign": "balance expiry"}), want: []string{"campaign"}},
		{name: "campaign 129", in: with(obj{"campaign": strings.Repeat("c", 129)}), want: []string{"campaign"}},
		{name: "campaign array", in: with(obj{"campaign": []string{}}), want: []string{"campaign"}},
		{name: "tenant", in: with(obj{"tenant": "shop"})},
		{name: "tenant with slash", in: with(obj{"tenant": "shop/1"}), want: []string{"tenant"}},
		{name: "tenant with dash", in: with(obj{"tenant": "shop-eu-2"})},
		{name: "tenant with a dot", in: with(obj{"tenant": "shop.eu"}), want: []string{"tenant"}},
		{name: "tenant with a colon", in: with(obj{"tenant": "shop:eu"}), want: []string{"tenant"}},
		{name: "tenant in capitals", in: with(obj{"tenant": "Shop"}), want: []string{"tenant"}},
		{name: "tenant too long", in: with(obj{"tenant": strings.Repeat("a", 64)}), want: []string{"tenant"}},
		{name: "tenant number", in: with(obj{"tenant": 5}), want: []string{"tenant"}},
		{name: "metadata 32 keys", in: with(obj{"metadata": meta(32)})},
		{name: "metadata 33 keys", in: with(obj{"metadata": meta(33)}), want: []string{"metadata"}, why: "32"},
		{name: "metadata empty key", in: with(obj{"metadata": obj{"": "v"}}), want: []string{"metadata."}},
		{name: "metadata key 65 bytes", in: with(obj{"metadata": obj{strings.Repeat("k", 65): "v"}}), want: []string{"metadata." + strings.Repeat("k", 65)}},
		{name: "metadata value 1025 bytes", in: with(obj{"metadata": obj{"k": strings.Repeat("v", 1025)}}), want: []string{"metadata.k"}},
		{name: "metadata number value", in: with(obj{"metadata": obj{"k": 1}}), want: []string{"metadata"}},
		{name: "metadata array", in: with(obj{"metadata": []string{"a"}}), want: []string{"metadata"}},
	})
}

func TestDecodeUnknownFields(t *testing.T) {
	t.Parallel()
	runDecodeCases(t, []decodeCase{
		{name: "one", in: with(obj{"sendAt": "2026-11-25T09:00:00Z"}), want: []string{"sendAt"}, why: "unknown field"},
		{name: "case differs from a known field", in: with(obj{"ID": "x"}), want: []string{"ID"}, why: "unknown field"},
		{name: "version", in: with(obj{"version": 1}), want: []string{"version"}},
		{name: "several", in: with(obj{"foo": 1, "bar": "x", "baz": nil}), want: []string{"bar", "foo"}},
		{name: "empty key", in: with(obj{"": 1}), want: []string{""}, why: "unknown field"},
		{name: "unknown and null", in: with(obj{"callback_url": jsonNull{}}), want: []string{"callback_url"}},
		{name: "nested unknown names the parent", in: with(obj{"media": obj{"type": "image", "url": "https://a.example/x", "size": 1}}), want: []string{"media"}, why: "size"},
	})
}

func TestDecodeNotAnObject(t *testing.T) {
	t.Parallel()
	huge := `{"id":"a","to":"+79001234567","template":"t","text":"` + strings.Repeat("x", job.MaxSize) + `"}`
	runDecodeCases(t, []decodeCase{
		{name: "array", raw: `[]`, want: []string{"$"}},
		{name: "null", raw: `null`, want: []string{"$"}},
		{name: "number", raw: `42`, want: []string{"$"}},
		{name: "string", raw: `"job"`, want: []string{"$"}},
		{name: "truncated", raw: `{"id":"a",`, want: []string{"$"}},
		{name: "trailing data", raw: `{"id":"a"} {}`, want: []string{"$"}},
		{name: "whitespace", raw: " \n", want: []string{"$"}},
		{name: "over MaxSize", raw: huge, want: []string{"$"}, why: "bytes"},
		{name: "empty object", raw: `{}`, want: []string{"id", "template", "to"}},
	})
}

// TestDecodeReportsEveryField checks that one answer names every bad field, so that an API
// client can fix a job in one round.
func TestDecodeReportsEveryField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   obj
		want []string
	}{
		{
			name: "five problems",
			in: with(obj{
				"id":       "has space",
				"to":       "12345",
				"priority": "urgent",
				"channels": []string{"fax"},
				"media":    obj{"type": "image", "url": "ftp://x/y"},
			}),
			want: []string{"channels", "id", "media.url", "priority", "to"},
		},
		{
			name: "type errors, unknown fields and rule errors together",
			in: with(obj{
				"id":         "",
				"params":     obj{"order": 5},
				"metadata":   []int{1},
				"colour":     "red",
				"expires_at": "soon",
				"buttons":    obj{"x": "y"},
				"sms_text":   strings.Repeat("s", 1601),
			}),
			want: []string{"buttons.x", "colour", "expires_at", "id", "metadata", "params", "sms_text"},
		},
		{
			name: "everything missing",
			in:   obj{"language": "xx-YY"},
			want: []string{"id", "template", "to"},
		},
		{
			name: "text job with template-only fields",
			in:   with(obj{"template": nil, "text": "hi", "language": "ru", "params": obj{"1": "x"}, "tenant": "a b"}),
			want: []string{"language", "params", "tenant"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := job.Decode(mustJSON(t, tc.in), opts)
			got := fieldsOf(t, err)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("fields %q, want %q (err: %v)", got, tc.want, err)
			}
			var verr *job.ValidationError
			errors.As(err, &verr)
			if !slices.IsSortedFunc(verr.Fields, func(a, b job.FieldError) int { return strings.Compare(a.Field, b.Field) }) {
				t.Errorf("fields are not sorted: %v", verr.Fields)
			}
			for _, f := range tc.want {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error text %q does not name %q", err, f)
				}
			}
		})
	}
}

func TestValidationError(t *testing.T) {
	t.Parallel()
	err := &job.ValidationError{Fields: []job.FieldError{{Field: "id", Reason: "required"}, {Field: "to", Reason: "bad"}}}
	if got, want := err.Error(), "invalid job: id: required; to: bad"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("publish: %w", err)
	if !errors.Is(wrapped, job.ErrInvalid) {
		t.Error("a wrapped ValidationError must match ErrInvalid")
	}
	if errors.Is(errors.New("invalid job"), job.ErrInvalid) {
		t.Error("an unrelated error with the same text must not match ErrInvalid")
	}
	// The API answers with this JSON: its shape is part of the 400 response.
	b, _ := json.Marshal(err)
	if got, want := string(b), `{"fields":[{"field":"id","reason":"required"},{"field":"to","reason":"bad"}]}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
	}{
		{"contract example", designExample},
		{"minimal template", string(mustJSON(t, base()))},
		{"national number and defaults", `{"id":"x","to":"8 900 123-45-67","template":"t"}`},
		{"text job", `{"id":"x","to":"+79001234567","text":"<b>&amp;</b> \u2028 \"quoted\"","priority":"bulk","channels":["grey"]}`},
		{"text with media", `{"id":"x","to":"+79001234567","text":"see","media":{"type":"image","url":"https://a.example/i.png?x=1&y=2","caption":"c"}}`},
		{"fractional UTC times", `{"id":"x","to":"+79001234567","template":"t","send_at":"2026-01-02T03:04:05.123456789Z","expires_at":"2026-01-03T00:00:00-05:30"}`},
		{"empty maps", `{"id":"x","to":"+79001234567","template":"t","params":{},"metadata":{},"buttons":{}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j1, err := job.Decode([]byte(tc.in), opts)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			enc1, err := j1.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			j2, err := job.Decode(enc1, opts)
			if err != nil {
				t.Fatalf("Decode(Encode(job)) = %v; encoded: %s", err, enc1)
			}
			if diff := jobDiff(j1, j2); diff != "" {
				t.Errorf("round trip changed the job: %s", diff)
			}
			enc2, err := j2.Encode()
			if err != nil {
				t.Fatalf("second Encode: %v", err)
			}
			if string(enc1) != string(enc2) {
				t.Errorf("encoding is not canonical:\n%s\n%s", enc1, enc2)
			}
			// The encoded form carries the normalised values, so that a worker with other
			// defaults still sends the same thing.
			var m map[string]any
			if err := json.Unmarshal(enc1, &m); err != nil {
				t.Fatal(err)
			}
			if m["to"] != "+79001234567" {
				t.Errorf("encoded to = %v, want E.164", m["to"])
			}
			if m["priority"] == nil {
				t.Error("encoded job has no priority")
			}
			if j1.Template != "" && m["language"] == nil {
				t.Error("encoded template job has no language")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	sendAt := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	earlier := sendAt.Add(-time.Minute)
	cases := []struct {
		name string
		in   job.Job
		want []string
		// the job after validation, when accepted
		after *job.Job
	}{
		{
			name:  "normalises in place",
			in:    job.Job{ID: "a", To: "8 (900) 123-45-67", Template: "t"},
			after: &job.Job{ID: "a", To: "+79001234567", Template: "t", Language: "ru", Priority: job.PriorityTransactional},
		},
		{
			name:  "text job keeps no language",
			in:    job.Job{ID: "a", To: "+79001234567", Text: "hi", Priority: job.PriorityBulk},
			after: &job.Job{ID: "a", To: "+79001234567", Text: "hi", Priority: job.PriorityBulk},
		},
		{
			// Only Decode can tell "channels": [] from no channels; in Go both mean the default.
			name:  "empty channels in Go mean the default",
			in:    job.Job{ID: "a", To: "+79001234567", Template: "t", Channels: []string{}},
			after: &job.Job{ID: "a", To: "+79001234567", Template: "t", Language: "ru", Priority: job.PriorityTransactional, Channels: []string{}},
		},
		{name: "zero job", in: job.Job{}, want: []string{"id", "template", "to"}},
		{name: "both template and text", in: job.Job{ID: "a", To: "+79001234567", Template: "t", Text: "x"}, want: []string{"text"}},
		{
			name: "every rule Decode applies",
			in: job.Job{
				ID: "a b", To: "1", Template: "T", Language: "xx-YY", Params: map[string]string{"Bad": "x"},
				Priority: "now", Channels: []string{"sms", "sms"}, Media: &job.Media{Type: "gif", URL: "x"},
				Buttons: map[string]string{"11": "x"}, SMSText: strings.Repeat("s", 1601),
				SendAt: &sendAt, ExpireAt: &earlier, Campaign: "c c", Tenant: "t t",
				Metadata: map[string]string{"": "x"},
			},
			want: []string{
				"buttons.11", "campaign", "channels", "expires_at", "id", "language", "media.type",
				"media.url", "metadata.", "params.Bad", "priority", "sms_text", "template", "tenant", "to",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := tc.in
			err := j.Validate(opts)
			got := fieldsOf(t, err)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("fields %q, want %q (err: %v)", got, tc.want, err)
			}
			if tc.after == nil {
				return
			}
			if diff := jobDiff(tc.after, &j); diff != "" {
				t.Errorf("after Validate: %s", diff)
			}
			again := j
			if err := again.Validate(opts); err != nil {
				t.Fatalf("a validated job must validate again: %v", err)
			}
			if diff := jobDiff(&j, &again); diff != "" {
				t.Errorf("Validate is not idempotent: %s", diff)
			}
			// What the producer validated, the worker decodes.
			enc, err := j.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := job.Decode(enc, opts); err != nil {
				t.Errorf("Decode rejects a job Validate accepted: %v; encoded: %s", err, enc)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	t.Parallel()
	exp := time.Date(2026, 11, 26, 0, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	cases := []struct {
		name string
		at   *time.Time
		now  time.Time
		want bool
	}{
		{"no expiry", nil, exp.AddDate(100, 0, 0), false},
		{"before", &exp, exp.Add(-time.Nanosecond), false},
		{"at the instant", &exp, exp, true},
		{"at the instant in another zone", &exp, exp.UTC(), true},
		{"after", &exp, exp.Add(time.Second), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := job.Job{ExpireAt: tc.at}
			if got := j.Expired(tc.now); got != tc.want {
				t.Errorf("Expired(%v) = %v, want %v", tc.now, got, tc.want)
			}
		})
	}
}

// TestRef: a ref splits back into exactly its tenant and id, and a job without a tenant
// belongs to the default one.
func TestRef(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ tenant, id, want string }{
		{"shop", "order-1", "shop/order-1"},
		{"", "order-1", "default/order-1"},
		{"bank", "a.b:c_d-e", "bank/a.b:c_d-e"},
	} {
		j := &job.Job{Tenant: tt.tenant, ID: tt.id}
		if got := j.Ref(); got != tt.want {
			t.Errorf("Ref(%q, %q) = %q, want %q", tt.tenant, tt.id, got, tt.want)
		}
		tenant, id, ok := job.SplitRef(tt.want)
		if !ok || tenant != job.TenantOr(tt.tenant) || id != tt.id {
			t.Errorf("SplitRef(%q) = %q, %q, %v", tt.want, tenant, id, ok)
		}
	}
	for _, bad := range []string{"", "shop", "/id", "shop/"} {
		if _, _, ok := job.SplitRef(bad); ok {
			t.Errorf("SplitRef(%q) accepted", bad)
		}
	}
}

func TestValidateID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"order-123456-ready", true},
		{"tenant:shop.order_1-2", true},
		{strings.Repeat("9", 128), true},
		{strings.Repeat("9", 129), false},
		{"", false},
		{"a b", false},
		{"a\n", false},
		{"a/b", false},
		{"ид", false},
		{"a*", false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%.20q", tc.id), func(t *testing.T) {
			t.Parallel()
			// Every other field is invalid: ValidateID looks at the id alone.
			j := job.Job{ID: tc.id, To: "x", Priority: "?"}
			err := j.ValidateID()
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "id: ") {
				t.Errorf("error %q does not name the id", err)
			}
		})
	}
}

func TestValidateChannels(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in  []string
		why string // empty when valid
	}{
		{nil, ""},
		{[]string{}, ""},
		{[]string{"white"}, ""},
		{[]string{"white", "grey", "sms"}, ""},
		{[]string{"sms", "white"}, ""},
		{[]string{"telegram"}, `"telegram"`},
		{[]string{"white", "WHITE"}, `"WHITE"`},
		{[]string{"sms", "grey", "sms"}, "twice"},
		{[]string{" sms"}, `" sms"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.in, ","), func(t *testing.T) {
			t.Parallel()
			err := job.ValidateChannels(tc.in)
			if tc.why == "" {
				if err != nil {
					t.Fatalf("ValidateChannels(%q) = %v", tc.in, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("ValidateChannels(%q) = %v, want an error mentioning %s", tc.in, err, tc.why)
			}
		})
	}
}

// jobDiff describes how two jobs differ, treating times as equal instants with equal
// offsets and nil and empty maps and slices as the same; "" when they are equal.
func jobDiff(want, got *job.Job) string {
	a, b := flatten(want), flatten(got)
	if reflect.DeepEqual(a, b) {
		return ""
	}
	return fmt.Sprintf("\n got: %+v\nwant: %+v", b, a)
}

// flatten flattens a job into values reflect.DeepEqual compares meaningfully.
func flatten(j *job.Job) map[string]any {
	if j == nil {
		return nil
	}
	tm := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.Format(time.RFC3339Nano)
	}
	m := func(m map[string]string) map[string]string {
		if len(m) == 0 {
			return nil
		}
		return m
	}
	var media any
	if j.Media != nil {
		media = *j.Media
	}
	var chans []string
	if len(j.Channels) > 0 {
		chans = j.Channels
	}
	return map[string]any{
		"id": j.ID, "to": j.To, "template": j.Template, "language": j.Language,
		"params": m(j.Params), "text": j.Text, "priority": j.Priority, "channels": chans,
		"media": media, "buttons": m(j.Buttons), "sms_text": j.SMSText,
		"send_at": tm(j.SendAt), "expires_at": tm(j.ExpireAt), "campaign": j.Campaign,
		"tenant": j.Tenant, "metadata": m(j.Metadata),
	}
}

// TestValidateRejectsJobTooLargeOnceEncoded: a job built in Go must fit MaxSize once
// encoded, or the worker would dead-letter what the producer accepted.
func TestValidateRejectsJobTooLargeOnceEncoded(t *testing.T) {
	t.Parallel()
	params := map[string]string{}
	for i := range 50 {
		params[fmt.Sprintf("p%d", i)] = strings.Repeat("ж", 1024)
	}
	j := &job.Job{ID: "a", To: "+79001234567", Template: "t", Params: params}
	err := j.Validate(job.Options{})
	var ve *job.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "$" {
		t.Fatalf("Validate = %v, want one error on $ (too large)", err)
	}
	// And a job that decodes re-encodes within the limit even when full of '<'.
	small := map[string]string{}
	for i := range 50 {
		small[fmt.Sprintf("p%d", i)] = strings.Repeat("<", 1024)
	}
	data, err := (&job.Job{ID: "b", To: "+79001234567", Template: "t", Params: small}).Encode()
	if err != nil || len(data) > job.MaxSize {
		t.Fatalf("encode: %d bytes, %v", len(data), err)
	}
	d, err := job.Decode(data, job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := d.Encode()
	if _, err := job.Decode(enc, job.Options{}); err != nil {
		t.Fatalf("re-decoding the encoded job: %v", err)
	}
}
