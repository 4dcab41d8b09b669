package importer

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress is told how far an import is. Run calls Start once, then Add from a single
// goroutine as rows are read, then Done once with the final summary, so an implementation
// needs no locking of its own.
type Progress interface {
	// Start begins the import of totalBytes bytes (-1 when unknown: standard input).
	Start(totalBytes int64)
	// Add reports rows and bytes read since the previous call.
	Add(rows, bytes int64)
	// Done ends the import.
	Done(Summary)
}

type nopProgress struct{}

func (nopProgress) Start(int64)      {}
func (nopProgress) Add(int64, int64) {}
func (nopProgress) Done(Summary)     {}

// PlainInterval is how often the plain progress writes a line.
const PlainInterval = 5 * time.Second

// NewProgress returns the progress display of `herald import` writing to w: a progress bar
// by bytes of the file with rate and ETA when w is a terminal, otherwise a plain line every
// PlainInterval (rows, percentage, rows per second, ETA) that reads well in a CI log.
func NewProgress(w io.Writer, isTerminal bool) Progress {
	if isTerminal {
		return &barProgress{w: w}
	}
	return &plainProgress{w: w, now: time.Now}
}

// barRefresh is how often the bar is redrawn. The bar's own throttle is off: it would drop
// the last frame of a cancelled import.
const barRefresh = 100 * time.Millisecond

// barProgress is a progress bar by bytes (the size is known without counting the rows
// first); the row count is in its description.
type barProgress struct {
	w      io.Writer
	bar    *progressbar.ProgressBar
	known  bool // the size is known: a bar by bytes, else a spinner counting rows
	rows   int64
	unseen int64 // bytes (rows for the spinner) not yet given to the bar
	drawn  time.Time
}

func (p *barProgress) Start(total int64) {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription("importing"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
	}
	p.known = total >= 0
	if p.known {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true))
	} else { // standard input: a spinner with the row count and rate
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
			progressbar.OptionSpinnerType(14))
	}
	p.bar = progressbar.NewOptions64(total, opts...)
}

func (p *barProgress) Add(rows, bytes int64) {
	p.rows += rows
	if p.known {
		p.unseen += bytes
	} else {
		p.unseen += rows
	}
	if now := time.Now(); now.Sub(p.drawn) >= barRefresh || (p.known && p.bar.State().CurrentNum+p.unseen >= p.bar.GetMax64()) {
		p.drawn = now
		p.draw()
	}
}

// draw brings the bar up to date; the last draw of a complete file finishes it.
func (p *barProgress) draw() {
	if p.known {
		p.bar.Describe(fmt.Sprintf("%d rows", p.rows))
	}
	_ = p.bar.Add64(p.unseen)
	p.unseen = 0
}

func (p *barProgress) Done(Summary) {
	if !p.bar.IsFinished() {
		p.draw()
	}
	switch {
	case p.bar.IsFinished():
	case p.known: // cancelled: keep the bar where it stopped
		_ = p.bar.Exit()
	default: // standard input: finishing also stops the spinner's goroutine
		_ = p.bar.Finish()
	}
}

// plainProgress writes a line every PlainInterval.
type plainProgress struct {
	w            io.Writer
	now          func() time.Time
	total        int64
	rows, bytes  int64
	start, shown time.Time
}

func (p *plainProgress) Start(total int64) {
	p.total = total
	p.start = p.now()
	p.shown = p.start
}

func (p *plainProgress) Add(rows, bytes int64) {
	p.rows += rows
	p.bytes += bytes
	now := p.now()
	if now.Sub(p.shown) < PlainInterval {
		return
	}
	p.shown = now
	el := now.Sub(p.start).Seconds()
	line := fmt.Sprintf("import: %d rows, %.0f rows/s", p.rows, float64(p.rows)/el)
	if p.total > 0 {
		pct := 100 * float64(p.bytes) / float64(p.total)
		line += fmt.Sprintf(", %.0f%% of %s", pct, humanBytes(p.total))
		if p.bytes > 0 && p.bytes < p.total {
			eta := time.Duration(float64(p.total-p.bytes) / (float64(p.bytes) / el) * float64(time.Second))
			line += ", eta " + eta.Round(time.Second).String()
		}
	}
	fmt.Fprintln(p.w, line)
}

func (p *plainProgress) Done(Summary) {}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
