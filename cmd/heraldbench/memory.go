package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/benchenv"
)

// memOpts sizes the memory section (issue 16): what one notification leaves in Redis and in
// JetStream once it is done.
type memOpts struct {
	jobs int
	// env is appended to the worker's and the API's environment (KEY=VALUE), e.g. a
	// HERALD_HOT_TTL, so that the section measures a setting without a code change.
	env []string
	// settle is how long the section waits, the sends and webhooks done, before it stops
	// the processes and reads the servers: time for anything the code does after a record is
	// finished (an event published, a record moved out of Redis).
	settle time.Duration
}

// memVariant is one way a notification ends in the memory section.
type memVariant struct {
	name, desc string
	// statuses are the simulator's -statuses (empty: no webhooks, no `herald api`).
	statuses string
	// env is added to the processes' environment, before memOpts.env (which wins); wait is
	// added to memOpts.settle.
	env  []string
	wait time.Duration
	// once runs the variant in one round, and not at all with -quick: it waits long.
	once bool
}

// memVariants: sent without any report, as the e2e section leaves it (the first
// figure); the whole history a provider reports (sent, delivered, read); and that history
// once the finished records may have left Redis (HERALD_HOT_TTL at its least, 1m, and the
// servers read after it): what a finished notification costs Redis for the rest of
// HERALD_STATUS_TTL. Code without HERALD_HOT_TTL ignores the variable, and the last two
// columns then agree.
var memVariants = []memVariant{
	{name: "sent", desc: "sent, no status webhooks (the record stays `sent`, its fallback deadline parked)"},
	{name: "read", desc: "sent, then `sent`, `delivered` and `read` webhooks through `herald api`", statuses: "sent,delivered,read"},
	{name: "aged", desc: "as read, with `HERALD_HOT_TTL=1m`, the servers read 80s later than in read (one round)",
		statuses: "sent,delivered,read", env: []string{"HERALD_HOT_TTL=1m"}, wait: 80 * time.Second, once: true},
}

// memRound is one round of one variant of the memory section.
type memRound struct {
	variant string
	jobs    int
	// usedBefore and usedAfter are redis-server's used_memory before any herald process
	// started and after they stopped (so no client connection of theirs is counted);
	// scriptsDelta is the growth of used_memory_scripts meanwhile (the Lua script cache, a
	// fixed cost, not per notification).
	usedBefore, usedAfter, scriptsDelta int64
	keysBefore, keysAfter               int64
	// classes are the keys left after the round by key class (keyClass), with their
	// MEMORY USAGE.
	classes []keyClassStat
	// streams are the JetStream streams' growth over the round.
	streams []streamDelta
	// calls are the Redis commands run during the round (MONITOR), as callOf counts them.
	calls    map[redisCall]int64
	webhooks int64 // statuses the simulator delivered
	elapsed  time.Duration
}

// keyClassStat is the keys of one class and their total MEMORY USAGE.
type keyClassStat struct {
	class       string
	keys, bytes int64
}

// streamDelta is what one JetStream stream gained over a round: messages published (its last
// sequence moved by so many), and messages and bytes still stored at the end.
type streamDelta struct {
	name                   string
	published, msgs, bytes int64
}

// perJob divides n by the jobs of the round.
func (r memRound) perJob(n int64) float64 {
	if r.jobs == 0 {
		return 0
	}
	return float64(n) / float64(r.jobs)
}

// usedPerJob is used_memory's growth per notification, the script cache left out.
func (r memRound) usedPerJob() float64 {
	return r.perJob(r.usedAfter - r.usedBefore - r.scriptsDelta)
}

// keyBytesPerJob is the MEMORY USAGE of every key left, per notification.
func (r memRound) keyBytesPerJob() float64 {
	var n int64
	for _, c := range r.classes {
		n += c.bytes
	}
	return r.perJob(n)
}

