//go:build race

package importer_test

// resumeRows is smaller under the race detector, which slows phone validation and the
// in-process nats-server some twentyfold: the interleavings it checks are the same at
// 20,000 rows, and `go test` without -race runs the full 100,000.
const resumeRows = 20_000
