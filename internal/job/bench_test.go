package job_test

import (
	"testing"

	"github.com/herald-notify/herald/internal/job"
)

// orderJob is what the producer publishes in the end-to-end benchmark (worker/e2e_test.go).
const orderJob = `{"id":"order-000042-ready","to":"+79000000042","template":"order_ready","language":"ru",` +
	`"params":{"address":"ул. Текстильщиков, д. 20","order":"100042","until":"21.02.2027"},"priority":"transactional",` +
	`"buttons":{"0":"100042"}}`

// BenchmarkDecode is the worker's first step on every delivery.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct{ name, data string }{
		{"order", orderJob},
		{"design", designExample},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := []byte(bc.data)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := job.Decode(data, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidateEncode is the producer's per-job cost before the publish.
func BenchmarkValidateEncode(b *testing.B) {
	src, err := job.Decode([]byte(designExample), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		j := *src
		if _, err := j.ValidateEncode(opts); err != nil {
			b.Fatal(err)
		}
	}
}
