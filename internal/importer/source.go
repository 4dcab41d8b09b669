package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// readBuffer is the read-ahead of the input.
const readBuffer = 256 << 10

// MaxLineBytes is the longest row accepted, JSON Lines or CSV; a longer one is rejected (a
// job is at most job.MaxSize encoded, so a real row is far shorter). For CSV the bound
// holds to within the read-ahead (readBuffer): a quoted field that never closes cannot make
// one record hold the rest of the file in memory.
const MaxLineBytes = 1 << 20

// errMissing is wrapped when a row has no such column (a JSON Lines row without the key).
var errMissing = errors.New("missing")

// row is one record of the input as read, before it becomes a job.
type row struct {
	line   int      // line number in the file (1 is the CSV header)
	fields []string // CSV: the record
	raw    []byte   // JSON Lines: the line
	err    string   // set when the row cannot be read at all: the reject reason
}

// source yields the rows of the input.
type source interface {
	// next returns the next row; io.EOF at the end, any other error is fatal. A CSV row's
	// fields are appended to fields (one slice for a batch of rows), which is returned.
	next(fields []string) (row, []string, error)
	// columns is the CSV header; nil for JSON Lines, whose rows name their own keys.
	columns() []string
	// header is the reject file's header row.
	header() []string
}

func newSource(r io.Reader, opts Options) (source, error) {
	if opts.Format == FormatJSONL {
		return &jsonlSource{br: bufio.NewReaderSize(r, readBuffer)}, nil
	}
	return newCSVSource(r, opts.Comma)
}

type csvSource struct {
	r     *csv.Reader
	guard *rowGuard
	hdr   []string
}

func newCSVSource(in io.Reader, comma rune) (*csvSource, error) {
	// The guard sits below the read-ahead buffer, which encoding/csv then uses as it is.
	guard := &rowGuard{r: in}
	br := bufio.NewReaderSize(guard, readBuffer)
	if comma == 0 {
		comma = detectComma(br)
	}
	r := csv.NewReader(br)
	r.Comma = comma
	r.ReuseRecord = true // one record slice for the whole file; rows copy what they keep
	r.FieldsPerRecord = -1
	hdr, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: the file is empty: a CSV import needs a header row", ErrUsage)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header row: %w", ErrUsage, err)
	}
	hdr = slices.Clone(hdr)
	for i, h := range hdr {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // spreadsheets write a byte order mark
		}
		hdr[i] = strings.TrimSpace(h)
	}
	return &csvSource{r: r, guard: guard, hdr: hdr}, nil
}

// detectComma picks the separator that occurs most in the header line: spreadsheets in
// Russian locales export with ';'.
func detectComma(br *bufio.Reader) rune {
	head, _ := br.Peek(min(br.Size(), 64<<10))
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	comma, most := ',', bytes.Count(head, []byte{','})
	for _, c := range []rune{';', '\t'} {
		if n := bytes.Count(head, []byte{byte(c)}); n > most {
			comma, most = c, n
		}
	}
	return comma
}

func (s *csvSource) columns() []string { return s.hdr }

func (s *csvSource) header() []string { return append([]string{"line", "reason"}, s.hdr...) }

func (s *csvSource) next(fields []string) (row, []string, error) {
	s.guard.startRecord()
	rec, err := s.r.Read()
	if err != nil {
		var long *rowTooLongError
		if errors.As(err, &long) {
			// The overlong part is not kept: the reject names the line, not the data.
			return row{line: long.line, err: fmt.Sprintf("row: longer than %d bytes", MaxLineBytes)}, fields, nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// The reader resumes at the next line: one bad row is one reject.
			return row{line: pe.StartLine, fields: slices.Clone(rec), err: "row: " + pe.Err.Error()}, fields, nil
		}
		return row{}, fields, err
	}
	line, _ := s.r.FieldPos(0)
	n := len(fields)
	fields = append(fields, rec...)
	r := row{line: line, fields: fields[n:len(fields):len(fields)]}
	if len(rec) != len(s.hdr) {
		r.err = fmt.Sprintf("row: has %d fields, the header has %d", len(rec), len(s.hdr))
	}
	return r, fields, nil
}

// rowGuard bounds one CSV record to MaxLineBytes: encoding/csv has no limit of its own and
// keeps a whole record in memory, so one unclosed quote would make the rest of the file one
// record. It counts the bytes handed to the read-ahead buffer since startRecord; past the
// bound it skips the rest of the physical line and fails that read with a *rowTooLongError,
// which the CSV reader returns for the record; reading resumes at the next line.
type rowGuard struct {
	r       io.Reader
	n       int    // bytes handed out since startRecord
	lines   int    // newlines handed out in all
	pending []byte // what followed the newline that ended a skipped line
	scratch []byte
}

// rowTooLongError fails a CSV record longer than MaxLineBytes; line is the physical line the
// bound was crossed on.
type rowTooLongError struct{ line int }

func (e *rowTooLongError) Error() string {
	return fmt.Sprintf("line %d: row longer than %d bytes", e.line, MaxLineBytes)
}

func (g *rowGuard) startRecord() { g.n = 0 }

func (g *rowGuard) Read(p []byte) (int, error) {
	if g.n >= MaxLineBytes {
		// Only a record still unfinished asks for more: everything handed out before was
		// consumed up to this line, whose newline is not in the buffer yet.
		line := g.lines + 1
		if err := g.skipLine(); err != nil {
			return 0, err
		}
		g.n = 0
		return 0, &rowTooLongError{line: line}
	}
	p = p[:min(len(p), MaxLineBytes-g.n)]
	var n int
	var err error
	if len(g.pending) > 0 {
		n = copy(p, g.pending)
		g.pending = g.pending[n:]
	} else {
		n, err = g.r.Read(p)
	}
	g.n += n
	g.lines += bytes.Count(p[:n], []byte{'\n'})
	return n, err
}

