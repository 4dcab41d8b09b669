package health

import (
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/grey"
)

// Health values of a [Status], from best to worst news.
const (
	// HealthUnknown: no news of the sender yet.
	HealthUnknown = "unknown"
	// HealthOK: the latest news is good.
	HealthOK = "ok"
	// HealthDegraded: a warning (a tier downgrade, a ban scheduled, a yellow card).
	HealthDegraded = "degraded"
	// HealthDown: restricted, banned, blocked, not authorized or refused.
	HealthDown = "down"
)

// Quality ratings of a white number, as Meta names them.
const (
	QualityGreen  = "GREEN"
	QualityYellow = "YELLOW"
	QualityRed    = "RED"
)

// Grey breaker states a [Status] reports, as the workers' circuit breakers read a state.
const (
	BreakerOpen   = "open"
	BreakerClosed = "closed"
)

// Status is what is known of one sender's health now, and whether jobs may go to it.
type Status struct {
	Sender string `json:"sender"`
	// Health is HealthOK, HealthDegraded, HealthDown or HealthUnknown.
	Health string `json:"health"`
	// Usable is false while the sender is out of its pools: its jobs go to the others.
	Usable bool `json:"usable"`
	// Quality is a white number's rating (QualityRed after FLAGGED, QualityGreen after
	// UNFLAGGED); "" when not known.
	Quality string `json:"quality,omitempty"`
	// Reason says why the sender is unusable or degraded ("" when ok).
	Reason string `json:"reason,omitempty"`
	// Breaker is a grey instance's breaker as its state sets it (open, closed; "" unknown).
	Breaker string `json:"breaker,omitempty"`
	// Until is when an unusable sender comes back by itself (a restriction's expiry, a
	// refusal's end); zero when it waits for news.
	Until time.Time `json:"until,omitzero"`
	// At is the time of the latest event judged.
	At time.Time `json:"at,omitzero"`
}

// Fleet kinds Judge knows (those of internal/fleet); "" judges whatever events there are.
const (
	kindWhite = "white"
	kindGrey  = "grey"
)

// verdict is one event's contribution to a Status.
type verdict struct {
	health string
	usable bool
	reason string
	until  time.Time
}

var healthRank = map[string]int{HealthUnknown: 0, HealthOK: 1, HealthDegraded: 2, HealthDown: 3}