// streamBytesPerJob is the JetStream bytes still stored at the end, per notification.
func (r memRound) streamBytesPerJob() float64 {
	var n int64
	for _, s := range r.streams {
		n += s.bytes
	}
	return r.perJob(n)
}

// callsPerJob is the Redis commands of the round per notification that clients sent
// (inScript false) or that scripts ran (true).
func (r memRound) callsPerJob(inScript bool) float64 {
	var n int64
	for c, k := range r.calls {
		if c.script == inScript {
			n += k
		}
	}
	return r.perJob(n)
}

// scriptCallsPerJob is the script calls clients sent per notification.
func (r memRound) scriptCallsPerJob() float64 {
	var n int64
	for c, k := range r.calls {
		if !c.script && strings.HasPrefix(c.cmd, "eval") {
			n += k
		}
	}
	return r.perJob(n)
}

// sortedCalls are the calls' kinds, the clients' first, then the most frequent first.
func sortedCalls(calls map[redisCall]int64) []redisCall {
	cs := slices.Collect(maps.Keys(calls))
	slices.SortFunc(cs, func(a, b redisCall) int {
		if a.script != b.script {
			if a.script {
				return 1
			}
			return -1
		}
		if c := cmpF(float64(calls[b]), float64(calls[a])); c != 0 {
			return c
		}
		return strings.Compare(a.String(), b.String())
	})
	return cs
}

func runMemory(ctx context.Context, root string, b bins, o options, res *results) error {
	for _, v := range memVariants {
		rounds := o.rounds
		if v.once {
			if o.quick {
				continue
			}
			rounds = 1
		}
		for r := 1; r <= rounds; r++ {
			fmt.Fprintf(os.Stderr, "== memory %s round %d/%d: %d jobs\n", v.name, r, rounds, o.mem.jobs)
			mr, err := runMemRound(ctx, dirFor(root, "memory-"+v.name, r), b, o.mem, v)
			if err != nil {
				return fmt.Errorf("memory %s round %d: %w", v.name, r, err)
			}
			fmt.Fprintf(os.Stderr, "  => Redis %.0f bytes per notification (keys %.0f), JetStream %.0f bytes stored per notification, %.1f Redis calls per notification\n",
				mr.usedPerJob(), mr.keyBytesPerJob(), mr.streamBytesPerJob(), mr.callsPerJob(false))
			res.memory = append(res.memory, mr)
		}
	}
	return nil
}

func runMemRound(ctx context.Context, dir string, b bins, o memOpts, v memVariant) (memRound, error) {
	simArgs := []string{"-statuses", v.statuses, "-max-messages", strconv.Itoa(o.jobs + 1000)}
	apiPort := 0
	if v.statuses != "" {
		var err error
		if apiPort, err = benchenv.FreePort(); err != nil {
			return memRound{}, err
		}
		simArgs = append(simArgs, "-webhook-url", "http://127.0.0.1:"+strconv.Itoa(apiPort)+"/webhooks/whatsapp",
			"-app-secret", benchAppSecret, "-status-delay", "50ms")
	}
	return withStack(ctx, dir, b, simArgs, func(s *stack) (memRound, error) { return memRoundOn(ctx, s, o, v, apiPort) })
}

