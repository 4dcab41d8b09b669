package main

import (
	"strings"
	"testing"
	"time"
)

func TestKeyClass(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, want string }{
		{"herald:n:{default/mem-1}", "herald:n:{…}"},
		{"herald:m:{wamid.HBgL}", "herald:m:{…}"},
		{"herald:rl:{white:100200300}:tat", "herald:rl:{…}:tat"},
		{"herald:rl:{white:1}:rday:20261204", "herald:rl:{…}:rday:*"},
		{"herald:win:100200300:+79000000001", "herald:win:*:*"},
		{"herald:suppressed:tenant:default", "herald:suppressed:tenant:default"},
		{"herald:consent:synced", "herald:consent:synced"},
		// An unclosed brace is not a hash tag.
		{"odd:{x", "odd:{x"},
	}
	for _, tt := range tests {
		if got := keyClass(tt.key); got != tt.want {
			t.Errorf("keyClass(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestParseMonitorLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line string
		src        string
		args       []string
		ok         bool
	}{
		{"client", `1796413719.334592 [0 127.0.0.1:54376] "EVALSHA" "abc" "1" "herald:n:{default/a b}"`,
			"127.0.0.1:54376", []string{"evalsha", "abc", "1", "herald:n:{default/a b}"}, true},
		{"script with escapes", `1796413719.334673 [0 lua] "set" "k" "x y\"z\n\\\x01"`,
			"lua", []string{"set", "k", "x y\"z\n\\\x01"}, true},
		{"unix socket", `1.0 [3 unix:/tmp/r.sock] "time"`, "unix:/tmp/r.sock", []string{"time"}, true},
		{"OK reply", `OK`, "", nil, false},
		{"unterminated", `1.0 [0 lua] "get" "k`, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src, args, ok := parseMonitorLine(tt.line)
			if ok != tt.ok || src != tt.src || strings.Join(args, "|") != strings.Join(tt.args, "|") {
				t.Errorf("parseMonitorLine = %q, %q, %v; want %q, %q, %v", src, args, ok, tt.src, tt.args, tt.ok)
			}
		})
	}
}

func TestCallOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		args []string
		want redisCall
		ok   bool
	}{
		{"127.0.0.1:1", []string{"evalsha", "abc", "2", "herald:n:{default/x}", "herald:m:{y}"}, redisCall{cmd: "evalsha", key: "herald:n:{…}"}, true},
		{"127.0.0.1:1", []string{"evalsha", "abc", "0"}, redisCall{cmd: "evalsha"}, true},
		{"lua", []string{"get", "herald:rl:{white:1}:tat"}, redisCall{cmd: "get", key: "herald:rl:{…}:tat", script: true}, true},
		{"lua", []string{"time"}, redisCall{cmd: "time", script: true}, true},
		{"127.0.0.1:1", []string{"script", "LOAD", "return 1"}, redisCall{cmd: "script load"}, true},
		// The benchmark's own reads and a connection's handshake are not a notification's.
		{"127.0.0.1:1", []string{"info", "memory"}, redisCall{}, false},
		{"127.0.0.1:1", []string{"client", "setinfo", "lib-name", "go-redis"}, redisCall{}, false},
		{"127.0.0.1:1", []string{"echo", monitorEnd}, redisCall{}, false},
	}
	for _, tt := range tests {
		got, ok := callOf(tt.src, tt.args)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("callOf(%q, %q) = %+v, %v; want %+v, %v", tt.src, tt.args, got, ok, tt.want, tt.ok)
		}
	}
}

func TestInfoField(t *testing.T) {
	t.Parallel()
	info := "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nused_memory_scripts:2048\r\n"
	if n, ok := infoField(info, "used_memory"); !ok || n != 1<<20 {
		t.Errorf("used_memory = %d, %v", n, ok)
	}
	if n, ok := infoField(info, "used_memory_scripts"); !ok || n != 2048 {
		t.Errorf("used_memory_scripts = %d, %v", n, ok)
	}
	if _, ok := infoField(info, "used_memory_human"); ok {
		t.Error("a non-integer field read as an integer")
	}
	if _, ok := infoField(info, "maxmemory"); ok {
		t.Error("a missing field found")
	}
}

