package job

import (
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The regular expressions the shape functions replaced, kept here as their specification.
var (
	idRe       = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	templateRe = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)
	languageRe = regexp.MustCompile(`^[a-z]{2,3}(_[A-Za-z]{2,4})?$`)
	paramRe    = regexp.MustCompile(`^([1-9][0-9]?|[a-z_][a-z0-9_]{0,63})$`)
)

func TestShapesMatchRegexps(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 1))
	alphabet := []string{"a", "z", "A", "Z", "0", "1", "9", "_", ".", ":", "-", " ", "/", "`", "{", "@", "[", "\n", "ж", "\xff", "\x00"}
	var inputs []string
	for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 63, 64, 65, 66, 127, 128, 129, 511, 512, 513} {
		for _, c := range []string{"a", "A", "1", "_"} {
			inputs = append(inputs, strings.Repeat(c, n), "a"+strings.Repeat(c, n), "1"+strings.Repeat(c, n))
		}
	}
	inputs = append(inputs, "ru", "en_US", "pt_BR", "zh_CN", "eng", "en_", "en_U", "en_Latn", "en_Latnx", "e_US", "enus_US",
		"1", "9", "10", "99", "100", "01", "0", "order", "_x", "x1", "1x", "order-1", "header", "Order")
	for range 50000 / sampleEvery {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		inputs = append(inputs, b.String())
	}
	for _, s := range inputs {
		for _, c := range []struct {
			name string
			fn   func(string) bool
			re   *regexp.Regexp
		}{{"validID", validID, idRe}, {"validTemplate", validTemplate, templateRe}, {"validLanguage", validLanguage, languageRe}, {"validParam", validParam, paramRe}} {
			if got, want := c.fn(s), c.re.MatchString(s); got != want {
				t.Fatalf("%s(%q) = %v, the regexp %s says %v", c.name, s, got, c.re, want)
			}
		}
	}
}

// jsonValues are values of every type for any key, in the plain form the fast paths read
// and in forms they must leave to encoding/json.
var jsonValues = []string{
	`"x"`, `"+79001234567"`, `"8 900 123-45-67"`, `"order_ready"`, `"ru"`, `"en_US"`, `"bulk"`, `"white"`, `""`,
	`"ул. Текстильщиков, д. 20"`, `"\u0041b"`, `"a\\b"`, `"a\"b"`, `"\ud83d\ude00"`, "\"\xff\"", `"a/b"`, `"😀"`,
	`"2026-11-25T09:00:00+03:00"`, `"2026-11-26T00:00:00Z"`, `"job-1"`,
	`null`, `1`, `-0.5e3`, `true`, `false`, `[]`, `{}`, `[ ]`, `{ }`,
	`["white","sms"]`, `["white","white"]`, `[ "sms" , "grey" ]`, `["fax"]`, `[1]`, `["a",null]`, `[["a"]]`, `["\u0077hite"]`,
	`{"order":"1","address":"ул. Текстильщиков"}`, `{"1":"a","2":"b"}`, `{"a":1}`, `{ "a" : "b" , "a" : "c" }`,
	`{"\u0061":"b"}`, `{"0":"orders/1"}`, `{"a":{"b":"c"}}`, `{"a":"b",}`,
	`{"type":"image","url":"https://a.example/x.png"}`, `{"type":"document","url":"https://a.example/x.pdf","filename":"x.pdf","extra":1}`,
}

var jsonKeys = []string{"id", "to", "template", "language", "params", "text", "priority", "channels", "media", "buttons",
	"sms_text", "send_at", "expires_at", "campaign", "tenant", "metadata", "quiet_hours", "ID", `\u0069d`, "unknown", "", "ж"}

func ws(r *rand.Rand) string { return []string{"", "", "", " ", "\n\t", "\r\n "}[r.IntN(6)] }

// randomJob writes a job object of random members; most are valid for their key.
func randomJob(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString(ws(r) + "{" + ws(r))
	members := []string{`"id":"job-1"`, `"to":"+79001234567"`, `"template":"order_ready"`}
	for range r.IntN(8) {
		members = append(members, `"`+jsonKeys[r.IntN(len(jsonKeys))]+`"`+ws(r)+":"+ws(r)+jsonValues[r.IntN(len(jsonValues))])
	}
	if r.IntN(50) == 0 { // past maxMembers
		for i := range 30 {
			members = append(members, `"k`+strings.Repeat("x", i)+`":1`)
		}
	}
	r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	for i, m := range members {
		if i > 0 {
			b.WriteString(ws(r) + "," + ws(r))
		}
		b.WriteString(m)
	}
	b.WriteString(ws(r) + "}" + ws(r))
	s := b.String()
	if r.IntN(10) == 0 { // damage it
		i := r.IntN(len(s) + 1)
		s = s[:i] + []string{"", "}", "{", ",", `"`, "x", "\\"}[r.IntN(7)] + s[min(len(s), i+r.IntN(2)):]
	}
	return s
}

