package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// readBuffer is the read-ahead of the input.
const readBuffer = 256 << 10

// MaxLineBytes is the longest JSON Lines row accepted; a longer one is rejected (a job is at
// most job.MaxSize encoded, so a real row is far shorter).
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
	br := bufio.NewReaderSize(r, readBuffer)
	if opts.Format == FormatJSONL {
		return &jsonlSource{br: br}, nil
	}
	return newCSVSource(br, opts.Comma)
}

type csvSource struct {
	r   *csv.Reader
	hdr []string
}

func newCSVSource(br *bufio.Reader, comma rune) (*csvSource, error) {
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
	return &csvSource{r: r, hdr: hdr}, nil
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
	rec, err := s.r.Read()
	if err != nil {
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

// newRejectWriter creates (truncates) path at once, so that an unwritable place fails the
// import before anything is published rather than at the first bad row.
func newRejectWriter(path string, header []string) (*rejectWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("reject file: %w", err)
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
	rw.rec = append(rw.rec[:0], strconv.Itoa(r.line), reason)
	if r.raw != nil || r.fields == nil {
		rw.rec = append(rw.rec, string(r.raw))
	} else {
		rw.rec = append(rw.rec, r.fields...)
	}
	rw.n++
	if err := rw.w.Write(rw.rec); err != nil {
		return fmt.Errorf("write reject file %s: %w", rw.path, err)
	}
	return nil
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
