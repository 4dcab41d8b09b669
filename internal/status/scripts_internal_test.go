package status

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

var (
	// headerLine is a KEYS or ARGV entry of a script's header: "-- ARGV[2] lease_ms: ...".
	headerLine = regexp.MustCompile(`^-- (KEYS|ARGV)\[(\d+)\] ([a-z_]+):`)
	// indexUse is a script reading KEYS or ARGV.
	indexUse = regexp.MustCompile(`\b(KEYS|ARGV)\[(\d+)\]`)
)

// luaHeader returns the positions (1-based) of the names in src's header, by KEYS and ARGV.
func luaHeader(t *testing.T, src string) map[string]map[string]int {
	t.Helper()
	h := map[string]map[string]int{"KEYS": {}, "ARGV": {}}
	for line := range strings.Lines(src) {
		m := headerLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pos, _ := strconv.Atoi(m[2])
		if pos != len(h[m[1]])+1 {
			t.Fatalf("header entry %s[%d] %s out of order", m[1], pos, m[3])
		}
		if _, dup := h["KEYS"][m[3]]; dup {
			t.Fatalf("header name %s used twice", m[3])
		}
		if _, dup := h["ARGV"][m[3]]; dup {
			t.Fatalf("header name %s used twice", m[3])
		}
		h[m[1]][m[3]] = pos
	}
	return h
}

// luaUses returns the highest KEYS and ARGV index src's code reads, and fails on a gap.
func luaUses(t *testing.T, src string) map[string]int {
	t.Helper()
	used := map[string]map[int]bool{"KEYS": {}, "ARGV": {}}
	for line := range strings.Lines(src) {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		for _, m := range indexUse.FindAllStringSubmatch(line, -1) {
			pos, _ := strconv.Atoi(m[2])
			used[m[1]][pos] = true
		}
	}
	n := map[string]int{}
	for kind, set := range used {
		n[kind] = len(set)
		for pos := 1; pos <= len(set); pos++ {
			if !set[pos] {
				t.Fatalf("the script reads %s up to %d but never %s[%d]", kind, len(set), kind, pos)
			}
		}
	}
	return n
}

// setMarker sets v to a value that differs from its zero value.
func setMarker(t *testing.T, v reflect.Value) {
	t.Helper()
	switch {
	case v.Kind() == reflect.String:
		v.SetString("x")
	case v.CanInt():
		v.SetInt(7)
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		v.SetBytes([]byte("x"))
	default:
		t.Fatalf("no marker for a field of type %s", v.Type())
	}
}

// changed returns the 1-based positions where got differs from base.
func changed[T any](base, got []T) []int {
	var out []int
	for i := range got {
		if i >= len(base) || !reflect.DeepEqual(base[i], got[i]) {
			out = append(out, i+1)
		}
	}
	return out
}

// TestScriptArgsOrder holds each args type to its script's header: every field, set alone,
// changes exactly the KEYS or ARGV entry its lua tag names, at the position the header gives
// it; every entry has a field; and the header documents exactly the entries the code reads.
func TestScriptArgsOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		src  string
		args scriptArgs // the zero value
	}{
		{"begin.lua", luaBegin, &beginArgs{}},
		{"attempt.lua", luaAttempt, &attemptArgs{}},
		{"settle.lua", luaSettle, &settleArgs{}},
		{"status.lua", luaStatus, &statusArgs{}},
		{"create.lua", luaCreate, &createArgs{}},
		{"retire.lua", luaRetire, &retireArgs{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			if got, want := tc.args.script().Hash(), redis.NewScript(luaCommon+tc.src).Hash(); got != want {
				t.Fatalf("%T runs another script than common.lua + %s", tc.args, tc.file)
			}
			header := luaHeader(t, tc.src)
			used := luaUses(t, tc.src)
			baseKeys, baseArgv := tc.args.keys(), tc.args.argv()
			for kind, n := range map[string]int{"KEYS": len(baseKeys), "ARGV": len(baseArgv)} {
				if len(header[kind]) != used[kind] || n != used[kind] {
					t.Fatalf("%s: the header documents %d, the code reads %d, %T passes %d",
						kind, len(header[kind]), used[kind], tc.args, n)
				}
			}
			typ := reflect.TypeOf(tc.args).Elem()
			filled := map[string]bool{}
			for i := range typ.NumField() {
				f := typ.Field(i)
				name := f.Tag.Get("lua")
				kind, want := "KEYS", header["KEYS"][name]
				if want == 0 {
					kind, want = "ARGV", header["ARGV"][name]
				}
				if want == 0 {
					t.Fatalf("field %s: lua tag %q is not in the header of %s", f.Name, name, tc.file)
				}
				v := reflect.New(typ)
				setMarker(t, v.Elem().Field(i))
				a := v.Interface().(scriptArgs)
				gotKeys, gotArgv := changed(baseKeys, a.keys()), changed(baseArgv, a.argv())
				got, other := gotKeys, gotArgv
				if kind == "ARGV" {
					got, other = gotArgv, gotKeys
				}
				if len(other) != 0 || len(got) != 1 || got[0] != want {
					t.Errorf("field %s (%s) fills KEYS%v ARGV%v, want only %s[%d]", f.Name, name, gotKeys, gotArgv, kind, want)
				}
				filled[name] = true
			}
			for kind, names := range header {
				for name, pos := range names {
					if !filled[name] {
						t.Errorf("%s[%d] %s has no field in %T", kind, pos, name, tc.args)
					}
				}
			}
		})
	}
}
