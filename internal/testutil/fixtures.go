package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// WhatsAppFixtures is the directory of the recorded WhatsApp traffic and webhook payloads,
// testdata/whatsapp at the repository's root (testdata/SOURCES.md says where each came from).
func WhatsAppFixtures() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "whatsapp")
}

// CassetteStrings returns the value of every `string: '...'` scalar (request and response
// bodies) of a VCR cassette in cloud-api-traffic, in file order. Cassette bodies are YAML
// single-quoted flow scalars, so it is enough to undo doubled-quote escapes and YAML line
// folding (a line break plus indentation reads as one space, an empty line as a newline).
func CassetteStrings(tb testing.TB, name string) []string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(WhatsAppFixtures(), "cloud-api-traffic", name))
	if err != nil {
		tb.Fatal(err)
	}
	s := string(data)
	var out []string
	const marker = "string: '"
	for {
		i := strings.Index(s, marker)
		if i < 0 {
			return out
		}
		s = s[i+len(marker):]
		var raw strings.Builder
		j := 0
		for ; j < len(s); j++ {
			if s[j] == '\'' {
				if j+1 < len(s) && s[j+1] == '\'' {
					raw.WriteByte('\'')
					j++
					continue
				}
				break
			}
			raw.WriteByte(s[j])
		}
		if j == len(s) {
			tb.Fatalf("%s: unterminated quoted scalar", name)
		}
		out = append(out, foldYAML(raw.String()))
		s = s[j+1:]
	}
}

func foldYAML(raw string) string {
	lines := strings.Split(raw, "\n")
	var b strings.Builder
	b.WriteString(strings.TrimRight(lines[0], " \t"))
	empty := 0
	for _, l := range lines[1:] {
		l = strings.Trim(l, " \t")
		if l == "" {
			empty++
			continue
		}
		if empty > 0 {
			b.WriteString(strings.Repeat("\n", empty))
		} else {
			b.WriteByte(' ')
		}
		empty = 0
		b.WriteString(l)
	}
	return b.String()
}

// LogBuffer is a goroutine-safe log sink, for tests that check what a component logs from
// its own goroutines.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