func TestStreamDeltas(t *testing.T) {
	t.Parallel()
	before := map[string]streamState{"HERALD_JOBS": {msgs: 0, bytes: 0, lastSeq: 10}, "KV_x": {msgs: 1, bytes: 50, lastSeq: 1}}
	after := map[string]streamState{"HERALD_JOBS": {msgs: 5, bytes: 2500, lastSeq: 30}, "KV_x": {msgs: 1, bytes: 50, lastSeq: 1},
		"HERALD_EVENTS": {msgs: 20, bytes: 6000, lastSeq: 20}}
	got := streamDeltas(before, after)
	want := []streamDelta{{"HERALD_EVENTS", 20, 20, 6000}, {"HERALD_JOBS", 20, 5, 2500}}
	if len(got) != len(want) {
		t.Fatalf("streamDeltas = %+v, want %+v (a stream that did not move left out)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("streamDeltas[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestRenderMemory(t *testing.T) {
	t.Parallel()
	round := func(variant string, used int64) memRound {
		return memRound{variant: variant, jobs: 1000, usedBefore: 1 << 20, usedAfter: 1<<20 + used, scriptsDelta: 1000,
			keysAfter: 2000, classes: []keyClassStat{{"herald:n:{…}", 1000, 712_000}, {"herald:m:{…}", 1000, 136_000}},
			streams: []streamDelta{{"HERALD_EVENTS", 1000, 1000, 285_000}},
			calls:   map[redisCall]int64{{cmd: "evalsha", key: "herald:n:{…}"}: 3000, {cmd: "get", key: "herald:n:{…}", script: true}: 3000},
			elapsed: time.Second}
	}
	// used_memory grew by 1,200,000 bytes, 1,000 of them the script cache: 1199 per notification.
	rs := []memRound{round("sent", 1_200_000), round("sent", 1_300_000), round("sent", 1_100_000), round("read", 1_400_000)}
	if got := rs[0].usedPerJob(); got != 1199 {
		t.Errorf("usedPerJob = %v, want 1199", got)
	}
	if got := rs[0].keyBytesPerJob(); got != 848 {
		t.Errorf("keyBytesPerJob = %v, want 848", got)
	}
	if got, want := rs[0].callsPerJob(false), 3.0; got != want {
		t.Errorf("callsPerJob(clients) = %v, want %v", got, want)
	}
	if got := memMedianRound(rs[:3]).usedAfter; got != 1<<20+1_200_000 {
		t.Errorf("median round used_memory after = %d", got)
	}
	var b strings.Builder
	renderMemory(&b, options{mem: memOpts{jobs: 1000, settle: 2 * time.Second}}, rs)
	out := b.String()
	for _, want := range []string{
		"| figure | sent | read | goal |",
		"| Redis used_memory per notification, bytes | 1199 | 1399 | read ≤ 100: **missed** |",
		"| `herald:n:{…}` | 1000 | 1.00 | 712 | 712.0 |",
		"| HERALD_EVENTS | 1.00 | 1000 | 285.0 |",
		"| `evalsha herald:n:{…}` | a client | 3.00 |",
		"| `get herald:n:{…}` | a script | 3.00 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	// The goal is judged on the most finished variant, the last one run.
	b.Reset()
	renderMemory(&b, options{mem: memOpts{jobs: 1000}}, append(rs, round("aged", 91_000)))
	if want := "| 1199 | 1399 | 90 | aged ≤ 100: **met** |"; !strings.Contains(b.String(), want) {
		t.Errorf("the report lacks %q:\n%s", want, b.String())
	}
}
