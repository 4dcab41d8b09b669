package status

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// pieces are the parts random strings are made of: the shapes records hold, and every
// character class whose encoding differs between cjson and encoding/json.
var pieces = []string{
	"", "white", "sms", "+79001234567", "order-123456-ready", "2026-11-24T22:17:28.123456789Z",
	"ул. Текстильщиков, д. 20", "https://shop.example/a?b=1&c=2", "<b>", `"quoted"`, `back\slash`,
	"tab\there", "line\nbreak", "\x00\x01\x1f\x7f", "\u2028\u2029", "😀", "\xff\xfe", "\xe2\x82",
	"wamid.HBgLNzkwMDEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA",
}

func randString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(3) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func randMap(r *rand.Rand) map[string]string {
	if r.IntN(3) == 0 {
		return nil
	}
	m := map[string]string{}
	for range r.IntN(3) {
		m[randString(r)] = randString(r)
	}
	return m
}

func randRecord(r *rand.Rand) *Record {
	rec := &Record{
		ID: randString(r), State: randString(r), Reason: randString(r), To: randString(r),
		Template: randString(r), Priority: randString(r), Campaign: randString(r), Tenant: randString(r),
		Channel: randString(r), ChannelIdx: r.IntN(5) - 1, Attempts: r.IntN(1000),
		ProviderMessageID: randString(r), SendAt: randString(r), CreatedAt: randString(r), UpdatedAt: randString(r),
		Metadata: randMap(r), Early: randMap(r), EarlyChannels: randMap(r), Resume: r.IntN(2) == 0,
		Op: randString(r), OpOld: randString(r), DeadLetter: randString(r),
	}
	for range r.IntN(3) {
		rec.Channels = append(rec.Channels, randString(r))
	}
	for range r.IntN(4) {
		a := Attempt{Channel: randString(r), ProviderMessageID: randString(r),
			State: randString(r), Code: randString(r), Reason: randString(r), At: randString(r), StatusAt: randString(r)}
		for range r.IntN(3) {
			a.Statuses = append(a.Statuses, StatusChange{State: randString(r), Code: randString(r), Reason: randString(r), At: randString(r)})
		}
		rec.History = append(rec.History, a)
	}
	if r.IntN(2) == 0 {
		rec.Claim = &Claim{Owner: randString(r), Until: r.Int64N(1 << 50), Channel: randString(r)}
	}
	return rec
}

// cjsonEncode writes v the way Redis's cjson does: keys in any order, "/" and DEL escaped,
// empty tables as {}, bytes above 0x7f as they are; sometimes it also escapes plain
// characters as \uXXXX, which any JSON writer may.
func cjsonEncode(r *rand.Rand, v any) string {
	var b strings.Builder
	var enc func(v any)
	str := func(s string) {
		b.WriteByte('"')
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '"' || c == '\\' || c == '/':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20 || c == 0x7f || (c < 0x80 && r.IntN(20) == 0):
				fmt.Fprintf(&b, `\u%04x`, c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	}
	enc = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				b.WriteString("{}")
				return
			}
			b.WriteByte('{')
			first := true
			for k, x := range v { // random order
				if !first {
					b.WriteByte(',')
				}
				first = false
				str(k)
				b.WriteByte(':')
				enc(x)
			}
			b.WriteByte('}')
		case []any:
			if len(v) == 0 {
				b.WriteString("{}")
				return
			}
			b.WriteByte('[')
			for i, x := range v {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(x)
			}
			b.WriteByte(']')
		case string:
			str(v)
		case float64:
			fmt.Fprintf(&b, "%.14g", v)
		case bool:
			fmt.Fprint(&b, v)
		case nil:
			b.WriteString("null")
		}
	}
	enc(v)
	return b.String()
}

