//go:build race

package job

// sampleEvery thins the randomized comparisons of fast paths against their references
// under the race detector, which slows them some twentyfold: it checks no interleaving
// there, and `go test` without -race runs every case.
const sampleEvery = 10
