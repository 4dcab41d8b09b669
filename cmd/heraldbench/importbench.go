package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/importer"
	"github.com/herald-notify/herald/internal/streams"
)

// importRound is one round of the import section (issue 6).
type importRound struct {
	raw, rows float64 // raw JetStream async publishes/s, imported rows/s
	rawIDs    float64 // raw with a Nats-Msg-Id on every message, as the import sends them
	peakHeap  uint64  // this process's peak Go heap during the import
	cliRows   float64 // `herald import` rows/s (0: not run)
	cliRSS    int64   // its peak RSS (VmHWM sampled while it runs), bytes
}

// cliState says whether `herald import` could be measured, and if not, why.
type cliState struct {
	ran    bool
	reason string
}

// runImportRound measures, on one nats-server process, the raw async publish rate
// (importer.RawRate) next to an in-process import of the same number of generated rows
// (importer.BenchImport, as importer.Bench runs it, with progress lines), and then
// `herald import` as a child process when the binary has that command.
func runImportRound(ctx context.Context, s *stack, rows int, csv string, round int, cli *cliState) (res importRound, err error) {
	label := fmt.Sprintf("import round %d", round)
	fmt.Fprintf(os.Stderr, "%s: raw JetStream async publish of %d messages\n", label, rows)
	if res.raw, err = importer.RawRate(ctx, s.js, rows); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "  raw: %.0f msgs/s\n", res.raw)

	fmt.Fprintf(os.Stderr, "%s: importing %d rows in process\n", label, rows)
	imp, err := importer.BenchImport(ctx, s.js, csv, "bench-"+strconv.Itoa(round)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36),
		rows, importer.NewProgress(os.Stderr, false))
	if err != nil {
		return res, err
	}
	res.rows, res.peakHeap = imp.RowsPerSec, imp.PeakHeapBytes
	fmt.Fprintf(os.Stderr, "  import: %.0f rows/s (%.2f of raw), peak heap %d MiB\n", res.rows, res.rows/res.raw, res.peakHeap>>20)
	if err := purgeBulk(ctx, s.js); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "%s: raw JetStream async publish of %d messages, each with a Nats-Msg-Id\n", label, rows)
	if res.rawIDs, err = importer.RawRateWithIDs(ctx, s.js, rows); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "  raw with ids: %.0f msgs/s\n", res.rawIDs)

	if cli.reason != "" {
		return res, nil
	}
	fmt.Fprintf(os.Stderr, "%s: herald import %s (child process)\n", label, filepath.Base(csv))
	p, err := s.env.Start("herald-import", s.bins.herald, []string{"import", csv, "--campaign", "cli-" + strconv.Itoa(round) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		// order_ready takes order, address and until, and a value for its URL button: the
		// import refuses up front a template whose parameters are not all mapped (issue 17),
		// so every one is mapped to a column of the generated CSV (phone, name, order).
		"--template", "order_ready", "--map", "order=order", "--map", "address=name", "--map", "until=order",
		"--button", "0=order", "--output", "json"},
		[]string{"HERALD_NATS_URL=" + s.nats.URL, "HERALD_REDIS_URL=" + s.redis.URL, "HERALD_LOG_FORMAT=text"})
	if err != nil {
		return res, err
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	// Peak RSS is the child's own VmHWM, sampled while it runs (it only grows). The exit
	// rusage cannot be used: a child started with vfork+exec inherits the parent's peak in
	// its maxrss, so it reported this benchmark process's size (110 MiB), not the import's.
	var peak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := p.PeakRSS(); err == nil {
				peak.Store(v)
			}
			select {
			case <-sampled:
				return
			case <-t.C:
			}
		}
	}()
	err = p.Wait(wctx)
	close(sampled)
	if err != nil {
		p.Kill()
		cli.reason = fmt.Sprintf("`herald import` failed: %v: %s", err, p.Tail(5))
		fmt.Fprintln(os.Stderr, "  "+cli.reason)
		return res, nil
	}
	el := time.Since(start)
	if q, err := cliQueued(p.LogPath); err != nil || q != int64(rows) {
		cli.reason = fmt.Sprintf("`herald import` queued %d of %d rows (%v): %s", q, rows, err, p.Tail(5))
		fmt.Fprintln(os.Stderr, "  "+cli.reason)
		return res, nil
	}
	rss := peak.Load()
	cli.ran = true
	res.cliRows, res.cliRSS = float64(rows)/el.Seconds(), rss
	fmt.Fprintf(os.Stderr, "  herald import: %.0f rows/s, peak RSS %d MiB\n", res.cliRows, rss>>20)
	return res, purgeBulk(ctx, s.js)
}

// cliQueued reads the queued count from the JSON summary `herald import --output json` prints
// last (its progress lines share the log).
func cliQueued(logPath string) (int64, error) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "{") {
			var sum importer.Summary
			if err := json.Unmarshal([]byte(l), &sum); err != nil {
				return 0, fmt.Errorf("summary: %w", err)
			}
			return sum.Queued, nil
		}
	}
	return 0, errors.New("no JSON summary in the output")
}

// probeImportCLI tells whether the herald binary has an import command.
func probeImportCLI(ctx context.Context, bin string) cliState {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "import", "-h")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return cliState{reason: "herald import -h: " + err.Error()}
	}
	if bytes.Contains(out.Bytes(), []byte("unknown command")) {
		return cliState{reason: "the herald binary has no import command yet (`herald import -h`: unknown command)"}
	}
	return cliState{}
}

// purgeBulk removes the jobs an import queued (nothing consumes them here).
func purgeBulk(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, streams.JobsStream)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(streams.SubjectBulk))
}
