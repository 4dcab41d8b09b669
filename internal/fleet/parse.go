package fleet

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/config"
)

// MaxFileSize bounds a fleet file: thousands of senders fit in far less.
const MaxFileSize = 4 << 20

// Load reads the fleet file at path and parses it (see [Parse]).
func Load(path string, getenv func(string) string) (*Fleet, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading the fleet file: %w", err)
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("reading the fleet file %s: larger than %d bytes", path, MaxFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the fleet file: %w", err)
	}
	return Parse(data, getenv)
}

// Parse decodes a fleet file, expands ${NAME} from getenv (nil: an empty environment), fills
// the defaults and validates the whole. The error, if any, is an [Errors] holding every
// problem at once: unknown keys, values of the wrong type, unset variables and every broken
// rule of [Fleet.Validate], each naming its path.
func Parse(data []byte, getenv func(string) string) (*Fleet, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{{Reason: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	d := &decoder{getenv: getenv, l: &list{}, present: map[string]bool{}, bad: map[string]bool{}, env: map[string]string{}}
	var f Fleet
	if len(doc.Content) > 0 {
		d.decode(doc.Content[0], reflect.ValueOf(&f).Elem(), "")
	}
	f.defaults(d.present, getenv)
	v := validator{l: d.l, skip: d.bad, env: d.env}
	v.fleet(&f)
	if err := d.l.err(); err != nil {
		return nil, err
	}
	return &f, nil
}

// DefaultVariables are the variables the defaults read (see [Parse]); every other variable
// the file reads is one it names as ${NAME}.
var DefaultVariables = []string{"HERALD_WHITE_BASE_URL", "HERALD_WHITE_API_VERSION", "HERALD_GREY_BASE_URL"}

// defaults fills what the file leaves out. Base URLs and the API version follow the
// HERALD_* variables when they are set, so one variable points every sender at a test
// gateway (herald dev points them at its simulator).
func (f *Fleet) defaults(present map[string]bool, getenv func(string) string) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	def := config.Defaults()
	for i := range f.Senders {
		s := &f.Senders[i]
		has := func(field string) bool { return present[fmt.Sprintf("senders[%d].%s", i, field)] }
		switch s.Kind {
		case KindWhite:
			if !has("mps") {
				s.MPS = DefaultWhiteMPS
			}
			if !has("base_url") {
				s.BaseURL = env("HERALD_WHITE_BASE_URL", def.WhiteBaseURL)
			}
			if !has("api_version") {
				s.APIVersion = env("HERALD_WHITE_API_VERSION", def.WhiteAPIVersion)
			}
		case KindGrey:
			if !has("mps") {
				s.MPS = DefaultGreyMPS
			}
			if !has("jitter") {
				s.Jitter = DefaultGreyJitter
			}
			if !has("base_url") {
				s.BaseURL = getenv("HERALD_GREY_BASE_URL")
			}
		case KindSMS:
			if s.Driver == DriverNATS && !has("subject") {
				s.Subject = DefaultSMSSubject
			}
		}
	}
}

// maxNodes bounds the walk: YAML aliases can make a small file a huge tree.
const maxNodes = 200_000

// decoder walks the YAML tree into the model by reflection, so that every problem names its
// path (yaml's own decoder names only lines): unknown and repeated keys, values of the wrong
// type, ${NAME} that cannot be expanded.
type decoder struct {
	getenv func(string) string
	l      *list
	// present holds the path of every key the file sets (to a value other than null), so
	// defaults apply to what is absent, not to what is zero.
	present map[string]bool
	// bad holds the paths already reported, so validation does not report them again.
	bad map[string]bool
	// env holds the file's text of the values that came from the environment (${NAME}),
	// by path: messages show that, never the value.
	env   map[string]string
	nodes int
}

func (d *decoder) fail(path, reason string) {
	if d.bad[path] {
		return
	}
	d.bad[path] = true
	d.l.add(path, reason)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.nodes++; d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.fail(path, fmt.Sprintf("the document expands to more than %d values (aliases?)", maxNodes))
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	switch {
	case v.Kind() == reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		d.decode(n, e.Elem(), path)
		if !d.bad[path] { // a value of the wrong shape stays unset, not zero
			v.Set(e)
		}
	case v.Type() == timeType:
		if s, ok := d.scalar(n, path, "a date (2026-05-01) or an RFC 3339 time"); ok {
			t, err := parseTime(s)
			if err != nil {
				d.fail(path, "must be a date (2026-05-01) or an RFC 3339 time")
				return
			}
			v.Set(reflect.ValueOf(t))
		}
	case v.Type() == durationType:
		if s, ok := d.scalar(n, path, "a duration like 6s or 1m30s"); ok {
			x, err := time.ParseDuration(s)
			if err != nil {
				d.fail(path, "must be a duration like 6s or 1m30s")
				return
			}
			v.SetInt(int64(x))
		}
	case v.Kind() == reflect.Struct:
		fields := yamlFields(v.Type())
		d.mapping(n, path, func(key string, val *yaml.Node) {
			p := join(path, key)
			i, ok := fields[key]
			if !ok {
				d.fail(p, unknownField(key, fields))
				return
			}
			if !isNull(resolve(val)) {
				d.present[p] = true
			}
			d.decode(val, v.Field(i), p)
		})
	case v.Kind() == reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		d.mapping(n, path, func(key string, val *yaml.Node) {
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, join(path, key))
			v.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), e)
		})
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case v.Kind() == reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case v.Kind() == reflect.Int:
		if s, ok := d.scalar(n, path, "a whole number"); ok {
			x, err := strconv.ParseInt(s, 10, 0)
			if err != nil {
				d.fail(path, "must be a whole number")
				return
			}
			v.SetInt(x)
		}
	case v.Kind() == reflect.Float64:
		if s, ok := d.scalar(n, path, "a number"); ok {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				d.fail(path, "must be a number")
				return
			}
			v.SetFloat(x)
		}
	default: // cannot happen: the model holds only the kinds above
		d.fail(path, "cannot be decoded")
	}
}

