// Package importer loads a campaign's customer base (CSV or JSON Lines) into JetStream as
// Herald jobs: the engine behind `herald import`.
//
// The file is streamed (memory stays flat whatever its size), every row becomes one bulk
// template job validated with the rules the producer, the API and the worker share, and the
// jobs are published asynchronously with many publishes in flight. Each job id is derived
// from the campaign and the row's key column (JobID), and the id travels as Nats-Msg-Id, so a
// re-run after a crash or Ctrl-C queues nobody twice: JetStream answers the rows it already
// has as duplicates, which the Summary counts as AlreadyQueued. This holds within the
// HERALD_JOBS duplicate window (streams.Options.DuplicateWindow, one hour by default), and the
// workers' idempotency claim stops any copy published after it.
//
// Rows that can never be sent (a bad phone number, an empty mapped column) are not fatal:
// they go to the reject file with their line number and the field-named reason, and the
// import goes on.
package importer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/streams"
)

// ErrUsage matches (errors.Is) every error about the options or the file's shape found
// before anything is published: a missing campaign or template, an unknown format, a column
// the CSV header lacks. The CLI reports it as a usage error.
var ErrUsage = errors.New("import usage")

// Formats of the input file.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// SendAtColumn is the optional column (CSV header or JSON key) holding a row's own send_at,
// an RFC 3339 time that overrides Options.SendAt for that row.
const SendAtColumn = "send_at"

// Defaults of Options.
const (
	DefaultInFlight     = 4000 // jetstream's own default cap of pending async publishes
	DefaultDrainTimeout = 10 * time.Second
	DefaultPriority     = job.PriorityBulk
	DefaultToColumn     = "phone"
)

// Options describe one import. Campaign and Template are required.
type Options struct {
	// File is the path of a .csv or .jsonl file, or "-" for standard input (Format needed).
	File string
	// Input, when set, is read instead of File, which then only gives the format and the
	// reject file's name (a reader the caller already has; tests).
	Input io.Reader
	// Format is FormatCSV or FormatJSONL; empty: from File's extension (.csv, .jsonl, .ndjson).
	Format string
	// Comma is the CSV separator; 0 detects it from the header line (',' ';' or tab, as
	// spreadsheets export them).
	Comma rune
	// Campaign names the campaign: it becomes job.Campaign and part of every job id.
	Campaign string
	// Template is the template name of every job.
	Template string
	// Language is the template language; empty: Jobs.DefaultLanguage (HERALD_DEFAULT_LANGUAGE).
	Language string
	// To is the column with the recipient's phone number (default "phone"), normalised to
	// E.164 by job validation with Jobs.DefaultRegion.
	To string
	// Key is the column whose value identifies the row for idempotency (default: To). When it
	// is the To column, the normalised number is the key, so "8 900 123-45-67" and
	// "+79001234567" are one recipient.
	Key string
	// Map maps template parameter names to columns ("order" -> "order_no").
	Map map[string]string
	// Buttons maps template button indexes to the columns holding their parameter (the
	// variable part of a URL button, a quick-reply payload): "0" -> "order_no".
	Buttons map[string]string
	// Priority is the job priority (default bulk).
	Priority string
	// Tenant is the tenant of every job (optional).
	Tenant string
	// SendAt, when not zero, schedules the whole batch (a send_at column overrides it per row).
	// A time not in the future queues the job at once, as the producer does.
	SendAt time.Time
	// RejectFile receives rejected rows as CSV: line, reason, then the original row. Default
	// <File>.rejects.csv ("import.rejects.csv" for standard input). It is removed at the end
	// when no row was rejected, so a stale one never outlives a clean re-run.
	RejectFile string
	// InFlight bounds the asynchronous publishes waiting for an acknowledgement (default
	// DefaultInFlight, at most 1<<20).
	InFlight int
	// Workers is how many goroutines validate, encode and publish rows (default GOMAXPROCS).
	Workers int
	// DrainTimeout bounds the wait for in-flight acknowledgements once ctx is cancelled
	// (default DefaultDrainTimeout); publishes still unacknowledged then count as Unconfirmed.
	DrainTimeout time.Duration
	// Register, when set, is called once the options, the file's header and the reject file
	// are checked and before the first row is published: the CLI records the campaign there
	// (under Tenant), so that a campaign its tenant may not have (too many campaigns) is
	// refused with nothing queued. Its error ends the import and is returned as it is.
	Register func(ctx context.Context) error
	// Catalogue, when set, is where the template is checked before anything is queued:
	// known to the tenant in the language, every parameter mapped, every mapping and button
	// in its place (the CLI sets it; nil checks nothing).
	Catalogue Catalogue
	// Progress is told how far the import is (nil: nothing is shown).
	Progress Progress
	// Jobs are the validation defaults (HERALD_DEFAULT_REGION, HERALD_DEFAULT_LANGUAGE).
	Jobs job.Options
	// Logger receives the start and the end of the import (nil: discarded). No phone number
	// is ever logged.
	Logger *slog.Logger
	// now is the clock deciding whether a send_at is in the future (tests).
	now func() time.Time
}

