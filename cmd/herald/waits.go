package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/streams"
)

// waitReasons say, for a person, why a job is held: the reasons workers record (the
// Herald-Wait header of a hold, "<reason> until <time>" in a record) and send_at.
var waitReasons = map[string]string{
	"quiet_hours":     "quiet hours in the recipient's time zone (HERALD_QUIET_HOURS; bulk jobs only)",
	"rate":            "the sender's rate limit (HERALD_WHITE_MPS, HERALD_GREY_MPS)",
	"pair":            "the pause between two messages to one recipient (HERALD_PAIR_INTERVAL)",
	"recipient_daily": "the recipient's daily cap of bulk messages (HERALD_RECIPIENT_DAILY_MAX)",
	"sender_daily":    "the sender's daily cap (HERALD_GREY_DAILY_MAX)",
	"tier":            "the number's messaging tier: unique recipients per 24 h (HERALD_WHITE_DAILY_UNIQUE)",
	"penalty":         "a slow-down after the provider's throttling",
	"send_at":         "its send_at time",
}

// explainWait turns a held reason and its release time into a sentence.
func explainWait(reason string, until time.Time) string {
	why, ok := waitReasons[reason]
	if !ok {
		why = reason
	}
	if until.IsZero() {
		return "waiting for " + why
	}
	return fmt.Sprintf("waiting for %s until %s (%s, in %s)", why, until.UTC().Format(time.RFC3339),
		until.Local().Format("15:04 MST"), time.Until(until).Round(time.Second))
}

// recordWait explains why a record waits, from what it holds: a scheduled record's reason
// ("quiet_hours until 2026-11-25T06:00:00Z") or its send_at. "" when it does not wait.
func recordWait(rec map[string]any) string {
	state, _ := rec["state"].(string)
	if state != "scheduled" && state != "queued" {
		return ""
	}
	if r, _ := rec["reason"].(string); r != "" {
		reason, at, ok := strings.Cut(r, " until ")
		if t, err := time.Parse(time.RFC3339, at); ok && err == nil {
			return explainWait(reason, t)
		}
	}
	if s, _ := rec["send_at"].(string); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil && t.After(time.Now()) {
			return explainWait("send_at", t)
		}
	}
	return ""
}

// heldGroup is how many of a campaign's jobs wait for one reason, and until when.
type heldGroup struct {
	Reason string    `json:"reason"`
	Jobs   int       `json:"jobs"`
	First  time.Time `json:"first_release"`
	Last   time.Time `json:"last_release"`
}

// maxHeldScan bounds the schedules campaign show reads: a view, not an export.
const maxHeldScan = 50000

// campaignHeld reads the schedules that hold tenant's jobs (worker holds on
// herald.hold.wait.<tenant>.<id>, send_at schedules on herald.delayed.<tenant>.<id>) and
// groups those of campaign by reason, with their first and last release times. Reading is by
// direct get: the schedules stay where they are. scanned is how many were read (at most
// maxHeldScan).
func campaignHeld(ctx context.Context, js jetstream.JetStream, tenant, campaign string, now time.Time) (groups []heldGroup, scanned int, err error) {
	st, err := js.Stream(ctx, streams.JobsStream)
	if err != nil {
		return nil, 0, err
	}
	var subjects []string
	for _, filter := range []string{streams.SubjectHoldPrefix + "wait." + tenant + ".>", streams.SubjectDelayedPrefix + tenant + ".>"} {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return nil, 0, err
		}
		for s := range info.State.Subjects {
			subjects = append(subjects, s)
		}
	}
	slices.Sort(subjects)
	if len(subjects) > maxHeldScan {
		subjects = subjects[:maxHeldScan]
	}
	type held struct {
		reason string
		at     time.Time
	}
	found := make([]*held, len(subjects))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, subj := range subjects {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			m, err := st.GetLastMsgForSubject(ctx, subj)
			if err != nil {
				return // fired and gone since the listing
			}
			var j struct {
				Campaign string `json:"campaign"`
			}
			if json.Unmarshal(m.Data, &j) != nil || j.Campaign != campaign {
				return
			}
			at, err := time.Parse(time.RFC3339, strings.TrimPrefix(m.Header.Get(streams.HeaderSchedule), "@at "))
			if err != nil || !at.After(now) {
				return
			}
			reason := m.Header.Get(streams.HeaderWait)
			if reason == "" {
				reason = "send_at"
			}
			found[i] = &held{reason, at}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	by := map[string]*heldGroup{}
	for _, h := range found {
		if h == nil {
			continue
		}
		g := by[h.reason]
		if g == nil {
			g = &heldGroup{Reason: h.reason, First: h.at, Last: h.at}
			by[h.reason] = g
		}
		g.Jobs++
		if h.at.Before(g.First) {
			g.First = h.at
		}
		if h.at.After(g.Last) {
			g.Last = h.at
		}
	}
	for _, g := range by {
		groups = append(groups, *g)
	}
	slices.SortFunc(groups, func(a, b heldGroup) int { return b.Jobs - a.Jobs })
	return groups, len(subjects), nil
}