// scalar returns a scalar's text with ${NAME} expanded; what is a string field's value is
// the text as written, so unquoted ids (phone_number_id: 1122334455667) stay exact.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, "must be "+want)
		return "", false
	}
	if !strings.Contains(n.Value, "$") {
		return n.Value, true
	}
	out, problem, used := expand(n.Value, d.getenv)
	if used {
		d.env[path] = n.Value
	}
	if problem != "" {
		d.fail(path, problem)
		return "", false
	}
	return out, true
}

// expand replaces ${NAME} in s with getenv(NAME) and $${ with ${. It returns the problem of
// the first reference that cannot be expanded, and whether any variable was read.
func expand(s string, getenv func(string) string) (out, problem string, used bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '$' && strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 2
		case c == '$' && strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", "${ without a closing } (write $${ for a literal ${)", used
			}
			name := s[i+2 : i+2+end]
			if !validVarName(name) {
				return "", fmt.Sprintf("${%s}: a variable name is letters, digits and _, not starting with a digit", name), used
			}
			used = true
			val := getenv(name)
			if val == "" {
				return "", fmt.Sprintf("${%s}: the environment variable %s is not set (or empty)", name, name), used
			}
			b.WriteString(val)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "", used
}

func validVarName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// mapping calls fn for each key of a mapping node in order, merge keys (<<: *defaults)
// first, keys written in the mapping overriding them; a key written twice is an error.
func (d *decoder) mapping(n *yaml.Node, path string, fn func(key string, val *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, "must be a mapping of keys to values")
		return
	}
	type pair struct {
		key  string
		val  *yaml.Node
		line int
	}
	var merged, own []pair
	seen := map[string]int{}
	var merge func(m *yaml.Node)
	merge = func(m *yaml.Node) {
		m = resolve(m)
		switch m.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(m.Content); i += 2 {
				merged = append(merged, pair{m.Content[i].Value, m.Content[i+1], m.Content[i].Line})
			}
		case yaml.SequenceNode:
			for _, c := range m.Content {
				merge(c)
			}
		default:
			d.fail(join(path, "<<"), "a merge key takes a mapping or a list of mappings")
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(path, fmt.Sprintf("line %d: a key must be a plain name", k.Line))
			continue
		}
		if k.Tag == "!!merge" {
			merge(val)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(join(path, k.Value), fmt.Sprintf("set twice (lines %d and %d)", first, k.Line))
			continue
		}
		seen[k.Value] = k.Line
		own = append(own, pair{k.Value, val, k.Line})
	}
	done := map[string]bool{}
	for _, p := range merged {
		if _, overridden := seen[p.key]; overridden || done[p.key] {
			continue
		}
		done[p.key] = true
		fn(p.key, p.val)
	}
	for _, p := range own {
		fn(p.key, p.val)
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// join appends a key to a path: a.b, or a["odd key"] for a key that is no plain name.
func join(path, key string) string {
	plain := key != ""
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			plain = false
			break
		}
	}
	if !plain {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps a struct's yaml keys to field indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

// unknownField names the nearest known key when the key looks like a typo of one.
func unknownField(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for f := range fields {
		if dist := editDistance(key, f); dist < bestDist || dist == bestDist && f < best {
			best, bestDist = f, dist
		}
	}
	if best != "" && bestDist <= 2 {
		return "unknown field (did you mean " + best + "?)"
	}
	return "unknown field"
}

// editDistance is the Levenshtein distance of two short ASCII keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}