// Summary counts what an import did. Rows = Queued + AlreadyQueued + Rejected + Unconfirmed.
type Summary struct {
	// Rows read and handled.
	Rows int64 `json:"rows"`
	// Queued rows: a new job stored by JetStream.
	Queued int64 `json:"queued"`
	// AlreadyQueued rows: JetStream already had a job with this id (an earlier run, or an
	// earlier row with the same key).
	AlreadyQueued int64 `json:"already_queued"`
	// Rejected rows, written to RejectFile.
	Rejected int64 `json:"rejected"`
	// Unconfirmed rows were published but no acknowledgement came back (an error, or the
	// drain timeout after a cancel): they may or may not be queued; a re-run settles them.
	Unconfirmed int64 `json:"unconfirmed,omitempty"`
	// RejectFile is where the rejected rows are ("" when none was rejected).
	RejectFile string `json:"reject_file,omitempty"`
	// Elapsed is the import's wall time.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// String is the one-line summary the CLI prints.
func (s Summary) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Rows) / s.Elapsed.Seconds()
	}
	out := fmt.Sprintf("%d rows: %d queued, %d already queued, %d rejected", s.Rows, s.Queued, s.AlreadyQueued, s.Rejected)
	if s.Unconfirmed > 0 {
		out += fmt.Sprintf(", %d unconfirmed (re-run to settle them)", s.Unconfirmed)
	}
	out += fmt.Sprintf(" in %s (%.0f rows/s)", s.Elapsed.Round(time.Millisecond), rate)
	if s.RejectFile != "" {
		out += "; rejects in " + s.RejectFile
	}
	return out
}

// JobID returns the job id of the row whose key is key in campaign:
// "cmp-" + campaign + "-" + the first 24 hex digits of SHA-256(campaign + "\x00" + key).
// Characters of campaign outside the id alphabet become '-' and it is cut to 99 characters,
// so the id is always valid (at most 128 characters); the hash covers the whole campaign
// name, so a cut never makes two campaigns share ids. 96 bits of hash make a collision
// within even a billion rows vanishingly unlikely.
func JobID(campaign, key string) string {
	h := idHasher{prefix: idPrefix(campaign), campaign: campaign}
	return string(h.appendID(nil, key))
}

// idHexLen is how many hex digits of the hash end a job id.
const idHexLen = 24

// idPrefix is what every job id of campaign starts with: "cmp-" + the campaign as an id
// slug + "-".
func idPrefix(campaign string) string {
	const maxSlug = job.MaxIDLen - len("cmp-") - 1 - idHexLen
	b := make([]byte, 0, len("cmp-")+min(len(campaign), maxSlug)+1)
	b = append(b, "cmp-"...)
	for i := 0; i < len(campaign) && i < maxSlug; i++ {
		c := campaign[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
			b = append(b, c)
		default:
			b = append(b, '-')
		}
	}
	return string(append(b, '-'))
}