// memRoundOn reads the servers, runs one worker (and `herald api` when the variant has
// webhooks) through o.jobs jobs, stops them and reads the servers again.
func memRoundOn(ctx context.Context, s *stack, o memOpts, v memVariant, apiPort int) (res memRound, err error) {
	res.variant, res.jobs = v.name, o.jobs
	rdb := redis.NewClient(&redis.Options{Addr: s.redis.Addr})
	defer rdb.Close()
	before, err := readRedis(ctx, rdb)
	if err != nil {
		return res, err
	}
	mon, err := startMonitor(ctx, s.redis.Addr)
	if err != nil {
		return res, err
	}
	defer mon.close()
	streamsBefore, err := streamStates(ctx, s.js)
	if err != nil {
		return res, err
	}
	env := append(slices.Clone(v.env), o.env...)
	var procs []*benchenv.Proc
	defer func() {
		for _, p := range procs {
			p.Stop(15 * time.Second)
		}
	}()
	if apiPort != 0 {
		p, err := s.env.StartHerald(ctx, s.bins.herald, "api", nil, s.heraldEnv(apiPort, env...),
			"http://127.0.0.1:"+strconv.Itoa(apiPort)+"/readyz")
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
	}
	w, _, err := s.startHerald(ctx, "worker", append(workerEnvThroughput(256), env...)...)
	if err != nil {
		return res, err
	}
	procs = append(procs, w)
	start := time.Now()
	label := "memory " + v.name
	if _, err := publishTimed(ctx, s.js, label+" publish", o.jobs, e2eJob("mem-")); err != nil {
		return res, err
	}
	if err := s.waitSent(ctx, label+" sent", int64(o.jobs), start, 5*time.Minute); err != nil {
		return res, err
	}
	if v.statuses != "" {
		want := int64(o.jobs * len(strings.Split(v.statuses, ",")))
		if err := waitWebhooks(ctx, s, want, &res.webhooks); err != nil {
			return res, err
		}
	}
	res.elapsed = time.Since(start)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(o.settle + v.wait):
	}
	// The processes stop before the servers are read: their connections' buffers are not
	// notifications' memory.
	for _, p := range procs {
		p.Stop(15 * time.Second)
	}
	procs = nil
	if res.calls, err = mon.stop(ctx, rdb); err != nil {
		return res, err
	}
	// The keys are scanned before used_memory is read: SCAN deletes the expired keys it
	// meets, which Redis's sampling expiry may not have reached yet.
	if res.classes, err = keyClasses(ctx, rdb); err != nil {
		return res, err
	}
	after, err := readRedis(ctx, rdb)
	if err != nil {
		return res, err
	}
	streamsAfter, err := streamStates(ctx, s.js)
	if err != nil {
		return res, err
	}
	res.usedBefore, res.usedAfter = before.used, after.used
	res.scriptsDelta = after.scripts - before.scripts
	res.keysBefore, res.keysAfter = before.keys, after.keys
	res.streams = streamDeltas(streamsBefore, streamsAfter)
	return res, nil
}

// waitWebhooks waits until the simulator has delivered want statuses (the API records each
// before it answers, so they are all in Redis then) and stores the count in got.
func waitWebhooks(ctx context.Context, s *stack, want int64, got *int64) error {
	return benchenv.Poll(ctx, s.sim, 2*time.Minute, "status webhooks", func(ctx context.Context) error {
		wh, err := devWebhooks(ctx, s.simURL)
		if err != nil {
			return err
		}
		*got = wh.Statuses
		if wh.Dropped > 0 {
			return fmt.Errorf("the simulator dropped %d statuses", wh.Dropped)
		}
		if wh.Statuses < want {
			return fmt.Errorf("%d of %d statuses delivered", wh.Statuses, want)
		}
		return nil
	})
}

// redisState is what the section reads from redis-server at a moment.
type redisState struct{ used, scripts, keys int64 }

func readRedis(ctx context.Context, rdb *redis.Client) (st redisState, err error) {
	mem, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return st, err
	}
	var ok bool
	if st.used, ok = infoField(mem, "used_memory"); !ok {
		return st, fmt.Errorf("INFO memory has no used_memory")
	}
	st.scripts, _ = infoField(mem, "used_memory_scripts")
	st.keys, err = rdb.DBSize(ctx).Result()
	return st, err
}

