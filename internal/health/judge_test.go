package health

import (
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	ev := func(name string, at time.Time) Event { return Event{Event: name, At: at} }
	tests := []struct {
		name    string
		kind    string
		events  map[string]Event
		health  string
		usable  bool
		quality string
		breaker string
		reason  string
		until   time.Time
	}{
		{"no news", "white", nil, HealthUnknown, true, "", "", "", time.Time{}},
		{"flagged: quality RED, out", "white", map[string]Event{KindQuality: ev(EventFlagged, ago(time.Hour)), KindFlag: ev(EventFlagged, ago(time.Hour))},
			HealthDown, false, QualityRed, "", "quality RED (FLAGGED)", time.Time{}},
		{"flagged then downgraded: still RED", "white", map[string]Event{
			KindQuality: {Event: EventDowngrade, Limit: "TIER_250", At: ago(time.Minute)}, KindFlag: ev(EventFlagged, ago(time.Hour))},
			HealthDown, false, QualityRed, "", "tier downgraded to TIER_250; quality RED (FLAGGED)", time.Time{}},
		{"unflagged: back", "white", map[string]Event{KindQuality: ev(EventUnflagged, ago(time.Minute)), KindFlag: ev(EventUnflagged, ago(time.Minute))},
			HealthOK, true, QualityGreen, "", "", time.Time{}},
		{"flagged before the flag was kept apart", "", map[string]Event{KindQuality: ev(EventFlagged, ago(time.Hour))},
			HealthDown, false, QualityRed, "", "quality RED (FLAGGED)", time.Time{}},
		{"downgrade alone: degraded, usable", "white", map[string]Event{KindQuality: {Event: EventDowngrade, Limit: "TIER_250", At: ago(time.Hour)}},
			HealthDegraded, true, "", "", "tier downgraded to TIER_250", time.Time{}},
		{"upgrade: ok", "white", map[string]Event{KindQuality: ev("UPGRADE", ago(time.Hour))}, HealthOK, true, "", "", "", time.Time{}},
		{"restricted until tomorrow", "white", map[string]Event{KindAccount: {Event: EventAccountRestriction, Detail: "RESTRICTED_BIZ_INITIATED_MESSAGING", Until: now.Add(24 * time.Hour), At: ago(time.Hour)}},
			HealthDown, false, "", "", "account restricted (RESTRICTED_BIZ_INITIATED_MESSAGING)", now.Add(24 * time.Hour)},
		{"restriction expired", "white", map[string]Event{KindAccount: {Event: EventAccountRestriction, Until: ago(time.Second), At: ago(time.Hour)}},
			HealthOK, true, "", "", "", time.Time{}},
		{"restricted without expiry", "white", map[string]Event{KindAccount: ev(EventAccountRestriction, ago(time.Hour))},
			HealthDown, false, "", "", "account restricted", time.Time{}},
		{"banned", "white", map[string]Event{KindAccount: {Event: EventDisabledUpdate, Ban: "DISABLE", At: ago(time.Hour)}},
			HealthDown, false, "", "", "account banned", time.Time{}},
		{"ban scheduled: degraded", "white", map[string]Event{KindAccount: {Event: EventDisabledUpdate, Ban: BanScheduled, At: ago(time.Hour)}},
			HealthDegraded, true, "", "", "ban scheduled", time.Time{}},
		{"reinstated", "white", map[string]Event{KindAccount: {Event: EventDisabledUpdate, Ban: BanReinstate, At: ago(time.Hour)}},
			HealthOK, true, "", "", "", time.Time{}},
		{"restricted, then other account news: still restricted", "white", map[string]Event{
			KindAccount:  ev("VERIFIED_ACCOUNT", ago(time.Minute)),
			KindStanding: {Event: EventAccountRestriction, Until: now.Add(time.Hour), At: ago(time.Hour)}},
			HealthDown, false, "", "", "account restricted", now.Add(time.Hour)},
		{"other account news alone", "white", map[string]Event{KindAccount: ev("VERIFIED_ACCOUNT", ago(time.Minute))}, HealthOK, true, "", "", "", time.Time{}},
		{"violation", "white", map[string]Event{KindAccount: ev(EventAccountViolation, ago(time.Hour))}, HealthDown, false, "", "", "account violation", time.Time{}},
		{"restricted and flagged: waits for news", "white", map[string]Event{
			KindAccount: {Event: EventAccountRestriction, Until: now.Add(time.Hour), At: ago(time.Hour)}, KindFlag: ev(EventFlagged, ago(time.Hour))},
			HealthDown, false, QualityRed, "", "account restricted; quality RED (FLAGGED)", time.Time{}},
		{"refused for 10 minutes", "white", map[string]Event{KindRefused: {Event: "131031", Detail: "account locked", Until: now.Add(10 * time.Minute), At: ago(time.Second)}},
			HealthDown, false, "", "", "refused 131031 (account locked)", now.Add(10 * time.Minute)},
		{"refusal over", "sms", map[string]Event{KindRefused: {Event: "368", Until: ago(time.Millisecond), At: ago(time.Hour)}},
			HealthUnknown, true, "", "", "", time.Time{}},
		{"grey authorized", "grey", map[string]Event{KindGreyState: ev("authorized", ago(time.Minute))}, HealthOK, true, "", BreakerClosed, "", time.Time{}},
		{"grey blocked", "grey", map[string]Event{KindGreyState: ev("blocked", ago(time.Minute))}, HealthDown, false, "", BreakerOpen, "grey instance blocked", time.Time{}},
		{"grey not authorized", "grey", map[string]Event{KindGreyState: ev("notAuthorized", ago(time.Minute))}, HealthDown, false, "", BreakerOpen, "grey instance notAuthorized", time.Time{}},
		{"grey yellow card: degraded and out", "grey", map[string]Event{KindGreyState: ev("yellowCard", ago(time.Minute))}, HealthDegraded, false, "", BreakerOpen, "grey instance yellowCard", time.Time{}},
		{"grey sleep mode", "grey", map[string]Event{KindGreyState: ev("sleepMode", ago(time.Minute))}, HealthDown, false, "", BreakerOpen, "grey instance sleepMode", time.Time{}},
		{"grey starting: usable, unknown", "grey", map[string]Event{KindGreyState: ev("starting", ago(time.Minute))}, HealthUnknown, true, "", "", "", time.Time{}},
		{"a grey instance ignores white news", "grey", map[string]Event{KindFlag: ev(EventFlagged, ago(time.Minute))}, HealthUnknown, true, "", "", "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := Judge("s-1", tt.kind, tt.events, now)
			if st.Sender != "s-1" || st.Health != tt.health || st.Usable != tt.usable || st.Quality != tt.quality ||
				st.Breaker != tt.breaker || st.Reason != tt.reason || !st.Until.Equal(tt.until) {
				t.Errorf("Judge = %+v\nwant health %s usable %v quality %q breaker %q reason %q until %v",
					st, tt.health, tt.usable, tt.quality, tt.breaker, tt.reason, tt.until)
			}
			var latest time.Time
			for _, e := range tt.events {
				if e.At.After(latest) {
					latest = e.At
				}
			}
			if tt.kind != "grey" && !st.At.Equal(latest) {
				t.Errorf("At = %v, want the latest event's %v", st.At, latest)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		id string
		ok bool
	}{{"shop-msk", true}, {"default-white", true}, {"", false}, {"a.b", false}, {"a*", false}, {"a>", false}, {"A", false}, {string(make([]byte, 64)), false}} {
		if err := ValidID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
	}
}
