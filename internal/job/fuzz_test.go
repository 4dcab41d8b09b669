package job_test

import (
	"errors"
	"testing"

	"github.com/herald-notify/herald/internal/job"
)

// FuzzDecode feeds Decode arbitrary bytes. A worker decodes whatever arrives on the stream,
// so Decode must never panic, must reject with a *ValidationError naming at least one field,
// and a job it accepts must survive Encode → Decode unchanged (the producer encodes, the
// worker decodes) and pass Validate unchanged (the producer's path).
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		designExample,
		`{"id":"a","to":"+79001234567","template":"t"}`,
		`{"id":"a","to":"8 900 123-45-67","text":"Привет <b>&</b>","priority":"bulk","channels":["grey","sms"]}`,
		`{"id":"a","to":"+7 (900) 123-45-67","text":"x","media":{"type":"image","url":"https://a.example/i.png","caption":"c"}}`,
		`{"id":"a","to":"+79001234567","template":"t","language":"en_US","params":{"1":"x","name":"y"},"buttons":{"0":"p"}}`,
		`{"id":"a","to":"+79001234567","template":"t","send_at":"2026-11-25T09:00:00.5+03:00","expires_at":"2026-11-26T00:00:00Z"}`,
		`{"id":"a","to":"+79001234567","template":"t","params":{},"metadata":{"k":"v"},"campaign":"c","tenant":"t"}`,
		// invalid ones
		`{}`,
		`null`,
		`[]`,
		`{"id":"a b","to":"12345","priority":"urgent","channels":["fax"],"media":{"type":"image","url":"ftp://x"}}`,
		`{"id":"a","to":"+79001234567","template":"t","params":{"order":5}}`,
		`{"id":"a","to":"+79001234567","template":"t","text":"x"}`,
		`{"id":"a","to":"+79001234567","template":"t","channels":[]}`,
		`{"id":"a","to":"+79001234567","template":"t","unknown":1}`,
		`{"id":"a","to":"+79001234567","template":"t","send_at":"2026-11-26T00:00:00Z","expires_at":"2026-11-25T00:00:00Z"}`,
		`{"id":"a","to":"+79001234567","template":"t","media":{"type":"image","url":"https://x","filename":"f"}}`,
		`{"id":"a","to":"+79001234567","template":"t","buttons":{"10":"x","01":""}}`,
		`{"id":1,"to":[],"template":{},"text":null,"media":"x","metadata":[1]}`,
		`{"id":"a"} trailing`,
		`{"":1,"id":"a","to":"+79001234567","template":"t"}`,
		"{\"id\":\"\xff\",\"to\":\"+7\xfe900\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := job.Decode(data, opts)
		if err != nil {
			if j != nil {
				t.Fatalf("Decode returned a job and an error: %v", err)
			}
			var verr *job.ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("Decode error %T %v is not a *job.ValidationError matching ErrInvalid", err, err)
			}
			if len(verr.Fields) == 0 {
				t.Fatalf("ValidationError names no field: %q", data)
			}
			for _, fe := range verr.Fields {
				// Field may be "": the name of an unknown empty key.
				if fe.Reason == "" {
					t.Fatalf("field error without a reason: %+v", fe)
				}
			}
			return
		}
		if j == nil {
			t.Fatal("Decode returned neither a job nor an error")
		}
		enc, err := j.Encode()
		if err != nil {
			t.Fatalf("Encode of an accepted job: %v", err)
		}
		j2, err := job.Decode(enc, opts)
		if err != nil {
			t.Fatalf("Decode rejects the encoding of a job it accepted: %v\ninput:   %q\nencoded: %q", err, data, enc)
		}
		if diff := jobDiff(j, j2); diff != "" {
			t.Fatalf("Encode → Decode changed the job: %s\ninput: %q", diff, data)
		}
		enc2, err := j2.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if string(enc) != string(enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
		again := *j
		if err := again.Validate(opts); err != nil {
			t.Fatalf("Validate rejects a decoded job: %v\ninput: %q", err, data)
		}
		if diff := jobDiff(j, &again); diff != "" {
			t.Fatalf("Validate changed a decoded job: %s", diff)
		}
	})
}