// infoField is the integer field name of an INFO answer ("name:value" lines).
func infoField(info, name string) (int64, bool) {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// keyClass names the kind of a Redis key: a hash tag's content becomes {…} and a part with a
// digit or a '+' (an id, a phone number, a time bucket) becomes *, so that the thousands of
// keys of one kind (herald:n:{default/mem-1}, …) count as one class.
func keyClass(key string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(key, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(key[open:], '}')
		if end < 0 {
			break
		}
		b.WriteString(key[:open])
		b.WriteString("{…}")
		key = key[open+end+1:]
	}
	b.WriteString(key)
	parts := strings.Split(b.String(), ":")
	for i, p := range parts {
		if p != "{…}" && strings.ContainsAny(p, "0123456789+") {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, ":")
}

// keyClasses scans every key and sums MEMORY USAGE (all of each value sampled) by class,
// largest first.
func keyClasses(ctx context.Context, rdb *redis.Client) ([]keyClassStat, error) {
	by := map[string]*keyClassStat{}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return nil, err
		}
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.MemoryUsage(ctx, k, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for i, k := range keys {
			n, err := cmds[i].Result()
			if err != nil {
				continue // expired between SCAN and MEMORY USAGE
			}
			c := keyClass(k)
			if by[c] == nil {
				by[c] = &keyClassStat{class: c}
			}
			by[c].keys++
			by[c].bytes += n
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	out := make([]keyClassStat, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b keyClassStat) int { return cmpF(float64(b.bytes), float64(a.bytes)) })
	return out, nil
}

// streamState is one stream's state at a moment.
type streamState struct {
	msgs, bytes, lastSeq uint64
}

func streamStates(ctx context.Context, js jetstream.JetStream) (map[string]streamState, error) {
	out := map[string]streamState{}
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		out[info.Config.Name] = streamState{msgs: info.State.Msgs, bytes: info.State.Bytes, lastSeq: info.State.LastSeq}
	}
	return out, l.Err()
}

// streamDeltas is each stream's growth from before to after, streams that did not move left
// out, sorted by name.
func streamDeltas(before, after map[string]streamState) []streamDelta {
	var out []streamDelta
	for _, name := range slices.Sorted(maps.Keys(after)) {
		a, b := after[name], before[name]
		d := streamDelta{name: name, published: int64(a.lastSeq) - int64(b.lastSeq),
			msgs: int64(a.msgs) - int64(b.msgs), bytes: int64(a.bytes) - int64(b.bytes)}
		if d.published != 0 || d.bytes != 0 {
			out = append(out, d)
		}
	}
	return out
}

// memByVariant groups the rounds by variant, in memVariants' order.
func memByVariant(rs []memRound) (vs []memVariant, by map[string][]memRound) {
	by = map[string][]memRound{}
	for _, r := range rs {
		by[r.variant] = append(by[r.variant], r)
	}
	for _, v := range memVariants {
		if len(by[v.name]) > 0 {
			vs = append(vs, v)
		}
	}
	return vs, by
}

// memMedianRound is the round whose Redis bytes per notification is the median, so that the
// breakdowns shown come from one real round rather than a mix.
func memMedianRound(rs []memRound) memRound {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b memRound) int { return cmpF(a.usedPerJob(), b.usedPerJob()) })
	return s[len(s)/2]
}

// memGoal is issue 16's goal for Redis bytes per finished notification.
const memGoal = 100

