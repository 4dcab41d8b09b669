package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/consent"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/webhook"
	"github.com/herald-notify/herald/internal/white"
)

// afterReport acts on a recorded status change: a failed report that moved the job to its
// next channel releases the parked job now; a delivered or read report cancels the delivery
// deadline. Both are optimisations over the deadline check itself (which re-reads the
// record), so an error here is logged, not returned.
func (s *Server) afterReport(ctx context.Context, rec *status.Record) {
	if s.cfg.JS == nil {
		return
	}
	switch {
	case rec.Resume && !status.Terminal(rec.State):
		if err := s.releaseFallback(ctx, rec); err != nil {
			s.log.Warn("fallback not released now; the delivery deadline will carry it", "job", rec.ID, "err", err)
		}
	case rec.State == status.Delivered || rec.State == status.Read:
		if rec.ChannelIdx+1 >= len(rec.Channels) {
			return
		}
		// Cancelled in the background, a bounded number at a time, so the webhook answers
		// at once; when too many are in progress it is left to fire and find the job
		// delivered (a no-op check).
		select {
		case s.purges <- struct{}{}:
		default:
			return
		}
		id, ref := rec.ID, rec.Ref()
		go func() {
			defer func() { <-s.purges }()
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := s.purge(pctx, streams.DeadlineSubject(ref)); err != nil {
				s.log.Debug("delivery deadline not cancelled; it will find the job delivered", "job", id, "err", err)
			}
		}()
	}
}

func (s *Server) jobsStream(ctx context.Context) (jetstream.Stream, error) {
	return s.cfg.JS.Stream(ctx, streams.JobsStream)
}

func (s *Server) purge(ctx context.Context, subject string) error {
	st, err := s.jobsStream(ctx)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(subject))
}

// releaseFallback re-publishes the job parked under its delivery deadline as a fallback
// check, then removes the schedule.
func (s *Server) releaseFallback(ctx context.Context, rec *status.Record) error {
	st, err := s.jobsStream(ctx)
	if err != nil {
		return err
	}
	subj := streams.DeadlineSubject(rec.Ref())
	raw, err := st.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return errors.New("no parked job (the deadline fired already, or it was never scheduled)")
	}
	if err != nil {
		return err
	}
	target := raw.Header.Get(streams.HeaderScheduleTarget)
	if target == "" {
		target = streams.SubjectFor(rec.Priority)
	}
	m := &nats.Msg{Subject: target, Data: raw.Data, Header: nats.Header{}}
	for k, v := range raw.Header {
		if !strings.HasPrefix(k, "Nats-") {
			m.Header[k] = v
		}
	}
	idx := rec.ChannelIdx - 1
	m.Header.Set(streams.HeaderCheck, strconv.Itoa(idx))
	m.Header.Set(streams.HeaderDeadline, "0")
	m.Header.Set(streams.HeaderMsgID, "resume:"+rec.Ref()+":"+strconv.Itoa(idx))
	if _, err := s.cfg.JS.PublishMsg(ctx, m); err != nil {
		return err
	}
	s.log.Info("failed report: job released to its next channel", "job", rec.ID, "channel", rec.Channel)
	return st.Purge(ctx, jetstream.WithPurgeSubject(subj))
}

// whiteFallback classifies a failed Cloud API status report with the synchronous table:
// anything but a job-permanent error (the user stopped marketing messages, ...) moves the
// job to its next channel.
func whiteFallback(code string) bool {
	n, err := strconv.Atoi(code)
	if err != nil {
		return true
	}
	return white.Classify(http.StatusOK, n) != provider.Job
}

// optOut records a STOP or START word from an inbound message, ordered by the time the
// customer sent it (at; the API's clock when the provider gave none).
func (s *Server) optOut(ctx context.Context, source, from, ref, text string, at time.Time) bool {
	if s.cfg.Consent == nil {
		return true
	}
	action := s.words.Match(text)
	if action == "" {
		return true
	}
	if at.IsZero() {
		at = s.cfg.Now()
	}
	ev := consent.Event{Phone: from, Action: action, Source: source, Ref: ref, At: at.UTC()}
	outcome, err := s.cfg.Consent.Record(ctx, ev)
	if err != nil {
		s.log.Warn("opt-out not recorded", "from", phone.Mask(from), "action", action, "err", err)
		return false
	}
	s.log.Info("recipient opt-out", "from", phone.Mask(from), "action", action, "source", source, "outcome", outcome.String())
	return true
}

// userPreference records Meta's user_preferences: a customer who stops marketing messages
// is suppressed for marketing templates until they resume. Scope "" is the deployment's
// list (tenants will get their own).
func (s *Server) userPreference(ctx context.Context, p webhook.UserPreference) bool {
	if s.cfg.Consent == nil {
		return true
	}
	var action string
	switch {
	case p.Category != webhook.PreferenceMarketing:
	case p.Value == webhook.PreferenceStop:
		action = consent.Stop
	case p.Value == webhook.PreferenceResume:
		action = consent.Start
	}
	if action == "" {
		s.log.Info("user preference not understood; ignored", "category", p.Category, "value", p.Value)
		return true
	}
	from, ok := waNumber(p.WaID)
	if !ok {
		s.log.Warn("user preference of an unparsable number ignored", "from", phone.Mask(p.WaID))
		return true
	}
	at := p.At
	if at.IsZero() {
		at = s.cfg.Now()
	}
	ev := consent.Event{Phone: from, Action: action, Category: consent.CategoryMarketing, Source: "user_preferences:white",
		Ref: p.Value + ":" + strconv.FormatInt(at.Unix(), 10), At: at.UTC()}
	outcome, err := s.cfg.Consent.Record(ctx, ev)
	if err != nil {
		s.log.Warn("marketing preference not recorded", "from", phone.Mask(from), "value", p.Value, "err", err)
		return false
	}
	s.log.Info("recipient marketing preference", "from", phone.Mask(from), "action", action, "outcome", outcome.String())
	return true
}