// idHasher computes the job ids of one campaign: the slug is made once, and the hash input
// is built in a buffer reused from row to row (one per goroutine).
type idHasher struct {
	prefix, campaign string
	buf              []byte
}

// appendID appends the id of the row whose key is key to b.
func (h *idHasher) appendID(b []byte, key string) []byte {
	h.buf = append(append(append(h.buf[:0], h.campaign...), 0), key...)
	sum := sha256.Sum256(h.buf)
	b = append(b, h.prefix...)
	return hex.AppendEncode(b, sum[:idHexLen/2])
}

// Run imports opts.File into JetStream through js (the HERALD_JOBS stream must exist) and
// returns what it did. Rejected rows are not errors. When ctx is cancelled it stops reading,
// waits (at most DrainTimeout) for the acknowledgements in flight and returns the summary so
// far with ctx.Err(); re-running the same import then queues only the rest. A publish error
// stops the import the same way and is returned; so does a lost connection, which fails the
// publishes in flight with nats.ErrDisconnected.
func Run(ctx context.Context, js jetstream.JetStream, opts Options) (Summary, error) {
	start := time.Now()
	if err := opts.setDefaults(); err != nil {
		return Summary{}, err
	}
	in, total, closeIn, err := opts.open()
	if err != nil {
		return Summary{}, err
	}
	defer closeIn()
	counted := &countingReader{r: in}
	src, err := newSource(counted, opts)
	if err != nil {
		return Summary{}, err
	}
	im, err := newImporter(src, opts)
	if err != nil {
		return Summary{}, err
	}
	if err := opts.checkTemplate(ctx, placeholders(opts.Map), placeholders(opts.Buttons)); err != nil {
		return Summary{}, err
	}
	rej, err := newRejectWriter(opts.RejectFile, src.header())
	if err != nil {
		return Summary{}, err
	}
	if opts.Register != nil {
		if err := opts.Register(ctx); err != nil {
			_ = rej.close() // nothing rejected: the empty reject file goes
			return Summary{}, err
		}
	}
	opts.Logger.InfoContext(ctx, "import started", "file", opts.File, "format", opts.Format, "campaign", opts.Campaign,
		"template", opts.Template, "bytes", total)
	opts.Progress.Start(total)

	sum, runErr := im.run(ctx, js.Conn(), src, counted, rej)
	sum.Elapsed = time.Since(start)
	if err := rej.close(); err != nil && runErr == nil {
		runErr = err
	}
	if sum.Rejected > 0 {
		sum.RejectFile = opts.RejectFile
	}
	opts.Progress.Done(sum)
	opts.Logger.InfoContext(ctx, "import finished", "rows", sum.Rows, "queued", sum.Queued, "already_queued", sum.AlreadyQueued,
		"rejected", sum.Rejected, "unconfirmed", sum.Unconfirmed, "elapsed", sum.Elapsed, "error", runErr)
	return sum, runErr
}

