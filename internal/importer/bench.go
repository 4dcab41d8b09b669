package importer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/streams"
)

// BenchResult is what Bench measured.
type BenchResult struct {
	Rows       int           `json:"rows"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	RowsPerSec float64       `json:"rows_per_sec"`
	// PeakHeapBytes is the largest Go heap (live and not yet collected objects) sampled during
	// the import: the whole process's, so an in-process nats-server is included.
	PeakHeapBytes uint64  `json:"peak_heap_bytes"`
	Summary       Summary `json:"summary"`
}

// Bench measures Run on rows generated rows: it writes them as a CSV (phone, name, order) to
// a temporary file, ensures the streams, imports the file as a fresh campaign with two mapped
// parameters, and purges the bulk jobs it queued. Run it against a server of its own: the
// purge and the queued jobs would disturb a live deployment.
func Bench(ctx context.Context, js jetstream.JetStream, rows int) (BenchResult, error) {
	dir, err := os.MkdirTemp("", "herald-import-bench-")
	if err != nil {
		return BenchResult{}, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "customers.csv")
	if err := WriteBenchCSV(file, rows); err != nil {
		return BenchResult{}, err
	}
	if err := streams.Ensure(ctx, js, streams.Options{}); err != nil {
		return BenchResult{}, err
	}
	res, err := BenchImport(ctx, js, file, "bench-"+strconv.FormatInt(time.Now().UnixNano(), 36), rows, nil)
	if err != nil {
		return BenchResult{}, err
	}
	if st, err := js.Stream(ctx, streams.JobsStream); err == nil {
		_ = st.Purge(ctx, jetstream.WithPurgeSubject(streams.SubjectBulk))
	}
	return res, nil
}

// BenchImport imports file, a CSV of rows rows written by [WriteBenchCSV], as campaign with
// the sample template order_ready and its two parameters mapped, telling progress (nil:
// nothing) how far it is, and measures the time and the peak Go heap. It fails unless every
// row was queued; the queued jobs stay in the stream (Bench purges them). cmd/heraldbench
// measures its import rounds with it, so that both report the same figure.
func BenchImport(ctx context.Context, js jetstream.JetStream, file, campaign string, rows int, progress Progress) (BenchResult, error) {
	peak, stop := sampleHeap()
	start := time.Now()
	sum, err := Run(ctx, js, Options{
		File: file, Campaign: campaign, Template: "order_ready",
		Map: map[string]string{"name": "name", "order": "order"}, Progress: progress,
	})
	el := time.Since(start)
	stop()
	if err != nil {
		return BenchResult{}, err
	}
	if sum.Queued != int64(rows) {
		return BenchResult{}, fmt.Errorf("bench import queued %d of %d rows: %s", sum.Queued, rows, sum)
	}
	return BenchResult{Rows: rows, Elapsed: el, RowsPerSec: float64(rows) / el.Seconds(), PeakHeapBytes: peak(), Summary: sum}, nil
}

// WriteBenchCSV writes rows generated customers (distinct valid Russian mobile numbers) to
// path as CSV with the header phone,name,order.
func WriteBenchCSV(path string, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, _ = w.WriteString("phone,name,order\n")
	buf := make([]byte, 0, 64)
	for i := range rows {
		buf = append(buf[:0], "+7900"...)
		buf = appendPadded(buf, i, 7)
		buf = append(buf, ",Customer "...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, ',')
		buf = appendPadded(buf, 1_000_000+i, 8)
		buf = append(buf, '\n')
		_, _ = w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func appendPadded(b []byte, n, width int) []byte {
	s := strconv.Itoa(n)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// RawRate measures JetStream alone the way Bench measures the importer: n asynchronous
// publishes of a job-sized message (no Nats-Msg-Id) to a work-queue file stream configured
// like HERALD_JOBS, at most DefaultInFlight unacknowledged, until every acknowledgement is
// back. The stream is deleted afterwards.
func RawRate(ctx context.Context, js jetstream.JetStream, n int) (float64, error) {
	return rawRate(ctx, js, n, false)
}

// RawRateWithIDs is RawRate with a distinct Nats-Msg-Id on every message, as the importer
// sends them (the id makes a re-run a duplicate): the server's duplicate tracking is part
// of the work, so this is JetStream doing exactly what an import asks of it.
func RawRateWithIDs(ctx context.Context, js jetstream.JetStream, n int) (float64, error) {
	return rawRate(ctx, js, n, true)
}

func rawRate(ctx context.Context, js jetstream.JetStream, n int, ids bool) (float64, error) {
	cfg := streams.JobsConfig(streams.Options{})
	cfg.Name, cfg.Subjects = "HERALD_IMPORT_RAW", []string{"herald.import.raw"}
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), cfg.Name) }()
	payload := []byte(`{"id":"cmp-bench-0123456789abcdef01234567","to":"+79000000000","template":"order_ready","language":"ru",` +
		`"params":{"name":"Customer 100000","order":"01100000"},"priority":"bulk","campaign":"bench"}`)
	acks := make(chan jetstream.PubAckFuture, DefaultInFlight)
	var wg sync.WaitGroup
	var ackErr error
	wg.Go(func() {
		for f := range acks {
			select {
			case ack := <-f.Ok():
				// A duplicate would be a message the server did not store: not a fair count.
				if ack.Duplicate && ackErr == nil {
					ackErr = fmt.Errorf("message %d acknowledged as a duplicate", ack.Sequence)
				}
			case err := <-f.Err():
				if ackErr == nil {
					ackErr = err
				}
			}
		}
	})
	stall := jetstream.WithStallWait(time.Minute)
	start := time.Now()
	var err error
	for i := range n {
		m := &nats.Msg{Subject: cfg.Subjects[0], Data: payload}
		if ids {
			m.Header = nats.Header{jetstream.MsgIDHeader: {"cmp-bench-raw-" + strconv.Itoa(i)}}
		}
		var f jetstream.PubAckFuture
		if f, err = js.PublishMsgAsync(m, stall); err != nil {
			break
		}
		acks <- f
	}
	close(acks)
	wg.Wait()
	el := time.Since(start)
	if err == nil {
		err = ackErr
	}
	if err != nil {
		return 0, fmt.Errorf("raw publish: %w", err)
	}
	return float64(n) / el.Seconds(), nil
}

// sampleHeap samples the Go heap every 20 ms until stop; peak returns the largest sample.
func sampleHeap() (peak func() uint64, stop func()) {
	const name = "/memory/classes/heap/objects:bytes"
	var top uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: name}}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > top {
				top = v
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 { return top }, func() { close(done); wg.Wait() }
}
