package importer

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlainProgress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		total int64
		want  []string // substrings of the one line written
		not   []string
	}{
		{"known size", 1000, []string{"import: 200 rows", "40 rows/s", "25% of 1000 B", "eta 15s"}, nil},
		{"standard input", -1, []string{"import: 200 rows", "40 rows/s"}, []string{"%", "eta"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
			p := NewProgress(&out, false).(*plainProgress)
			p.now = func() time.Time { return now }
			p.Start(tc.total)
			now = now.Add(PlainInterval / 2)
			p.Add(100, 125)
			if out.Len() != 0 {
				t.Fatalf("a line before %s: %q", PlainInterval, out.String())
			}
			now = now.Add(PlainInterval / 2)
			p.Add(100, 125)
			now = now.Add(time.Second) // too soon for the next line
			p.Add(100, 125)
			p.Done(Summary{Rows: 300})
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("lines = %q, want one", lines)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("line %q does not say %q", lines[0], w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(lines[0], n) {
					t.Errorf("line %q says %q", lines[0], n)
				}
			}
		})
	}
}

func TestBarProgress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		total int64
		adds  int
		want  []string
		not   string
	}{
		{"known size", 4 << 20, 4, []string{"1000 rows 100%", "4.2/4.2 MB"}, ""},
		{"cancelled half way", 4 << 20, 2, []string{"500 rows  50%", "2.1/4.2 MB"}, "100%"},
		{"standard input", -1, 4, []string{"importing (1000/-"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			p := NewProgress(&out, true)
			p.Start(tc.total)
			for range tc.adds {
				p.Add(250, 1<<20)
			}
			p.Done(Summary{Rows: int64(250 * tc.adds)})
			if tc.not != "" && strings.Contains(out.String(), tc.not) {
				t.Errorf("bar output %q shows %q", out.String(), tc.not)
			}
			if !strings.HasSuffix(out.String(), "\n") {
				t.Errorf("bar output %q does not end its line", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("bar output %q does not show %q", out.String(), w)
				}
			}
		})
	}
}
