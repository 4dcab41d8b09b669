package importer_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/importer"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
)

var jobOpts = job.Options{DefaultRegion: "RU", DefaultLanguage: "ru"}

// setup starts a nats-server with Herald's streams, as every Herald process creates them.
func setup(t *testing.T) jetstream.JetStream {
	t.Helper()
	n := testutil.StartNATS(t)
	_, js := n.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Options{}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	// No worker runs here; removing the workers' consumers lets storedJobs read the queue.
	for _, c := range []string{streams.ConsumerTransactional, streams.ConsumerBulk} {
		if err := js.DeleteConsumer(t.Context(), streams.JobsStream, c); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

// stored is one message of HERALD_JOBS.
type stored struct {
	subject string
	msgID   string
	header  map[string]string
	job     *job.Job
}

// storedJobs reads every message of HERALD_JOBS, keyed by Nats-Msg-Id; a second message with
// the same id fails the test.
func storedJobs(t *testing.T, js jetstream.JetStream) map[string]stored {
	return readStored(t, js, true)
}

// readStored is storedJobs, decoding the jobs only when decode is set (a big queue is read
// faster by ids alone).
func readStored(t *testing.T, js jetstream.JetStream, decode bool) map[string]stored {
	t.Helper()
	ctx := t.Context()
	s, err := js.Stream(ctx, streams.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]stored, info.State.Msgs)
	if info.State.Msgs == 0 {
		return out
	}
	// A work queue lets one consumer see a subject: setup removed the workers'. This one
	// never acks, so the jobs stay in the queue for the next look.
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour,
		MaxAckPending: -1, InactiveThreshold: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.DeleteConsumer(context.WithoutCancel(ctx), c.CachedInfo().Name) }()
	for uint64(len(out)) < info.State.Msgs {
		// Exactly what is left, so that Fetch returns as soon as it has them.
		batch, err := c.Fetch(int(min(info.State.Msgs-uint64(len(out)), 10000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var j *job.Job
			if decode {
				if j, err = job.Decode(m.Data(), jobOpts); err != nil {
					t.Fatalf("stored job does not decode: %v", err)
				}
			}
			// The Nats-Msg-Id is the job's ref, <tenant>/<id>: keyed here by the id.
			msgID := m.Headers().Get(streams.HeaderMsgID)
			_, id, ok := job.SplitRef(msgID)
			if !ok {
				t.Fatalf("Nats-Msg-Id %q is not a job ref", msgID)
			}
			if _, dup := out[id]; dup {
				t.Fatalf("job %s stored twice", id)
			}
			h := map[string]string{}
			for k := range m.Headers() {
				h[k] = m.Headers().Get(k)
			}
			out[id] = stored{subject: m.Subject(), msgID: msgID, header: h, job: j}
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
		if n == 0 {
			t.Fatalf("read %d of %d stored jobs", len(out), info.State.Msgs)
		}
	}
	return out
}

// storedCount is the number of messages in HERALD_JOBS.
func storedCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), streams.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunHappyPath(t *testing.T) {
	t.Parallel()
	type want struct {
		to      string
		params  map[string]string
		buttons map[string]string
	}
	for _, tc := range []struct {
		name, file, content string
		opts                importer.Options
		keys                []string // key value of each row, in the order of want
		want                []want
	}{
		{
			name: "csv", file: "base.csv",
			content: "phone,name,order_no,city\n" +
				"+79001234567,Анна,100,Москва\n" +
				"+7 (901) 234-56-78,\"Борис, мл.\",101,Казань\n",
			opts: importer.Options{Map: map[string]string{"name": "name", "order": "order_no"}},
			keys: []string{"+79001234567", "+79012345678"},
			want: []want{
				{"+79001234567", map[string]string{"name": "Анна", "order": "100"}, nil},
				{"+79012345678", map[string]string{"name": "Борис, мл.", "order": "101"}, nil},
			},
		},
		{
			name: "csv buttons", file: "orders.csv",
			content: "phone,order_no\n+79001234567,100\n+79012345678,101\n",
			opts:    importer.Options{Map: map[string]string{"order": "order_no"}, Buttons: map[string]string{"0": "order_no"}},
			keys:    []string{"+79001234567", "+79012345678"},
			want: []want{
				{"+79001234567", map[string]string{"order": "100"}, map[string]string{"0": "100"}},
				{"+79012345678", map[string]string{"order": "101"}, map[string]string{"0": "101"}},
			},
		},
		{
			// A spreadsheet in a Russian locale: byte order mark, ';' and national numbers,
			// which normalise to the same key as their international form.
			name: "csv semicolons bom national", file: "excel.csv",
			content: "\ufeffтелефон;имя\r\n8 900 123-45-67;Анна\r\n8 (901) 234 56 78;Борис\r\n",
			opts:    importer.Options{To: "телефон", Map: map[string]string{"1": "имя"}},
			keys:    []string{"+79001234567", "+79012345678"},
			want: []want{
				{"+79001234567", map[string]string{"1": "Анна"}, nil},
				{"+79012345678", map[string]string{"1": "Борис"}, nil},
			},
		},
		{
			name: "csv key column", file: "keyed.csv",
			content: "customer,phone,name\nc-1,+79001234567,Анна\nc-2,+79001234567,Анна\n",
			opts:    importer.Options{Key: "customer", Map: map[string]string{"name": "name"}},
			keys:    []string{"c-1", "c-2"},
			want: []want{
				{"+79001234567", map[string]string{"name": "Анна"}, nil},
				{"+79001234567", map[string]string{"name": "Анна"}, nil},
			},
		},
		{
			name: "jsonl", file: "base.jsonl",
			content: `{"phone":"+79001234567","name":"Анна","order":100,"extra":{"ignored":true}}` + "\n" +
				"\n" + // blank lines are skipped
				`{"phone":79012345678,"name":"Борис","order":"101"}` + "\r\n" +
				`{"phone":"+79023456789","name":"Вера","order":102.5}`, // no final newline
			opts: importer.Options{Map: map[string]string{"name": "name", "order": "order"}},
			keys: []string{"+79001234567", "+79012345678", "+79023456789"},
			want: []want{
				{"+79001234567", map[string]string{"name": "Анна", "order": "100"}, nil},
				{"+79012345678", map[string]string{"name": "Борис", "order": "101"}, nil},
				{"+79023456789", map[string]string{"name": "Вера", "order": "102.5"}, nil},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			js := setup(t)
			opts := tc.opts
			opts.File = writeFile(t, tc.file, tc.content)
			opts.Campaign, opts.Template, opts.Tenant, opts.Jobs = "spring-2026", "order_ready", "shop", jobOpts
			sum, err := importer.Run(t.Context(), js, opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			n := int64(len(tc.want))
			if sum.Rows != n || sum.Queued != n || sum.AlreadyQueued != 0 || sum.Rejected != 0 || sum.Unconfirmed != 0 || sum.RejectFile != "" {
				t.Fatalf("summary = %+v, want %d rows queued", sum, n)
			}
			if _, err := os.Stat(opts.File + ".rejects.csv"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a clean import left a reject file: %v", err)
			}
			got := storedJobs(t, js)
			if len(got) != len(tc.want) {
				t.Fatalf("stored %d jobs, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				id := importer.JobID("spring-2026", tc.keys[i])
				s, ok := got[id]
				if !ok {
					t.Fatalf("no job %s for row %d (stored: %v)", id, i, slices.Collect(maps.Keys(got)))
				}
				j := s.job
				if s.subject != streams.SubjectBulk || j.ID != id || j.To != w.to || j.Template != "order_ready" ||
					j.Language != "ru" || j.Priority != job.PriorityBulk || j.Campaign != "spring-2026" || j.Tenant != "shop" ||
					j.SendAt != nil || !maps.Equal(j.Params, w.params) || !maps.Equal(j.Buttons, w.buttons) {
					t.Fatalf("row %d stored on %s as %+v, want to %s params %v buttons %v", i, s.subject, j, w.to, w.params, w.buttons)
				}
			}
			// The same file again queues nobody: every row is already queued.
			again, err := importer.Run(t.Context(), js, opts)
			if err != nil {
				t.Fatal(err)
			}
			if again.Queued != 0 || again.AlreadyQueued != n {
				t.Fatalf("re-run summary = %+v, want all %d already queued", again, n)
			}
		})
	}
}

// readRejects returns the reject file's records, header included.
func readRejects(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRunRejects(t *testing.T) {
	t.Parallel()
	type reject struct {
		line   string
		reason []string // substrings of the reason
		row    []string // the original row after line and reason
	}
	for _, tc := range []struct {
		name, file, content string
		opts                importer.Options
		queued              int64
		header              []string
		rejects             []reject
	}{
		{
			name: "csv", file: "base.csv",
			content: "phone,name,order,send_at\n" +
				"+79001234567,Анна,100,\n" + // line 2: fine
				"12345,Борис,101,\n" + // line 3: bad phone
				"+79012345678,,102,\n" + // line 4: empty mapped column
				"+79023456789,Вера\n" + // line 5: short row
				"+79034567890,Глеб,103,tomorrow\n" + // line 6: bad send_at
				",Дина,104,\n" + // line 7: no phone at all
				"+79045678901,Ев\"гений,105,\n" + // line 8: bare quote
				"\"+79056789012\",\"Жанна\nиз Тулы\",106,\n" + // lines 9-10: fine, quoted newline
				"+79067890123,Зоя,107,\n", // line 11: fine
			opts:   importer.Options{Map: map[string]string{"name": "name", "order": "order"}},
			queued: 3,
			header: []string{"line", "reason", "phone", "name", "order", "send_at"},
			rejects: []reject{
				{"3", []string{"to: not a valid phone number"}, []string{"12345", "Борис", "101", ""}},
				{"4", []string{`params.name: column "name" is empty`}, []string{"'+79012345678", "", "102", ""}},
				{"5", []string{"row: has 2 fields, the header has 4"}, []string{"'+79023456789", "Вера"}},
				{"6", []string{"send_at: must be an RFC 3339 time", `"tomorrow"`}, []string{"'+79034567890", "Глеб", "103", "tomorrow"}},
				{"7", []string{"to: required"}, []string{"", "Дина", "104", ""}},
				{"8", []string{`row: bare " in non-quoted-field`}, nil},
			},
		},
		{
			name: "csv button column empty", file: "orders.csv",
			content: "phone,order\n+79001234567,100\n+79012345678,\n",
			opts:    importer.Options{Buttons: map[string]string{"0": "order"}},
			queued:  1,
			header:  []string{"line", "reason", "phone", "order"},
			rejects: []reject{
				{"3", []string{`buttons.0: column "order" is empty`}, []string{"'+79012345678", ""}},
			},
		},
		{
			name: "csv key column", file: "keyed.csv",
			content: "id,phone\n,+79001234567\nc-2,+79001234567\nc-3,bad\n",
			opts:    importer.Options{Key: "id"},
			queued:  1,
			header:  []string{"line", "reason", "id", "phone"},
			rejects: []reject{
				{"2", []string{`id: key column "id" is empty`}, []string{"", "'+79001234567"}},
				{"4", []string{"to: not a valid phone number"}, []string{"c-3", "bad"}},
			},
		},
		{
			// A spreadsheet opening the reject file must not run a cell as a formula.
			name: "csv formula cells are text in the reject file", file: "formulas.csv",
			content: "phone,name,note\n" +
				"12345,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"open\"\")\",x\n" + // line 2: bad phone
				"@SUM(A1),-2+3,+1\n" + // line 3
				"bad,\"\tcmd\",\"\rx\"\n" + // line 4: tab and carriage return
				"+79001234567,Анна,ok\n", // line 5: fine
			opts:   importer.Options{Map: map[string]string{"name": "name"}},
			queued: 1,
			header: []string{"line", "reason", "phone", "name", "note"},
			rejects: []reject{
				{"2", []string{"to: not a valid phone number"}, []string{"12345", `'=HYPERLINK("http://evil.example","open")`, "x"}},
				{"3", []string{"to:"}, []string{"'@SUM(A1)", "'-2+3", "'+1"}},
				{"4", []string{"to:"}, []string{"bad", "'\tcmd", "'\rx"}},
			},
		},
		{
			// A CSV row is bounded like a JSON Lines one; the rows after it are read.
			name: "csv row longer than MaxLineBytes", file: "long.csv",
			content: "phone,name\n" +
				"+79001234567,Анна\n" + // line 2
				"+79012345678," + strings.Repeat("x", 2*importer.MaxLineBytes) + "\n" + // line 3
				"+79023456789,Вера\n", // line 4
			opts:    importer.Options{Map: map[string]string{"name": "name"}},
			queued:  2,
			header:  []string{"line", "reason", "phone", "name"},
			rejects: []reject{{"3", []string{fmt.Sprintf("row: longer than %d bytes", importer.MaxLineBytes)}, []string{""}}},
		},
		{
			// A quote never closed would make the rest of the file one record: the record is
			// cut where it passes the bound, and reading resumes at the next line.
			name: "csv unclosed quote", file: "open.csv",
			content: "phone,name\n" +
				"+79001234567,\"open\n" + // line 2: the quote opens
				strings.Repeat("y", 800<<10) + "\n" + // line 3
				strings.Repeat("z", 800<<10) + "\n" + // line 4: the bound is crossed here
				"+79023456789,Вера\n", // line 5
			opts:    importer.Options{Map: map[string]string{"name": "name"}},
			queued:  1,
			header:  []string{"line", "reason", "phone", "name"},
			rejects: []reject{{"4", []string{fmt.Sprintf("row: longer than %d bytes", importer.MaxLineBytes)}, []string{""}}},
		},
		{
			name: "jsonl", file: "base.jsonl",
			content: `{"phone":"+79001234567","name":"Анна"}` + "\n" + // line 1: fine
				`{"phone":"+79012345678"}` + "\n" + // line 2: key missing
				"not json\n" + // line 3
				`{"phone":"+79023456789","name":{"first":"Вера"}}` + "\n" + // line 4: object value
				"\n" + // line 5: blank, skipped
				`{"phone":null,"name":"Глеб"}` + "\n" + // line 6: null phone
				`["+79034567890"]` + "\n" + // line 7: not an object
				`{"phone":"+79045678901","name":"Дина","send_at":"2026-13-01T00:00:00Z"}` + "\n", // line 8
			opts:   importer.Options{Map: map[string]string{"name": "name"}},
			queued: 1,
			header: []string{"line", "reason", "row"},
			rejects: []reject{
				{"2", []string{`params.name: column "name" is missing`}, []string{`{"phone":"+79012345678"}`}},
				{"3", []string{"row: not a JSON object"}, []string{"not json"}},
				{"4", []string{`params.name: column "name" must be a string or a number, not an object`}, nil},
				{"6", []string{"to: required"}, nil},
				{"7", []string{"row: not a JSON object"}, nil},
				{"8", []string{"send_at: must be an RFC 3339 time"}, nil},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			js := setup(t)
			opts := tc.opts
			opts.File = writeFile(t, tc.file, tc.content)
			opts.Campaign, opts.Template, opts.Jobs = "c1", "order_ready", jobOpts
			sum, err := importer.Run(t.Context(), js, opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			nrej := int64(len(tc.rejects))
			if sum.Queued != tc.queued || sum.Rejected != nrej || sum.Rows != tc.queued+nrej || sum.RejectFile != opts.File+".rejects.csv" {
				t.Fatalf("summary = %+v, want %d queued, %d rejected", sum, tc.queued, nrej)
			}
			if got := len(storedJobs(t, js)); got != int(tc.queued) {
				t.Fatalf("stored %d jobs, want %d", got, tc.queued)
			}
			recs := readRejects(t, sum.RejectFile)
			if !slices.Equal(recs[0], tc.header) {
				t.Fatalf("reject header = %q, want %q", recs[0], tc.header)
			}
			// Workers write rejects concurrently: match them by line.
			byLine := map[string][]string{}
			for _, r := range recs[1:] {
				byLine[r[0]] = r
			}
			if len(byLine) != len(tc.rejects) {
				t.Fatalf("reject file has lines %v, want %d rejects", slices.Sorted(maps.Keys(byLine)), len(tc.rejects))
			}
			for _, w := range tc.rejects {
				got, ok := byLine[w.line]
				if !ok {
					t.Fatalf("no reject for line %s: %q", w.line, recs)
				}
				for _, s := range w.reason {
					if !strings.Contains(got[1], s) {
						t.Errorf("line %s reason %q does not say %q", w.line, got[1], s)
					}
				}
				if w.row != nil && !slices.Equal(got[2:], w.row) {
					t.Errorf("line %s row = %q, want %q", w.line, got[2:], w.row)
				}
			}
		})
	}
}

// TestRejectFileNeverOverwritten: the reject file is created, never opened: an existing
// file, a symlink to someone else's file or a dangling symlink at its path stops the import
// before anything is published, names --rejects, and leaves what was there as it was.
func TestRejectFileNeverOverwritten(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// prepare puts something at the reject path; it returns the file whose content must
		// not change and that content ("" for none: it must not come to exist).
		prepare func(t *testing.T, rejects string) (string, string)
	}{
		{"existing reject file", func(t *testing.T, rejects string) (string, string) {
			if err := os.WriteFile(rejects, []byte("an earlier run's rejects\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return rejects, "an earlier run's rejects\n"
		}},
		{"symlink to another file", func(t *testing.T, rejects string) (string, string) {
			target := filepath.Join(t.TempDir(), "precious.txt")
			if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, rejects); err != nil {
				t.Fatal(err)
			}
			return target, "precious\n"
		}},
		{"dangling symlink", func(t *testing.T, rejects string) (string, string) {
			target := filepath.Join(t.TempDir(), "created-through-the-link")
			if err := os.Symlink(target, rejects); err != nil {
				t.Fatal(err)
			}
			return target, ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			js := setup(t)
			file := writeFile(t, "base.csv", "phone\n+79001234567\nbad\n")
			watched, before := tc.prepare(t, file+".rejects.csv")
			_, err := importer.Run(t.Context(), js, importer.Options{File: file, Campaign: "c1", Template: "order_ready", Jobs: jobOpts})
			if !errors.Is(err, importer.ErrUsage) || !strings.Contains(err.Error(), "--rejects") || !strings.Contains(err.Error(), "O_EXCL") {
				t.Fatalf("err = %v, want a usage error naming --rejects and O_EXCL", err)
			}
			got, rerr := os.ReadFile(watched)
			switch {
			case before == "" && !errors.Is(rerr, os.ErrNotExist):
				t.Errorf("%s was created through the link: %q, %v", watched, got, rerr)
			case before != "" && string(got) != before:
				t.Errorf("%s = %q, want it untouched (%q)", watched, got, before)
			}
			if n := storedCount(t, js); n != 0 {
				t.Errorf("%d jobs published before the reject file failed", n)
			}
		})
	}
}

// cancelAfter cancels the import once it has read at least rows rows.
type cancelAfter struct {
	rows   int64
	read   int64
	cancel context.CancelFunc
	total  int64
	done   bool
}

func (p *cancelAfter) Start(total int64) { p.total = total }
func (p *cancelAfter) Add(rows, _ int64) {
	p.read += rows
	if p.read >= p.rows {
		p.cancel()
	}
}
func (p *cancelAfter) Done(importer.Summary) { p.done = true }

// An import of 100,000 rows (resumeRows) interrupted half way (as by Ctrl-C) and run again queues every
// row exactly once, and the second run reports as already queued exactly what the first
// queued. HERALD_JOBS' duplicate window (one hour by default) spans both runs.
func TestRunResumeAfterCancel(t *testing.T) {
	t.Parallel()
	const rows = resumeRows
	js := setup(t)
	file := filepath.Join(t.TempDir(), "base.csv")
	if err := importer.WriteBenchCSV(file, rows); err != nil {
		t.Fatal(err)
	}
	opts := importer.Options{File: file, Campaign: "resume", Template: "order_ready", Jobs: jobOpts,
		Map: map[string]string{"name": "name", "order": "order"}}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := &cancelAfter{rows: rows / 2, cancel: cancel}
	first := opts
	first.Progress = p
	sum1, err := importer.Run(ctx, js, first)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
	}
	if !p.done || p.total <= 0 {
		t.Fatalf("progress not started with the file size or not done: %+v", p)
	}
	if sum1.Queued < rows/4 || sum1.Queued >= rows || sum1.AlreadyQueued != 0 || sum1.Unconfirmed != 0 || sum1.Rows != sum1.Queued {
		t.Fatalf("interrupted run summary = %+v", sum1)
	}
	// Every publish in flight at the cancel was waited for: what the summary says is queued
	// is exactly what the stream holds.
	if got := storedCount(t, js); got != uint64(sum1.Queued) {
		t.Fatalf("stream holds %d jobs, the interrupted run says %d queued", got, sum1.Queued)
	}

	sum2, err := importer.Run(t.Context(), js, opts)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if sum2.Rows != rows || sum2.AlreadyQueued != sum1.Queued || sum2.Queued != rows-sum1.Queued || sum2.Rejected != 0 {
		t.Fatalf("re-run summary = %+v after %+v", sum2, sum1)
	}
	got := readStored(t, js, false) // fails on any id stored twice
	if len(got) != rows {
		t.Fatalf("stream holds %d jobs, want %d", len(got), rows)
	}
	for i := range rows {
		phone := fmt.Sprintf("+7900%07d", i)
		if _, ok := got[importer.JobID("resume", phone)]; !ok {
			t.Fatalf("row %d (%s) not stored under its id", i, phone)
		}
	}
}

func TestRunSchedules(t *testing.T) {
	t.Parallel()
	msk := time.FixedZone("MSK", 3*3600)
	// An hour ahead of the real clock, so that the server does not fire a schedule while
	// the test reads it.
	batchAt := time.Now().Add(time.Hour).Truncate(time.Second).In(msk)
	rowAt := batchAt.Add(30 * time.Minute)
	past := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	content := "phone,send_at\n" +
		"+79001234567,\n" + // the batch's send_at
		"+79012345678," + rowAt.Format(time.RFC3339) + "\n" + // its own
		"+79023456789," + past.Format(time.RFC3339) + "\n" // in the past: queued at once
	js := setup(t)
	sum, err := importer.Run(t.Context(), js, importer.Options{File: writeFile(t, "s.csv", content), Campaign: "sched",
		Template: "reminder", SendAt: batchAt, Priority: job.PriorityTransactional, Jobs: jobOpts})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Queued != 3 {
		t.Fatalf("summary = %+v", sum)
	}
	got := storedJobs(t, js)
	for _, tc := range []struct {
		phone     string
		at        time.Time
		scheduled bool
	}{
		{"+79001234567", batchAt, true},
		{"+79012345678", rowAt, true},
		{"+79023456789", past, false},
	} {
		id := importer.JobID("sched", tc.phone)
		s, ok := got[id]
		if !ok {
			t.Fatalf("no job for %s", tc.phone)
		}
		if s.job.SendAt == nil || !s.job.SendAt.Equal(tc.at) {
			t.Errorf("%s: send_at = %v, want %v", tc.phone, s.job.SendAt, tc.at)
		}
		if !tc.scheduled {
			if s.subject != streams.SubjectTransactional || s.header[streams.HeaderSchedule] != "" {
				t.Errorf("%s: stored on %s with headers %v, want queued at once", tc.phone, s.subject, s.header)
			}
			continue
		}
		if s.subject != streams.DelayedSubject(s.msgID) ||
			s.header[streams.HeaderSchedule] != "@at "+tc.at.UTC().Format(time.RFC3339) ||
			s.header[streams.HeaderScheduleTarget] != streams.SubjectTransactional {
			t.Errorf("%s: stored on %s with headers %v, want a schedule at %s", tc.phone, s.subject, s.header, tc.at.UTC())
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	t.Parallel()
	js := setup(t)
	csvFile := writeFile(t, "base.csv", "phone,name\n+79001234567,Анна\n")
	for _, tc := range []struct {
		name string
		opts importer.Options
	}{
		{"no campaign", importer.Options{File: csvFile, Template: "t"}},
		{"no template", importer.Options{File: csvFile, Campaign: "c"}},
		{"unknown extension", importer.Options{File: writeFile(t, "base.txt", "x"), Campaign: "c", Template: "t"}},
		{"campaign not in the id alphabet", importer.Options{File: csvFile, Campaign: "весна 2026", Template: "t"}},
		{"template name", importer.Options{File: csvFile, Campaign: "c", Template: "Order Ready"}},
		{"bad param name", importer.Options{File: csvFile, Campaign: "c", Template: "t", Map: map[string]string{"Name": "name"}}},
		{"to column not in header", importer.Options{File: csvFile, Campaign: "c", Template: "t", To: "msisdn"}},
		{"mapped column not in header", importer.Options{File: csvFile, Campaign: "c", Template: "t", Map: map[string]string{"order": "order"}}},
		{"empty csv", importer.Options{File: writeFile(t, "empty.csv", ""), Campaign: "c", Template: "t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := importer.Run(t.Context(), js, tc.opts)
			if !errors.Is(err, importer.ErrUsage) {
				t.Fatalf("err = %v, want ErrUsage", err)
			}
		})
	}
	if got := len(storedJobs(t, js)); got != 0 {
		t.Fatalf("usage errors published %d jobs", got)
	}
}

// Without the streams every publish fails: the import stops with that error instead of
// hanging or calling the rows rejected.
func TestRunPublishError(t *testing.T) {
	t.Parallel()
	n := testutil.StartNATS(t)
	_, js := n.Connect(t)
	sum, err := importer.Run(t.Context(), js, importer.Options{File: writeFile(t, "base.csv", "phone\n+79001234567\n+79012345678\n"),
		Campaign: "c", Template: "t", Jobs: jobOpts})
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("err = %v, want the publish error (%v)", err, jetstream.ErrNoStreamResponse)
	}
	if sum.Queued != 0 || sum.Unconfirmed == 0 || sum.Rejected != 0 {
		t.Fatalf("summary = %+v", sum)
	}
}

// shutdownAfter shuts the server down once the import has read rows rows.
type shutdownAfter struct {
	rows, read int64
	n          *testutil.NATS
}

func (p *shutdownAfter) Start(int64) {}
func (p *shutdownAfter) Add(rows, _ int64) {
	if p.read < p.rows && p.read+rows >= p.rows {
		p.n.Shutdown()
	}
	p.read += rows
}
func (p *shutdownAfter) Done(importer.Summary) {}

// A server lost half way fails the import (nats.ErrDisconnected for the publishes in flight,
// or the write error of a publish) instead of waiting for acknowledgements that will never
// come while the client keeps trying to reconnect, and every row handled is accounted for.
func TestRunServerLost(t *testing.T) {
	t.Parallel()
	const rows = 20_000
	n := testutil.StartNATS(t)
	_, js := n.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "base.csv")
	if err := importer.WriteBenchCSV(file, rows); err != nil {
		t.Fatal(err)
	}
	sum, err := importer.Run(t.Context(), js, importer.Options{File: file, Campaign: "lost", Template: "order_ready",
		Jobs: jobOpts, DrainTimeout: 100 * time.Millisecond, Progress: &shutdownAfter{rows: rows / 2, n: n}})
	if err == nil || errors.Is(err, importer.ErrUsage) || errors.Is(err, context.Canceled) ||
		!strings.HasPrefix(err.Error(), "publish line ") {
		t.Fatalf("err = %v, want the publish error", err)
	}
	if sum.Unconfirmed == 0 || sum.Rows != sum.Queued+sum.Unconfirmed || sum.Rows >= rows || sum.Rejected != 0 {
		t.Fatalf("summary = %+v", sum)
	}
}

func TestJobID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		name, campaign, key string
		prefix              string
	}{
		{"plain", "spring-2026", "+79001234567", "cmp-spring-2026-"},
		{"odd characters", "весна 2026/A", "k", "cmp-" + strings.Repeat("-", len("весна")) + "-2026-A-"},
		{"long campaign", long, "k", "cmp-" + long[:99] + "-"},
		{"empty key", "c", "", "cmp-c-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := importer.JobID(tc.campaign, tc.key)
			if id != importer.JobID(tc.campaign, tc.key) {
				t.Fatal("not deterministic")
			}
			if !strings.HasPrefix(id, tc.prefix) || len(id) != len(tc.prefix)+24 || len(id) > job.MaxIDLen {
				t.Fatalf("JobID = %q, want %q + 24 hex digits", id, tc.prefix)
			}
			if err := (&job.Job{ID: id}).ValidateID(); err != nil {
				t.Fatalf("JobID %q is not a valid job id: %v", id, err)
			}
			for _, other := range []string{importer.JobID(tc.campaign, tc.key+"1"), importer.JobID(tc.campaign+"y", tc.key)} {
				if other == id {
					t.Fatalf("JobID %q does not depend on campaign and key", id)
				}
			}
		})
	}
	// The hash covers the whole campaign: two campaigns cut to the same prefix differ.
	if importer.JobID(long+"a", "k") == importer.JobID(long+"b", "k") {
		t.Fatal("campaigns differing after the cut share ids")
	}
	// The separator keeps campaign and key apart.
	if importer.JobID("ab", "c") == importer.JobID("a", "bc") {
		t.Fatal("campaign/key boundary is ambiguous")
	}
}