func (o *Options) setDefaults() error {
	if o.Format == "" {
		switch strings.ToLower(filepath.Ext(o.File)) {
		case ".csv":
			o.Format = FormatCSV
		case ".jsonl", ".ndjson":
			o.Format = FormatJSONL
		}
	}
	switch {
	case o.File == "" && o.Input == nil:
		return fmt.Errorf("%w: no file to import", ErrUsage)
	case o.Format != FormatCSV && o.Format != FormatJSONL:
		return fmt.Errorf("%w: format %q: give a .csv or .jsonl file or --format csv|jsonl", ErrUsage, o.Format)
	case o.Campaign == "":
		return fmt.Errorf("%w: --campaign is required", ErrUsage)
	case o.Template == "":
		return fmt.Errorf("%w: --template is required", ErrUsage)
	}
	if o.To == "" {
		o.To = DefaultToColumn
	}
	if o.Key == "" {
		o.Key = o.To
	}
	if o.Priority == "" {
		o.Priority = DefaultPriority
	}
	if o.RejectFile == "" {
		if o.File == "" || o.File == "-" {
			o.RejectFile = "import.rejects.csv"
		} else {
			o.RejectFile = o.File + ".rejects.csv"
		}
	}
	if o.InFlight <= 0 {
		o.InFlight = DefaultInFlight
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	// A job built from the options alone must be valid, or every row would be rejected for
	// the same reason: report it once, as a usage error.
	probe := job.Job{ID: JobID(o.Campaign, "probe"), To: "+79001234567", Template: o.Template, Language: o.Language,
		Priority: o.Priority, Campaign: o.Campaign, Tenant: o.Tenant}
	var err error
	if probe.Params, err = probeValues(o.Map, "--map"); err != nil {
		return err
	}
	if probe.Buttons, err = probeValues(o.Buttons, "--button"); err != nil {
		return err
	}
	if err := probe.Validate(o.Jobs); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return nil
}

// probeValues stands a placeholder value in for each mapped column (nil for no mapping), or
// names the flag whose mapping has no column.
func probeValues(m map[string]string, flag string) (map[string]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	for k, col := range m {
		if col == "" {
			return nil, fmt.Errorf("%w: %s %s= names no column", ErrUsage, flag, k)
		}
		out[k] = "x"
	}
	return out, nil
}

// placeholders stands "x" in for each mapped column's value.
func placeholders(m map[string]string) map[string]string {
	out, _ := probeValues(m, "") // setDefaults has refused a mapping without its column
	return out
}

// open returns the input, its size (-1 when unknown) and how to close it.
func (o *Options) open() (io.Reader, int64, func(), error) {
	if o.Input != nil {
		return o.Input, -1, func() {}, nil
	}
	if o.File == "-" {
		return os.Stdin, -1, func() {}, nil
	}
	f, err := os.Open(o.File)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("open import file: %w", err)
	}
	total := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		total = st.Size()
	}
	return f, total, func() { _ = f.Close() }, nil
}

// countingReader counts the bytes read from the input, for progress by bytes.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// param is one --map entry resolved against the file's columns.
type param struct {
	name, column string
	index        int // CSV column index
}

// importer turns rows into jobs; it holds no per-import state beyond its configuration.
type importer struct {
	opts        Options
	params      []param // sorted by name, so that reasons list fields in a stable order
	buttons     []param // button index -> column, sorted by index
	keyIsTo     bool
	to, key     int // CSV column indexes
	sendAt      int // CSV column index, -1 when the file has none
	ncols       int // CSV columns (0 for JSON Lines)
	defaultSend *time.Time
	idPrefix    string
	// placeholder stands for the id while the job is validated when the key is the
	// normalised number: valid, and as long as every id of the campaign.
	placeholder string
}

func newImporter(src source, opts Options) (*importer, error) {
	im := &importer{opts: opts, keyIsTo: opts.Key == opts.To, to: -1, key: -1, sendAt: -1, idPrefix: idPrefix(opts.Campaign)}
	im.placeholder = im.idPrefix + strings.Repeat("0", idHexLen)
	for name, col := range opts.Map {
		im.params = append(im.params, param{name: name, column: col, index: -1})
	}
	slices.SortFunc(im.params, func(a, b param) int { return strings.Compare(a.name, b.name) })
	for index, col := range opts.Buttons {
		im.buttons = append(im.buttons, param{name: index, column: col, index: -1})
	}
	slices.SortFunc(im.buttons, func(a, b param) int { return strings.Compare(a.name, b.name) })
	if !opts.SendAt.IsZero() {
		t := opts.SendAt
		im.defaultSend = &t
	}
	cols := src.columns()
	if cols == nil { // JSON Lines: no header, a missing key is a row's problem
		return im, nil
	}
	im.ncols = len(cols)
	idx := func(col string) (int, error) {
		for i, c := range cols {
			if c == col {
				return i, nil
			}
		}
		return -1, fmt.Errorf("%w: column %q is not in the header (%s)", ErrUsage, col, strings.Join(cols, ", "))
	}
	var err error
	if im.to, err = idx(opts.To); err != nil {
		return nil, err
	}
	if im.key, err = idx(opts.Key); err != nil {
		return nil, err
	}
	for _, ps := range [][]param{im.params, im.buttons} {
		for i := range ps {
			if ps[i].index, err = idx(ps[i].column); err != nil {
				return nil, err
			}
		}
	}
	im.sendAt, _ = idx(SendAtColumn)
	return im, nil
}

