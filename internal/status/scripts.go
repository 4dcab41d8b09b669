package status

import (
	"context"
	_ "embed" // the Lua scripts

	"github.com/redis/go-redis/v9"
)

// Every change to a notification record is one of the Lua scripts in lua/, so that a worker,
// a redelivered copy of the same job and a webhook never interleave half-way. Records are
// JSON documents (cjson) holding the state, the current channel, the claim and the history;
// claim times come from redis TIME so that every worker agrees on them.
//
// A script is common.lua followed by its own file, whose header lists its KEYS and ARGV by
// position and name. Its args type is the only place the Go side orders them: keys and argv
// build the lists, and each field's lua tag is the header name it fills
// (TestScriptArgsOrder checks that the two agree).

var (
	//go:embed lua/common.lua
	luaCommon string
	//go:embed lua/begin.lua
	luaBegin string
	//go:embed lua/attempt.lua
	luaAttempt string
	//go:embed lua/settle.lua
	luaSettle string
	//go:embed lua/status.lua
	luaStatus string
	//go:embed lua/create.lua
	luaCreate string
	//go:embed lua/retire.lua
	luaRetire string
)

var (
	scriptBegin   = redis.NewScript(luaCommon + luaBegin)
	scriptAttempt = redis.NewScript(luaCommon + luaAttempt)
	scriptSettle  = redis.NewScript(luaCommon + luaSettle)
	scriptStatus  = redis.NewScript(luaCommon + luaStatus)
	scriptCreate  = redis.NewScript(luaCommon + luaCreate)
	scriptRetire  = redis.NewScript(luaCommon + luaRetire)
)

// scriptArgs is what every args type below provides: its script and the KEYS and ARGV
// lists in the order of the script's header.
type scriptArgs interface {
	script() *redis.Script
	keys() []string
	argv() []any
}

// run runs a's script with its KEYS and ARGV through sc.
func run(ctx context.Context, sc redis.Scripter, a scriptArgs) *redis.Cmd {
	return a.script().Run(ctx, sc, a.keys(), a.argv()...)
}

// boolArg is a flag as the scripts test it: '1' or '0'.
func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// beginArgs are the KEYS and ARGV of begin.lua.
type beginArgs struct {
	// KEYS
	Record           string `lua:"record"`
	Suppressed       string `lua:"suppressed"`
	Window           string `lua:"window"`
	TenantSuppressed string `lua:"tenant_suppressed"`
	Marketing        string `lua:"marketing"`
	MarketingAll     string `lua:"marketing_all"`
	Done             string `lua:"done"`

	// ARGV
	Owner   string `lua:"owner"`
	LeaseMS int64  `lua:"lease_ms"`
	// Initial is the JSON of the record to start from when there is none.
	Initial []byte `lua:"initial"`
	To      string `lua:"to"`
	TTLMS   int64  `lua:"ttl_ms"`
	Now     string `lua:"now"`
	Replay  bool   `lua:"replay"`
	// CheckIdx is "" for a plain delivery, else the cascade index a fallback check is on.
	CheckIdx       string `lua:"check_idx"`
	Deadline       bool   `lua:"deadline"`
	DeadlineReason string `lua:"deadline_reason"`
	// IsMarketing makes the marketing sets count (a marketing template message).
	IsMarketing bool `lua:"is_marketing"`
	// Restored is the history's copy of the record a replay starts from once the record
	// left Redis (a failed or rejected job); empty otherwise.
	Restored string `lua:"restored"`
}

func (a *beginArgs) script() *redis.Script { return scriptBegin }

func (a *beginArgs) keys() []string {
	return []string{a.Record, a.Suppressed, a.Window, a.TenantSuppressed, a.Marketing, a.MarketingAll, a.Done}
}

func (a *beginArgs) argv() []any {
	return []any{a.Owner, a.LeaseMS, a.Initial, a.To, a.TTLMS, a.Now, boolArg(a.Replay),
		a.CheckIdx, boolArg(a.Deadline), a.DeadlineReason, boolArg(a.IsMarketing), a.Restored}
}

