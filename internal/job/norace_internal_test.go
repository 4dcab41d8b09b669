//go:build !race

package job

// sampleEvery: every randomized case runs without the race detector (see race_internal_test.go).
const sampleEvery = 1