type counters struct {
	rows, queued, dup, rejected, unconfirmed atomic.Int64
}

// batchSize rows travel together from the reader to a worker, to keep channel traffic low.
const batchSize = 256

// batch is rows read together; the CSV records' fields share one slice.
type batch struct {
	rows   []row
	fields []string
}

// run is the pipeline: this goroutine reads batches of rows, Workers goroutines turn them
// into jobs and publish them asynchronously, and the acknowledgements are counted as they
// arrive. At most InFlight publishes are unacknowledged and the rows channel bounds what is
// read ahead, so memory is flat in the file size.
func (im *importer) run(parent context.Context, nc *nats.Conn, src source, counted *countingReader, rej *rejectWriter) (Summary, error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var c counters
	pub, err := newPublisher(nc, im.opts.InFlight, &c, cancel)
	if err != nil {
		return Summary{}, err
	}
	batches := make(chan *batch, im.opts.Workers*2)
	var workers sync.WaitGroup
	for range im.opts.Workers {
		workers.Go(func() { im.work(ctx, pub, batches, rej, &c, cancel) })
	}

	readErr := im.read(ctx, src, counted, batches)
	close(batches)
	workers.Wait()
	pub.drain(ctx, im.opts.DrainTimeout)

	sum := Summary{Rows: c.rows.Load(), Queued: c.queued.Load(), AlreadyQueued: c.dup.Load(),
		Rejected: c.rejected.Load(), Unconfirmed: c.unconfirmed.Load()}
	switch {
	case parent.Err() != nil:
		return sum, parent.Err()
	case context.Cause(ctx) != nil:
		return sum, context.Cause(ctx)
	case readErr != nil:
		return sum, readErr
	}
	return sum, nil
}