func renderMemory(b *strings.Builder, o options, rs []memRound) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	vs, by := memByVariant(rs)
	w("## Redis and JetStream bytes per notification (issue 16)\n\n")
	w("%d jobs per round (the e2e job: the sample order_ready template, a distinct recipient each) sent by one `herald worker`\n", o.mem.jobs)
	w("(the e2e section's limits lifted, default cascade `white,sms`) to the simulator, on fresh servers. redis-server's\n")
	w("`used_memory` is read before any herald process starts and after they all stop (%s after the last send or webhook),\n", o.mem.settle)
	w("so that their connections are not counted; the growth of the Lua script cache (`used_memory_scripts`, a fixed cost)\n")
	w("is left out. The keys left are then scanned and summed by `MEMORY USAGE` (every element sampled) per kind of key.\n")
	w("JetStream figures are each stream's last sequence (messages published) and stored bytes, before and after.\n")
	w("Redis commands are read from a `MONITOR` connection open for the round (every herald process's, the benchmark's\n")
	w("own reads left out), which tells a client's command from one a Lua script runs and names each one's first key.\n")
	if len(o.mem.env) > 0 {
		w("The worker and the API ran with `%s`.\n", strings.Join(o.mem.env, " "))
	}
	w("\n")
	for _, v := range vs {
		w("- **%s**: %s.\n", v.name, v.desc)
	}
	w("\n| figure | %s | goal |\n| --- |%s --- |\n", strings.Join(variantNames(vs), " | "), strings.Repeat(" --- |", len(vs)))
	row := func(label, goalText string, f func(r memRound) float64, format string) {
		w("| %s |", label)
		for _, v := range vs {
			w(" "+format+" |", col(by[v.name], f))
		}
		w(" %s |\n", goalText)
	}
	// The goal is for a finished notification: the last column is the most finished.
	last := col(by[vs[len(vs)-1].name], memRound.usedPerJob)
	row("Redis used_memory per notification, bytes", fmt.Sprintf("%s ≤ %d: %s", vs[len(vs)-1].name, memGoal, goal(last <= memGoal)), memRound.usedPerJob, "%.0f")
	row("Redis keys' MEMORY USAGE per notification, bytes", "", memRound.keyBytesPerJob, "%.0f")
	row("Redis keys left per notification", "", func(r memRound) float64 { return r.perJob(r.keysAfter - r.keysBefore) }, "%.2f")
	row("Redis commands sent by clients per notification (a script call is one)", "", func(r memRound) float64 { return r.callsPerJob(false) }, "%.1f")
	row("of which script calls (EVALSHA, EVAL)", "", memRound.scriptCallsPerJob, "%.1f")
	row("Redis commands run inside those scripts per notification", "", func(r memRound) float64 { return r.callsPerJob(true) }, "%.1f")
	row("JetStream bytes still stored per notification", "", memRound.streamBytesPerJob, "%.0f")
	row("JetStream messages published per notification", "", func(r memRound) float64 {
		var n int64
		for _, s := range r.streams {
			n += s.published
		}
		return r.perJob(n)
	}, "%.2f")
	w("\n")
	for _, v := range vs {
		renderMemVariant(b, v, memMedianRound(by[v.name]))
	}
}

func variantNames(vs []memVariant) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.name
	}
	return out
}

// renderMemVariant writes one round's breakdowns: Redis by kind of key, JetStream by stream,
// Redis calls by command.
func renderMemVariant(b *strings.Builder, v memVariant, r memRound) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("**%s** (the median round: %d jobs, Redis used_memory %s → %s, %d → %d keys", v.name, r.jobs,
		kib(r.usedBefore), kib(r.usedAfter), r.keysBefore, r.keysAfter)
	if r.webhooks > 0 {
		w(", %d statuses delivered", r.webhooks)
	}
	w("):\n\n| Redis key | keys | per notification | bytes per key | bytes per notification |\n| --- | --- | --- | --- | --- |\n")
	for _, c := range r.classes {
		w("| `%s` | %d | %.2f | %.0f | %.1f |\n", c.class, c.keys, r.perJob(c.keys), float64(c.bytes)/float64(max(c.keys, 1)), r.perJob(c.bytes))
	}
	w("\n| JetStream stream | messages published per notification | messages stored at the end | bytes stored per notification |\n| --- | --- | --- | --- |\n")
	for _, s := range r.streams {
		w("| %s | %.2f | %d | %.1f |\n", s.name, r.perJob(s.published), s.msgs, r.perJob(s.bytes))
	}
	w("\n| Redis command (first key) | sent by | per notification |\n| --- | --- | --- |\n")
	for _, c := range sortedCalls(r.calls) {
		by := "a client"
		if c.script {
			by = "a script"
		}
		w("| `%s` | %s | %.2f |\n", c, by, r.perJob(r.calls[c]))
	}
	w("\n")
}

func kib(b int64) string { return strconv.FormatInt(b>>10, 10) + " KiB" }
