package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/consent"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
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
	// The customer answers a number, so the word is for every tenant that sends from it.
	for _, tenant := range s.numberTenants(ctx) {
		ev := consent.Event{Phone: from, Action: action, Scope: tenant, Source: source, Ref: ref, At: at.UTC()}
		outcome, err := s.cfg.Consent.Record(ctx, ev)
		if err != nil {
			s.log.Warn("opt-out not recorded", "from", phone.Mask(from), "action", action, "tenant", tenant, "err", err)
			return false
		}
		s.log.Info("recipient opt-out", "from", phone.Mask(from), "action", action, "tenant", tenant, "source", source, "outcome", outcome.String())
	}
	return true
}

// tenantsOfNumber is every tenant that sends from the deployment's numbers: with the
// HERALD_* variables alone, one WhatsApp number, one grey instance and one SMS account serve
// every tenant (the default one and each of HERALD_API_KEYS), so a customer's STOP to them
// is for all of those tenants.
func (s *Server) tenantsOfNumber() []string {
	seen := map[string]bool{job.DefaultTenant: true}
	out := []string{job.DefaultTenant}
	for _, t := range s.cfg.Keys {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	slices.Sort(out[1:])
	return out
}

// userPreference records Meta's user_preferences: a customer who stops marketing messages
// is suppressed for marketing templates, by every tenant sending from the number, until they
// resume.
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
	for _, tenant := range s.numberTenants(ctx) {
		ev := consent.Event{Phone: from, Action: action, Category: consent.CategoryMarketing, Scope: tenant, Source: "user_preferences:white",
			Ref: p.Value + ":" + strconv.FormatInt(at.Unix(), 10), At: at.UTC()}
		outcome, err := s.cfg.Consent.Record(ctx, ev)
		if err != nil {
			s.log.Warn("marketing preference not recorded", "from", phone.Mask(from), "value", p.Value, "tenant", tenant, "err", err)
			return false
		}
		s.log.Info("recipient marketing preference", "from", phone.Mask(from), "action", action, "tenant", tenant, "outcome", outcome.String())
	}
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
	// Tenant is whose list it is; "" (with Scope "deployment") the deployment-wide list.
	Tenant string `json:"tenant,omitempty"`
	Scope  string `json:"scope,omitempty"`
	// Category is "marketing" for a marketing preference, absent for every message.
	Category   string `json:"category,omitempty"`
	Suppressed bool   `json:"suppressed"`
	// MarketingSuppressed (GET only) tells whether the number stopped marketing messages.
	MarketingSuppressed *bool `json:"marketing_suppressed,omitempty"`
	// By and At (GET only) say who made the latest change and when.
	By string     `json:"by,omitempty"`
	At *time.Time `json:"at,omitempty"`
}

// scopeDeployment names the deployment-wide list in ?scope=: it silences every tenant, so
// only an operator changes it.
const scopeDeployment = "deployment"

// suppress and unsuppress change the caller's tenant's consent list (POST/DELETE
// /v1/suppressions/{phone}; ?category=marketing for marketing messages only;
// ?scope=deployment for the deployment-wide list, operators only); GET tells the current
// state of both for the tenant (the deployment-wide list included).
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
	scope := tenantOf(r)
	switch r.URL.Query().Get("scope") {
	case "":
	case scopeDeployment:
		if !isOperator(r) {
			writeError(w, http.StatusForbidden, "scope: the deployment-wide list silences every tenant; only an operator key (HERALD_ADMIN_KEYS) changes it")
			return
		}
		scope = ""
	default:
		writeError(w, http.StatusBadRequest, "scope: must be empty (the tenant's list) or deployment")
		return
	}
	ev := consent.Event{Phone: p, Action: action, Category: category, Scope: scope, Source: actor(r), At: s.cfg.Now().UTC()}
	if _, err := s.cfg.Consent.Record(r.Context(), ev); err != nil {
		s.log.Warn("suppression not recorded", "phone", phone.Mask(p), "err", err)
		writeError(w, http.StatusServiceUnavailable, "not recorded; retry")
		return
	}
	res := suppression{Phone: p, Tenant: scope, Category: category, Suppressed: action == consent.Stop}
	if scope == "" {
		res.Scope = scopeDeployment
	}
	writeJSON(w, http.StatusOK, res)
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
	tenant := tenantOf(r)
	sup, err := s.cfg.Consent.Suppressed(r.Context(), tenant, p)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "suppression list unavailable")
		return
	}
	mkt, err := s.cfg.Consent.MarketingSuppressed(r.Context(), tenant, p)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "suppression list unavailable")
		return
	}
	res := suppression{Phone: p, Tenant: tenant, Suppressed: sup, MarketingSuppressed: &mkt}
	if ev, err := s.cfg.Consent.Latest(r.Context(), tenant, p); err == nil && ev != nil {
		res.By, res.At = ev.Source, &ev.At
	}
	writeJSON(w, http.StatusOK, res)
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