// attemptArgs are the KEYS and ARGV of attempt.lua.
type attemptArgs struct {
	// KEYS
	Record  string `lua:"record"`
	Message string `lua:"message"`

	// ARGV
	Owner             string `lua:"owner"`
	Mode              Mode   `lua:"mode"`
	Channel           string `lua:"channel"`
	ChannelIdx        int    `lua:"channel_idx"`
	ProviderMessageID string `lua:"provider_message_id"`
	Code              string `lua:"code"`
	Reason            string `lua:"reason"`
	Now               string `lua:"now"`
	TTLMS             int64  `lua:"ttl_ms"`
	Attempts          int    `lua:"attempts"`
	JobRef            string `lua:"job_ref"`
	NextChannel       string `lua:"next_channel"`
	Segments          int    `lua:"parts"`
	DeadLetter        string `lua:"dlq"`
}

func (a *attemptArgs) script() *redis.Script { return scriptAttempt }

func (a *attemptArgs) keys() []string { return []string{a.Record, a.Message} }

func (a *attemptArgs) argv() []any {
	return []any{a.Owner, string(a.Mode), a.Channel, a.ChannelIdx, a.ProviderMessageID, a.Code, a.Reason,
		a.Now, a.TTLMS, a.Attempts, a.JobRef, a.NextChannel, a.Segments, a.DeadLetter}
}

// settleArgs are the KEYS and ARGV of settle.lua.
type settleArgs struct {
	// KEYS
	Record string `lua:"record"`
	Done   string `lua:"done"`

	// ARGV
	Owner string `lua:"owner"`
	// State is the final state, or "" to release Owner's claim only.
	State  string `lua:"state"`
	Reason string `lua:"reason"`
	Now    string `lua:"now"`
	TTLMS  int64  `lua:"ttl_ms"`
	// Initial is the JSON of the record to start from when there is none.
	Initial []byte `lua:"initial"`
}

func (a *settleArgs) script() *redis.Script { return scriptSettle }

func (a *settleArgs) keys() []string { return []string{a.Record, a.Done} }

func (a *settleArgs) argv() []any {
	return []any{a.Owner, a.State, a.Reason, a.Now, a.TTLMS, a.Initial}
}

// statusArgs are the KEYS and ARGV of status.lua.
type statusArgs struct {
	// KEYS
	Record string `lua:"record"`

	// ARGV
	MessageID string `lua:"message_id"`
	State     string `lua:"state"`
	Code      string `lua:"code"`
	Reason    string `lua:"reason"`
	Now       string `lua:"now"`
	TTLMS     int64  `lua:"ttl_ms"`
	Fallback  bool   `lua:"fallback"`
	Channel   string `lua:"channel"`
	// Archived is the record JSON from the history bucket when Redis has none.
	Archived string `lua:"archived"`
}

func (a *statusArgs) script() *redis.Script { return scriptStatus }

func (a *statusArgs) keys() []string { return []string{a.Record} }

func (a *statusArgs) argv() []any {
	return []any{a.MessageID, a.State, a.Code, a.Reason, a.Now, a.TTLMS, boolArg(a.Fallback), a.Channel, a.Archived}
}

// createArgs are the KEYS and ARGV of create.lua.
type createArgs struct {
	// KEYS
	Record string `lua:"record"`
	Done   string `lua:"done"`

	// ARGV
	Initial []byte `lua:"initial"`
	TTLMS   int64  `lua:"ttl_ms"`
	// Campaign is the counters' key (CampaignKey), "" for a record of no campaign.
	Campaign string `lua:"campaign"`
	State    string `lua:"state"`
}

func (a *createArgs) script() *redis.Script { return scriptCreate }

func (a *createArgs) keys() []string { return []string{a.Record, a.Done} }

func (a *createArgs) argv() []any { return []any{a.Initial, a.TTLMS, a.Campaign, a.State} }

// retireArgs are the KEYS and ARGV of retire.lua.
type retireArgs struct {
	// KEYS
	Record string `lua:"record"`
	Done   string `lua:"done"`

	// ARGV
	Archived string `lua:"archived"`
	HotMS    int64  `lua:"hot_ms"`
	TTLMS    int64  `lua:"ttl_ms"`
	State    string `lua:"state"`
}

func (a *retireArgs) script() *redis.Script { return scriptRetire }

func (a *retireArgs) keys() []string { return []string{a.Record, a.Done} }

func (a *retireArgs) argv() []any { return []any{a.Archived, a.HotMS, a.TTLMS, a.State} }