// Judge decides a sender's Status from its latest events by kind (those of [Store.Latest])
// at now. kind is the sender's fleet kind (white, grey, sms): events of another kind's are
// ignored; "" reads every event (a [Watcher] knows ids only, and a sender only ever gets
// events of its kind).
//
// A white number leaves its pool while its quality is RED (FLAGGED and no later UNFLAGGED)
// or its account is restricted (until the restrictions expire), banned (DISABLED_UPDATE
// other than REINSTATE or SCHEDULE_FOR_DISABLE), in violation or deleted, as the latest
// account update of those kinds ([KindStanding]) says. A grey instance
// leaves while it is blocked, notAuthorized, on a yellowCard or in sleepMode. Any sender
// leaves while a worker's refusal ([KindRefused]) lasts.
func Judge(sender, kind string, events map[string]Event, now time.Time) Status {
	st := Status{Sender: sender, Health: HealthUnknown, Usable: true}
	var vs []verdict
	seen := func(e Event) {
		if e.At.After(st.At) {
			st.At = e.At
		}
	}
	if e, ok := events[KindRefused]; ok {
		seen(e)
		if now.Before(e.Until) {
			vs = append(vs, verdict{HealthDown, false, "refused " + e.Event + withDetail(e.Detail), e.Until})
		}
	}
	if kind == "" || kind == kindWhite {
		standing, hasStanding := events[KindStanding]
		if e, ok := events[KindAccount]; ok {
			seen(e)
			if !hasStanding && setsStanding(e.Event) {
				standing, hasStanding = e, true // recorded before the standing was kept apart
			}
			vs = append(vs, verdict{health: HealthOK, usable: true})
		}
		if hasStanding {
			seen(standing)
			vs = append(vs, judgeAccount(standing, now))
		}
		flag, hasFlag := events[KindFlag]
		if q, ok := events[KindQuality]; ok {
			seen(q)
			if !hasFlag && (q.Event == EventFlagged || q.Event == EventUnflagged) {
				flag, hasFlag = q, true // recorded before the flag was kept apart
			}
			v := verdict{health: HealthOK, usable: true}
			if q.Event == EventDowngrade {
				v = verdict{HealthDegraded, true, "tier downgraded to " + q.Limit, time.Time{}}
			}
			vs = append(vs, v)
		}
		if hasFlag {
			seen(flag)
			switch flag.Event {
			case EventFlagged:
				st.Quality = QualityRed
				vs = append(vs, verdict{HealthDown, false, "quality RED (FLAGGED)", time.Time{}})
			case EventUnflagged:
				st.Quality = QualityGreen
				vs = append(vs, verdict{health: HealthOK, usable: true})
			}
		}
	}
	if kind == "" || kind == kindGrey {
		if e, ok := events[KindGreyState]; ok {
			seen(e)
			v, breaker := judgeGreyState(e.Event)
			st.Breaker = breaker
			vs = append(vs, v)
		}
	}
	var reasons []string
	var until time.Time
	waitsForNews := false
	for _, v := range vs {
		if healthRank[v.health] > healthRank[st.Health] {
			st.Health = v.health
		}
		if v.reason != "" && (v.health == HealthDegraded || !v.usable) {
			reasons = append(reasons, v.reason)
		}
		if !v.usable {
			st.Usable = false
			if v.until.IsZero() {
				waitsForNews = true
			} else if v.until.After(until) {
				until = v.until
			}
		}
	}
	if !st.Usable && !waitsForNews {
		st.Until = until
	}
	st.Reason = strings.Join(reasons, "; ")
	return st
}

// judgeAccount reads an account_update.
func judgeAccount(e Event, now time.Time) verdict {
	switch e.Event {
	case EventAccountRestriction:
		if !e.Until.IsZero() && !now.Before(e.Until) {
			return verdict{health: HealthOK, usable: true} // expired
		}
		return verdict{HealthDown, false, "account restricted" + withDetail(e.Detail), e.Until}
	case EventDisabledUpdate:
		switch e.Ban {
		case BanReinstate:
			return verdict{health: HealthOK, usable: true}
		case BanScheduled:
			return verdict{HealthDegraded, true, "ban scheduled" + withDetail(e.Detail), time.Time{}}
		}
		return verdict{HealthDown, false, "account banned" + withDetail(e.Detail), time.Time{}}
	case EventAccountViolation:
		return verdict{HealthDown, false, "account violation" + withDetail(e.Detail), time.Time{}}
	case EventAccountDeleted:
		return verdict{HealthDown, false, "account deleted", time.Time{}}
	}
	return verdict{health: HealthOK, usable: true}
}

// judgeGreyState reads a grey state as the workers' breakers do: a state in which the
// instance cannot deliver opens it.
func judgeGreyState(state string) (verdict, string) {
	switch state {
	case grey.StateNotAuthorized, grey.StateBlocked, grey.StateSleepMode:
		return verdict{HealthDown, false, "grey instance " + state, time.Time{}}, BreakerOpen
	case grey.StateYellowCard:
		return verdict{HealthDegraded, false, "grey instance " + state, time.Time{}}, BreakerOpen
	case grey.StateAuthorized:
		return verdict{health: HealthOK, usable: true}, BreakerClosed
	}
	return verdict{health: HealthUnknown, usable: true}, ""
}

func withDetail(d string) string {
	if d == "" {
		return ""
	}
	return " (" + d + ")"
}
