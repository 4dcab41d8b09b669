//go:build !race

package importer_test

// resumeRows is the size of the interrupted-and-resumed import: the 100,000 rows the issue
// asks for.
const resumeRows = 100_000