// templateStatus applies message_template_status_update webhooks to the catalogue.
func (s *Server) templateStatus(ctx context.Context, ts webhook.TemplateStatus) bool {
	if s.cfg.KV == nil || ts.Name == "" || ts.Language == "" {
		return true
	}
	d, err := templates.SetStatus(ctx, s.cfg.KV, ts.Name, ts.Language, ts.Event)
	switch {
	case errors.Is(err, templates.ErrUnknownTemplate) || errors.Is(err, templates.ErrUnknownLanguage):
		s.log.Info("status update for a template not in the catalogue", "template", ts.Name, "language", ts.Language, "status", ts.Event)
		return true
	case err != nil:
		s.log.Warn("template status not recorded", "template", ts.Name, "err", err)
		return false
	}
	s.log.Info("template status changed", "template", d.Name, "language", d.Language, "status", d.Status, "reason", ts.Reason)
	return true
}

// phoneParam reads and normalises the {phone} path value.
func (s *Server) phoneParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	p, err := phone.Normalize(r.PathValue("phone"), s.cfg.Jobs.DefaultRegion)
	if err != nil {
		writeError(w, http.StatusBadRequest, "phone: "+err.Error())
		return "", false
	}
	return p, true
}

type suppression struct {
	Phone string `json:"phone"`
	// Category is "marketing" for a marketing preference, absent for every message.
	Category   string `json:"category,omitempty"`
	Suppressed bool   `json:"suppressed"`
	// MarketingSuppressed (GET only) tells whether the number stopped marketing messages.
	MarketingSuppressed *bool `json:"marketing_suppressed,omitempty"`
}

// suppress and unsuppress are the operators' opt-out controls (POST/DELETE
// /v1/suppressions/{phone}; ?category=marketing for marketing messages only); GET tells
// the current state of both.
func (s *Server) suppress(w http.ResponseWriter, r *http.Request) {
	s.setSuppression(w, r, consent.Stop)
}

func (s *Server) unsuppress(w http.ResponseWriter, r *http.Request) {
	s.setSuppression(w, r, consent.Start)
}

func (s *Server) setSuppression(w http.ResponseWriter, r *http.Request, action string) {
	p, ok := s.phoneParam(w, r)
	if !ok {
		return
	}
	category := r.URL.Query().Get("category")
	if category != "" && category != consent.CategoryMarketing {
		writeError(w, http.StatusBadRequest, "category: must be empty (every message) or marketing")
		return
	}
	if s.cfg.Consent == nil {
		writeError(w, http.StatusServiceUnavailable, "suppression list unavailable")
		return
	}
	ev := consent.Event{Phone: p, Action: action, Category: category, Source: "operator:" + tenantOf(r), At: s.cfg.Now().UTC()}
	if _, err := s.cfg.Consent.Record(r.Context(), ev); err != nil {
		s.log.Warn("suppression not recorded", "phone", phone.Mask(p), "err", err)
		writeError(w, http.StatusServiceUnavailable, "not recorded; retry")
		return
	}
	writeJSON(w, http.StatusOK, suppression{Phone: p, Category: category, Suppressed: action == consent.Stop})
}

func (s *Server) getSuppression(w http.ResponseWriter, r *http.Request) {
	p, ok := s.phoneParam(w, r)
	if !ok {
		return
	}
	if s.cfg.Consent == nil {
		writeError(w, http.StatusServiceUnavailable, "suppression list unavailable")
		return
	}
	sup, err := s.cfg.Consent.Suppressed(r.Context(), p)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "suppression list unavailable")
		return
	}
	mkt, err := s.cfg.Consent.MarketingSuppressed(r.Context(), "", p)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "suppression list unavailable")
		return
	}
	writeJSON(w, http.StatusOK, suppression{Phone: p, Suppressed: sup, MarketingSuppressed: &mkt})
}

type window struct {
	Phone string     `json:"phone"`
	Open  bool       `json:"open"`
	Until *time.Time `json:"until,omitempty"`
}

// getWindow answers GET /v1/windows/{phone}: is the 24-hour customer-service window open.
func (s *Server) getWindow(w http.ResponseWriter, r *http.Request) {
	p, ok := s.phoneParam(w, r)
	if !ok {
		return
	}
	// ?phone_number_id= names another business number of the account; default: this
	// deployment's (HERALD_WHITE_PHONE_NUMBER_ID).
	open, until, err := s.cfg.Store.Window(r.Context(), r.URL.Query().Get("phone_number_id"), p)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "window store unavailable")
		return
	}
	res := window{Phone: p, Open: open}
	if open {
		res.Until = &until
	}
	writeJSON(w, http.StatusOK, res)
}
