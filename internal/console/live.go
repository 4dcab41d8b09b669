package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/campaign"
)

// maxLiveCampaigns bounds the campaigns whose progress the list pushes: the newest ones,
// each an API read per tick.
const maxLiveCampaigns = 50

// dlqEvery is how many ticks apart the overview re-reads the DLQ (the tenant's letters are
// counted by reading them).
const dlqEvery = 5

// channelUse is a channel's sends of the last second against the sum of its senders' caps.
type channelUse struct {
	Name  string  `json:"name"`
	Sends int     `json:"sends"`
	Cap   float64 `json:"cap"`
}

// senderUse is one sender's line of the overview.
type senderUse struct {
	ID      string  `json:"id"`
	Kind    string  `json:"kind"`
	Health  string  `json:"health"`
	Breaker string  `json:"breaker,omitempty"`
	Usable  bool    `json:"usable"`
	Sends   int     `json:"sends"`
	Cap     float64 `json:"cap"`
}

// overview is the overview's figures, rendered first and then pushed each tick.
type overview struct {
	At           time.Time    `json:"at"`
	Channels     []channelUse `json:"channels"`
	Senders      []senderUse  `json:"senders"`
	Lanes        []lane       `json:"lanes"`
	DLQ          int          `json:"dlq"`
	FailedHour   int          `json:"failed_hour"`
	DLQKnown     bool         `json:"dlq_known"`
	SendersError string       `json:"senders_error,omitempty"`
}

func (h *handlers) overviewNow(ctx context.Context, u *user, withDLQ bool, prev *overview) overview {
	o := overview{At: h.c.cfg.Now().UTC(), Lanes: h.lanes(ctx)}
	var res struct {
		Data []api.SenderView `json:"senders"`
	}
	if _, err := h.callAPI(ctx, u, http.MethodGet, "/v1/senders", nil, &res); err != nil {
		o.SendersError = err.Error()
	}
	byKind := map[string]*channelUse{}
	for _, s := range res.Data {
		su := senderUse{ID: s.ID, Kind: s.Kind, Health: s.Health, Breaker: s.Breaker, Usable: s.Usable, Cap: s.MPS}
		if s.Use != nil && s.Use.Sends1s != nil {
			su.Sends = *s.Use.Sends1s
		}
		o.Senders = append(o.Senders, su)
		c := byKind[s.Kind]
		if c == nil {
			c = &channelUse{Name: s.Kind}
			byKind[s.Kind] = c
		}
		c.Sends += su.Sends
		c.Cap += su.Cap
	}
	for _, c := range byKind {
		o.Channels = append(o.Channels, *c)
	}
	sort.Slice(o.Channels, func(i, j int) bool { return o.Channels[i].Name < o.Channels[j].Name })
	if withDLQ {
		rows, err := h.letters(ctx, u, dlqFilter{})
		if err == nil {
			o.DLQKnown = true
			o.DLQ = len(rows)
			hour := o.At.Add(-time.Hour)
			for _, l := range rows {
				if l.At.After(hour) {
					o.FailedHour++
				}
			}
		}
	} else if prev != nil {
		o.DLQ, o.FailedHour, o.DLQKnown = prev.DLQ, prev.FailedHour, prev.DLQKnown
	}
	return o
}

func (h *handlers) overview(w http.ResponseWriter, r *http.Request, u *user) {
	o := h.overviewNow(r.Context(), u, true, nil)
	h.render(w, "overview", page{Title: "Overview", Nav: "overview", User: u, Data: o, Stream: "overview"})
}

// liveCampaign is one campaign's progress as pushed.
type liveCampaign struct {
	Name     string           `json:"name"`
	Percent  int              `json:"percent"`
	Done     int64            `json:"done"`
	Total    int64            `json:"total"`
	Rate     float64          `json:"rate"`
	ETA      string           `json:"eta"`
	Cost     float64          `json:"cost"`
	States   map[string]int64 `json:"states"`
	Channels map[string]int64 `json:"channels"`
	Canceled bool             `json:"canceled"`
}

func live(s campaignSummary) liveCampaign {
	return liveCampaign{Name: s.Name, Percent: s.Percent, Done: s.Done, Total: s.Total, Rate: s.Rate, ETA: s.ETA,
		Cost: s.View.Total, States: s.States, Channels: s.View.Channels, Canceled: s.Canceled != nil}
}

// events streams a topic's figures as server-sent events, one "data:" JSON per tick, until
// the browser goes away: "overview", "campaigns" or "campaign:<name>".
func (h *handlers) events(w http.ResponseWriter, r *http.Request, u *user) {
	topic := r.URL.Query().Get("topic")
	if topic != "overview" && topic != "campaigns" && !strings.HasPrefix(topic, "campaign:") {
		http.Error(w, "topic: must be overview, campaigns or campaign:<name>", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	ctx := r.Context()
	t := time.NewTicker(h.c.cfg.Tick)
	defer t.Stop()
	var prev *overview
	for tick := 0; ; tick++ {
		var v any
		switch {
		case topic == "overview":
			o := h.overviewNow(ctx, u, tick%dlqEvery == 0, prev)
			prev, v = &o, o
		case topic == "campaigns":
			views, _ := h.campaignViews(ctx, u)
			if len(views) > maxLiveCampaigns {
				views = views[:maxLiveCampaigns]
			}
			out := make([]liveCampaign, 0, len(views))
			for _, s := range views {
				out = append(out, live(s))
			}
			v = out
		default:
			var cv campaign.View
			name := strings.TrimPrefix(topic, "campaign:")
			if _, err := h.callAPI(ctx, u, http.MethodGet, "/v1/campaigns/"+url.PathEscape(name), nil, &cv); err != nil {
				v = map[string]string{"error": err.Error()}
			} else {
				v = live(summarize(cv))
			}
		}
		b, _ := json.Marshal(v)
		// The server's write timeout would cut a long stream: each event gets its own.
		_ = rc.SetWriteDeadline(time.Now().Add(h.c.cfg.Tick + 10*time.Second))
		if _, err := w.Write(append(append([]byte("data: "), b...), '\n', '\n')); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