// TestDecodeFastPathsMatch holds Decode's fast paths (splitObject, decodePlain) to the
// encoding/json way: the same job, or the same error with the same fields, for every input.
func TestDecodeFastPathsMatch(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	agree := 0
	for range 10000 / sampleEvery {
		data := randomJob(r)
		if checkDecodeSame(t, []byte(data)) {
			agree++
		}
	}
	if agree < 1000/sampleEvery {
		t.Fatalf("only %d generated jobs were valid: the test exercises too little", agree)
	}
}

// checkDecodeSame fails when the fast and the reference decoding differ, and reports whether
// the job was valid.
func checkDecodeSame(t testing.TB, data []byte) bool {
	t.Helper()
	opts := Options{DefaultRegion: "RU", DefaultLanguage: "ru"}
	fj, ferr := decode(data, opts, true)
	sj, serr := decode(data, opts, false)
	if !reflect.DeepEqual(fj, sj) || !reflect.DeepEqual(ferr, serr) {
		t.Fatalf("decode of %q differs:\nfast: %+v, %v\nslow: %+v, %v", data, fj, ferr, sj, serr)
	}
	return ferr == nil
}

func FuzzDecodeFastPaths(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 9))
	for range 30 {
		f.Add([]byte(randomJob(r)))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeSame(t, data) })
}

// strPieces make strings that need every kind of escaping encoding/json does.
var strPieces = []string{"", "a", "order_ready", "+79001234567", "ул. Текстильщиков", "<b>&</b>", `"q"`, `\`, "/",
	"\b\f\n\r\t", "\x00\x01\x1f", "\x7f", "\u2028\u2029", "😀", "\xff", "\xe2\x80", "\u2027", "\ufffd"}

func randStr(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(4) {
		b.WriteString(strPieces[r.IntN(len(strPieces))])
	}
	return b.String()
}

func randStrMap(r *rand.Rand) map[string]string {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	}
	m := map[string]string{}
	for range 1 + r.IntN(20) {
		m[randStr(r)] = randStr(r)
	}
	return m
}

func randTime(r *rand.Rand) *time.Time {
	if r.IntN(3) == 0 {
		return nil
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 3*3600), time.FixedZone("", -(9*3600 + 30*60)), time.FixedZone("", 25*3600)}
	t := time.Date(r.IntN(12000)-1000, time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(3)*r.IntN(1e9), zones[r.IntN(len(zones))])
	return &t
}

// TestEncodeMatchesEncodingJSON holds appendJSON to encoding/json byte for byte: the encoded
// job is the JetStream message and the producer's size check.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 12))
	fast := 0
	for range 20000 / sampleEvery {
		j := &Job{ID: randStr(r), To: randStr(r), Template: randStr(r), Language: randStr(r), Params: randStrMap(r),
			Text: randStr(r), Priority: randStr(r), Buttons: randStrMap(r), SMSText: randStr(r), SendAt: randTime(r),
			ExpireAt: randTime(r), Campaign: randStr(r), Tenant: randStr(r), Metadata: randStrMap(r)}
		for range r.IntN(4) - 1 {
			j.Channels = append(j.Channels, randStr(r))
		}
		if r.IntN(3) == 0 {
			j.Channels = []string{}
		}
		if r.IntN(2) == 0 {
			j.Media = &Media{Type: randStr(r), URL: randStr(r), Filename: randStr(r), Caption: randStr(r)}
		}
		if r.IntN(2) == 0 {
			q := r.IntN(2) == 0
			j.QuietHours = &q
		}
		want, werr := j.encodeSlow()
		got, err := j.Encode()
		if string(got) != string(want) || (err == nil) != (werr == nil) {
			t.Fatalf("Encode of %+v:\n got %s, %v\nwant %s, %v", j, got, err, want, werr)
		}
		if _, ok := j.appendJSON(nil); ok {
			fast++
		}
	}
	if fast < 5000/sampleEvery {
		t.Fatalf("appendJSON encoded only %d jobs", fast)
	}
}
