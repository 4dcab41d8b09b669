package importer_test

import (
	"context"
	"testing"

	"github.com/herald-notify/herald/internal/importer"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkImport imports 200,000 generated rows per iteration into an in-process JetStream
// and reports rows/s next to the raw JetStream async publish rate measured the same way.
func BenchmarkImport(b *testing.B) {
	const rows = 200_000
	n := testutil.StartNATS(b)
	_, js := n.Connect(b)
	var imp, raw, heap float64
	for b.Loop() {
		res, err := importer.Bench(b.Context(), js, rows)
		if err != nil {
			b.Fatal(err)
		}
		r, err := importer.RawRate(b.Context(), js, rows)
		if err != nil {
			b.Fatal(err)
		}
		imp, raw, heap = res.RowsPerSec, r, float64(res.PeakHeapBytes)
	}
	b.ReportMetric(imp, "rows/s")
	b.ReportMetric(raw, "raw-msgs/s")
	b.ReportMetric(imp/raw, "ratio")
	b.ReportMetric(heap/(1<<20), "peak-heap-MiB")
}

// TestRawRates: both baselines store every message they count (no duplicates).
func TestRawRates(t *testing.T) {
	t.Parallel()
	_, js := testutil.StartNATS(t).Connect(t)
	for _, f := range []func(context.Context, jetstream.JetStream, int) (float64, error){importer.RawRate, importer.RawRateWithIDs} {
		if r, err := f(t.Context(), js, 2000); err != nil || r <= 0 {
			t.Fatalf("rate %v, %v", r, err)
		}
	}
}