// read feeds batches of rows to the workers and reports progress, until the input ends or
// ctx is done.
func (im *importer) read(ctx context.Context, src source, counted *countingReader, out chan<- *batch) error {
	var lastBytes int64
	for {
		b := &batch{rows: make([]row, 0, batchSize), fields: make([]string, 0, batchSize*im.ncols)}
		var err error
		for len(b.rows) < batchSize {
			var r row
			if r, b.fields, err = src.next(b.fields); err != nil {
				break
			}
			b.rows = append(b.rows, r)
		}
		if len(b.rows) > 0 {
			select {
			case out <- b:
			case <-ctx.Done():
				return nil
			}
			n := counted.n.Load()
			im.opts.Progress.Add(int64(len(b.rows)), n-lastBytes)
			lastBytes = n
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", im.opts.File, err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// work turns rows into jobs and publishes them. Once ctx is done it only drains the rows
// channel, so that the reader is never left blocked.
func (im *importer) work(ctx context.Context, pub *publisher, in <-chan *batch, rej *rejectWriter, c *counters,
	cancel context.CancelCauseFunc) {
	b := im.newBuilder()
	var stall *time.Timer
	var rows, rejected int64
	defer func() {
		c.rows.Add(rows)
		c.rejected.Add(rejected)
	}()
	for batch := range in {
		for i := range batch.rows {
			if ctx.Err() != nil {
				break
			}
			r := &batch.rows[i]
			out, reason := b.message(r)
			if reason != "" {
				if err := rej.write(r, reason); err != nil {
					cancel(err)
					break
				}
				rows++
				rejected++
				continue
			}
			s, slot, err := pub.acquire(ctx, &stall)
			if err != nil {
				if ctx.Err() != nil {
					break // the row is not handled: a re-run imports it
				}
				rows++
				c.unconfirmed.Add(1)
				cancel(fmt.Errorf("publish line %d: %w", r.line, err))
				break
			}
			rows++
			if err := pub.publish(s, slot, r.line, out.fill); err != nil {
				cancel(fmt.Errorf("publish line %d: %w", r.line, err))
				break
			}
		}
	}
}

// builder turns rows into jobs for one worker, reusing its job, parameter map and buffers
// from row to row.
type builder struct {
	im     *importer
	job    job.Job
	params map[string]string
	btns   map[string]string
	ids    idHasher
	idBuf  []byte
	obj    map[string]json.RawMessage // the JSON Lines row
}

func (im *importer) newBuilder() *builder {
	b := &builder{im: im, ids: idHasher{prefix: im.idPrefix, campaign: im.opts.Campaign}}
	if len(im.params) > 0 {
		b.params = make(map[string]string, len(im.params))
	}
	if len(im.buttons) > 0 {
		b.btns = make(map[string]string, len(im.buttons))
	}
	return b
}

// mapped reads the columns ps map into dst (a template's parameters or button parameters),
// appending to bad a field error named prefix+name for each missing or empty one.
func (b *builder) mapped(r *row, ps []param, dst map[string]string, prefix string, bad []job.FieldError) []job.FieldError {
	for _, p := range ps {
		v, err := b.get(r, p.column, p.index)
		if err == nil && v == "" {
			err = fmt.Errorf("column %q is empty", p.column)
		}
		if err != nil {
			bad = append(bad, job.FieldError{Field: prefix + p.name, Reason: err.Error()})
			continue
		}
		dst[p.name] = v
	}
	return bad
}

// outMsg is a row's job as published.
type outMsg struct {
	subject, id string
	data        []byte
	at          string // the schedule time, "" to queue at once
	target      string // the schedule's target subject
}

// fill sets m (a publisher slot's message, reused) to o.
func (o *outMsg) fill(m *nats.Msg) {
	m.Subject, m.Data = o.subject, o.data
	h := m.Header
	if ids := h[streams.HeaderMsgID]; len(ids) == 1 {
		ids[0] = o.id
	} else {
		h[streams.HeaderMsgID] = []string{o.id}
	}
	if o.at == "" {
		if len(h) > 1 {
			delete(h, streams.HeaderSchedule)
			delete(h, streams.HeaderScheduleTarget)
		}
		return
	}
	h[streams.HeaderSchedule] = []string{"@at " + o.at}
	h[streams.HeaderScheduleTarget] = []string{o.target}
}

// get reads column col (index idx in a CSV record, where a negative index is a column the
// file does not have) of r.
func (b *builder) get(r *row, col string, idx int) (string, error) {
	if r.raw == nil {
		if idx < 0 {
			return "", fmt.Errorf("column %q is %w", col, errMissing)
		}
		return strings.TrimSpace(r.fields[idx]), nil
	}
	v, ok := b.obj[col]
	if !ok {
		return "", fmt.Errorf("column %q is %w", col, errMissing)
	}
	return jsonValue(col, v)
}

// message builds the JetStream message of a row's job, or returns why the row is rejected.
// Subject and headers are the producer's (producer.Producer.message, unexported there): the
// priority's subject with Nats-Msg-Id = job id, or for a send_at in the future a message
// schedule on herald.delayed.<id> targeting that subject. Unlike the producer no trace
// context is injected: a million jobs would otherwise all hang off the import's one trace.
func (b *builder) message(r *row) (outMsg, string) {
	im := b.im
	if r.err != "" {
		return outMsg{}, r.err
	}
	if r.raw != nil {
		clear(b.obj)
		if err := json.Unmarshal(r.raw, &b.obj); err != nil || b.obj == nil {
			reason := "row: not a JSON object"
			if err != nil {
				reason += ": " + strings.TrimPrefix(err.Error(), "json: ")
			}
			return outMsg{}, reason
		}
	}
	var bad []job.FieldError
	to, err := b.get(r, im.opts.To, im.to)
	if err != nil {
		bad = append(bad, job.FieldError{Field: "to", Reason: err.Error()})
	}
	id := im.placeholder
	if !im.keyIsTo {
		key, err := b.get(r, im.opts.Key, im.key)
		if err == nil && key == "" {
			err = fmt.Errorf("key column %q is empty", im.opts.Key)
		}
		if err != nil {
			bad = append(bad, job.FieldError{Field: "id", Reason: err.Error()})
		}
		b.idBuf = b.ids.appendID(b.idBuf[:0], key)
		id = string(b.idBuf)
	}
	b.job = job.Job{ID: id, To: to, Template: im.opts.Template, Language: im.opts.Language,
		Priority: im.opts.Priority, Campaign: im.opts.Campaign, Tenant: im.opts.Tenant, SendAt: im.defaultSend}
	j := &b.job
	if len(im.params) > 0 {
		clear(b.params)
		j.Params = b.params
		bad = b.mapped(r, im.params, b.params, "params.", bad)
	}
	if len(im.buttons) > 0 {
		clear(b.btns)
		j.Buttons = b.btns
		bad = b.mapped(r, im.buttons, b.btns, "buttons.", bad)
	}
	if r.raw != nil || im.sendAt >= 0 { // a CSV without the column has no send_at to read
		if s, err := b.get(r, SendAtColumn, im.sendAt); err == nil && s != "" {
			t, perr := time.Parse(time.RFC3339, strings.TrimSpace(s))
			if perr != nil {
				bad = append(bad, job.FieldError{Field: "send_at", Reason: fmt.Sprintf("must be an RFC 3339 time such as 2026-11-25T09:00:00+03:00, got %q", s)})
			} else {
				j.SendAt = &t
			}
		} else if err != nil && !errors.Is(err, errMissing) {
			bad = append(bad, job.FieldError{Field: "send_at", Reason: err.Error()})
		}
	}
	data, err := j.ValidateEncode(im.opts.Jobs)
	var verr *job.ValidationError
	if errors.As(err, &verr) {
		for _, f := range verr.Fields {
			if !slices.ContainsFunc(bad, func(b job.FieldError) bool { return b.Field == f.Field }) {
				bad = append(bad, f)
			}
		}
	} else if err != nil {
		bad = append(bad, job.FieldError{Field: "$", Reason: err.Error()})
	}
	if len(bad) > 0 {
		slices.SortStableFunc(bad, func(a, b job.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return outMsg{}, (&job.ValidationError{Fields: bad}).Error()
	}
	if im.keyIsTo {
		// The key is the normalised number, known only after validation. The id has the
		// same length whatever the key and is the first field of the encoding, so it is
		// replaced in place rather than by encoding the job a second time.
		const head = `{"id":"`
		b.idBuf = b.ids.appendID(b.idBuf[:0], j.To)
		if end := len(head) + len(id); len(b.idBuf) == len(id) && len(data) > end &&
			string(data[:len(head)]) == head && string(data[len(head):end]) == id && data[end] == '"' {
			copy(data[len(head):], b.idBuf)
			j.ID = string(b.idBuf)
		} else {
			j.ID = string(b.idBuf)
			if data, err = j.Encode(); err != nil {
				return outMsg{}, "$: " + err.Error()
			}
		}
	}
	out := outMsg{subject: streams.SubjectFor(j.Priority), id: j.Ref(), data: data}
	if j.SendAt != nil && j.SendAt.After(im.opts.now()) {
		out.target = out.subject
		out.subject = streams.DelayedSubject(j.Ref())
		out.at = j.SendAt.UTC().Format(time.RFC3339)
	}
	return out, ""
}