// skipLine discards input up to and including the next newline; io.EOF ends the line too.
func (g *rowGuard) skipLine() error {
	if g.scratch == nil {
		g.scratch = make([]byte, 64<<10)
	}
	for {
		chunk := g.pending
		if len(chunk) == 0 {
			n, err := g.r.Read(g.scratch)
			chunk = g.scratch[:n]
			if n == 0 && err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			g.lines++
			g.pending = append([]byte(nil), chunk[i+1:]...)
			return nil
		}
		g.pending = nil
	}
}

type jsonlSource struct {
	br   *bufio.Reader
	line int
	buf  []byte
}

func (s *jsonlSource) columns() []string { return nil }

func (s *jsonlSource) header() []string { return []string{"line", "reason", "row"} }

func (s *jsonlSource) next(fields []string) (row, []string, error) {
	for {
		line, tooLong, err := s.readLine()
		if err != nil {
			return row{}, fields, err
		}
		s.line++
		if tooLong {
			return row{line: s.line, err: fmt.Sprintf("row: longer than %d bytes", MaxLineBytes)}, fields, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		return row{line: s.line, raw: bytes.Clone(line)}, fields, nil
	}
}

// readLine returns the next line without its end of line; tooLong when it exceeded
// MaxLineBytes (its bytes are skipped). The line is valid until the next call.
func (s *jsonlSource) readLine() (line []byte, tooLong bool, err error) {
	s.buf = s.buf[:0]
	read := false
	for {
		frag, err := s.br.ReadSlice('\n')
		read = read || len(frag) > 0
		if len(s.buf)+len(frag) <= MaxLineBytes+1 { // +1: the newline
			s.buf = append(s.buf, frag...)
		} else {
			tooLong = true
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if !read {
				return nil, false, io.EOF
			}
		case err != nil:
			return nil, false, err
		}
		return s.buf, tooLong, nil
	}
}

// jsonValue is a JSON value as a column's text: strings as they are, numbers and booleans
// as written (a phone number may well be a JSON number), null as empty.
func jsonValue(col string, v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", nil
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("column %q: %w", col, err)
		}
		return strings.TrimSpace(s), nil
	case 'n':
		return "", nil
	case '{', '[':
		return "", fmt.Errorf("column %q must be a string or a number, not an %s", col, map[byte]string{'{': "object", '[': "array"}[v[0]])
	}
	return string(v), nil
}

// rejectWriter writes rejected rows as CSV: line, reason, the original row. Workers share it.
type rejectWriter struct {
	mu   sync.Mutex
	path string
	f    *os.File
	bw   *bufio.Writer
	w    *csv.Writer
	n    int
	rec  []string
}

// rejectFlags create the reject file only if nothing is at its path: O_EXCL refuses an
// existing file or link (another user's symlink cannot make the import overwrite its target)
// and O_NOFOLLOW refuses a symbolic link at the last component even where O_EXCL would not.
const rejectFlags = os.O_WRONLY | os.O_CREATE | os.O_EXCL | oNoFollow

// newRejectWriter creates path at once, so that an unwritable place fails the import before
// anything is published rather than at the first bad row. It never opens an existing file or
// a link (rejectFlags); the file is readable by its owner only, since rows carry phone numbers.
func newRejectWriter(path string, header []string) (*rejectWriter, error) {
	f, err := os.OpenFile(path, rejectFlags, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%w: reject file %s already exists (it is opened with O_CREAT|O_EXCL|O_NOFOLLOW and never overwritten or followed): remove it or name another with --rejects", ErrUsage, path)
		}
		return nil, fmt.Errorf("reject file (--rejects): %w", err)
	}
	bw := bufio.NewWriter(f)
	w := csv.NewWriter(bw)
	if err := w.Write(header); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("reject file: %w", err)
	}
	return &rejectWriter{path: path, f: f, bw: bw, w: w}, nil
}

func (rw *rejectWriter) write(r *row, reason string) error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.rec = append(rw.rec[:0], strconv.Itoa(r.line), neutralize(reason))
	if r.raw != nil || r.fields == nil {
		rw.rec = append(rw.rec, neutralize(string(r.raw)))
	} else {
		for _, f := range r.fields {
			rw.rec = append(rw.rec, neutralize(f))
		}
	}
	rw.n++
	if err := rw.w.Write(rw.rec); err != nil {
		return fmt.Errorf("write reject file %s: %w", rw.path, err)
	}
	return nil
}

// neutralize keeps a cell of the reject file from being read as a formula by a spreadsheet
// (CSV injection: "=HYPERLINK(...)" opened in Excel or LibreOffice): a cell starting with
// = + - @, a tab or a carriage return gets a leading apostrophe, which spreadsheets take as
// "this is text". A phone number "+7..." is prefixed too: the reject file is for reading.
func neutralize(cell string) string {
	if cell == "" {
		return cell
	}
	switch cell[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + cell
	}
	return cell
}

// close flushes the file, and removes it when no row was rejected.
func (rw *rejectWriter) close() error {
	rw.w.Flush()
	err := rw.w.Error()
	if ferr := rw.bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := rw.f.Close(); err == nil {
		err = cerr
	}
	if rw.n == 0 {
		if rerr := os.Remove(rw.path); err == nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("reject file %s: %w", rw.path, err)
	}
	return nil
}