// mutate damages s a little: the inputs parseRecord must refuse or read exactly as
// encoding/json does.
func mutate(r *rand.Rand, s string) string {
	edits := []string{"", " ", "null", `"`, `\`, `\u`, `\ud83d\ude00`, `\ud83d`, "{}", "[]", ",", ":", "0", "-", "1.5", "1e3",
		"true", `"ID"`, `"id":"x",`, `"claim":{"owner":"a"},`, "\xff", "01", "99999999999999999999"}
	b := []byte(s)
	for range 1 + r.IntN(2) {
		i := r.IntN(len(b) + 1)
		switch r.IntN(3) {
		case 0: // insert
			b = append(b[:i:i], append([]byte(edits[r.IntN(len(edits))]), b[i:]...)...)
		case 1: // delete
			if i < len(b) {
				b = append(b[:i:i], b[min(len(b), i+1+r.IntN(3)):]...)
			}
		case 2: // replace
			if i < len(b) {
				const chars = "{}[]\":,\\ 0aZ"
				b[i] = chars[r.IntN(len(chars))]
			}
		}
	}
	return string(b)
}

// checkSame fails when parseRecord accepts s but encoding/json disagrees.
func checkSame(t testing.TB, s string) bool {
	fast, ok := parseRecord(s)
	var slow Record
	err := slow.unmarshalSlow([]byte(s))
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("parseRecord accepted what encoding/json refuses (%v):\n%q", err, s)
	}
	if !reflect.DeepEqual(fast, &slow) {
		t.Fatalf("parseRecord and encoding/json disagree on\n%q\nfast: %+v\nslow: %+v", s, fast, &slow)
	}
	return true
}

func TestParseRecordMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var accepted, total, acceptedMutated int
	for range 6000 / sampleEvery {
		rec := randRecord(r)
		goJSON, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		var generic any
		if err := json.Unmarshal(goJSON, &generic); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{string(goJSON), cjsonEncode(r, generic)} {
			total++
			if checkSame(t, s) {
				accepted++
			}
			if checkSame(t, mutate(r, s)) {
				acceptedMutated++
			}
		}
	}
	// The fast path must be the common one, or it would only add work: every record without
	// invalid UTF-8 (which encoding/json replaces) is read by it.
	if accepted < total/2 {
		t.Errorf("parseRecord accepted %d of %d well-formed records", accepted, total)
	}
	if acceptedMutated == 0 {
		t.Error("no mutated record was accepted: the mutations test nothing")
	}
	t.Logf("accepted %d of %d records, %d mutated ones", accepted, total, acceptedMutated)
}

func TestParseRecordScriptOutput(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		`{"id":"a","state":"queued","history":{},"channels":{},"metadata":{},"early":{}}`,
		`{"id":"a","state":"sent","claim":{"owner":"w:1:1","until":1795000000000,"channel":"white"},"resume":true,` +
			`"history":[{"channel":"white","state":"failed","code":"deadline","reason":"not delivered in 1m","at":"2026-11-24T22:17:28Z"}],` +
			`"reason":"https:\/\/x.example\/\u00e9 \"q\"","early":{"wamid.1":"delivered"},"channel_idx":1,"attempts":0}`,
		`{"id":"b","state":"sent","early":{"wamid.2":"failed+","kannel:b":"delivered"},"early_ch":{"wamid.2":"white","kannel:b":"sms"},"op":"w:1:1|sent|0|1","op_old":"queued"}`,
		`{}`,
	} {
		if !checkSame(t, s) {
			t.Errorf("parseRecord refused %s", s)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		b, _ := json.Marshal(randRecord(r))
		f.Add(string(b))
	}
	f.Add(`{"id":"a","history":{},"claim":{}}`)
	f.Fuzz(func(t *testing.T, s string) { checkSame(t, s) })
}

// BenchmarkDecodeAnswer is the decoding of the record every script answers with (three per
// sent job); sentRecord is in bench_test.go.
func BenchmarkDecodeAnswer(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(sentRecordAnswer)))
	for b.Loop() {
		if _, err := decode(sentRecordAnswer); err != nil {
			b.Fatal(err)
		}
	}
}

// sentRecordAnswer is a record as the scripts leave it after a white send (cjson's encoding).
const sentRecordAnswer = `{"created_at":"2026-11-24T22:17:28.123456789Z","history":[{"channel":"white","provider_message_id":"wamid.HBgLNzkwMDEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","state":"sent","at":"2026-11-24T22:17:28.234567891Z"}],"template":"order_ready","channels":["white","sms"],"tenant":"shop","campaign":"c1","channel_idx":0,"priority":"transactional","metadata":{"order_id":"123456"},"attempts":1,"state":"sent","to":"+79001234567","channel":"white","id":"order-000042-ready","provider_message_id":"wamid.HBgLNzkwMDEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","updated_at":"2026-11-24T22:17:28.234567891Z"}`

// TestMarshalRecordMatchesEncodingJSON holds marshalRecord to json.Marshal byte for byte.
func TestMarshalRecordMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 6000 / sampleEvery {
		rec := randRecord(r)
		if i%7 == 0 {
			rec.History, rec.Channels, rec.Metadata = []Attempt{}, []string{}, map[string]string{}
		}
		want, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := marshalRecord(rec); string(got) != string(want) {
			t.Fatalf("marshalRecord(%+v)\n got %s\nwant %s", rec, got, want)
		}
	}
}
