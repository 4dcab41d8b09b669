package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/health"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/webhook"
)

// FleetKeys merges the API keys of a fleet's tenants into keys (key → tenant, from
// HERALD_API_KEYS) and returns the union. A key given to two different tenants is an error
// naming both (never the key): it could act for either.
func FleetKeys(f *fleet.Fleet, keys map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	for k, t := range keys {
		out[k] = t
	}
	var problems []string
	for _, name := range f.TenantNames() {
		for i, k := range f.Tenants[name].APIKeys {
			key := k.Reveal()
			if key == "" {
				continue
			}
			if other, ok := out[key]; ok && other != name {
				problems = append(problems, fmt.Sprintf("tenants.%s.api_keys[%d]: the same key as tenant %s's (HERALD_API_KEYS or the fleet file); a key belongs to one tenant", name, i, other))
				continue
			}
			out[key] = name
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// routedTenantsKey holds, in a webhook request's context, the tenants whose pools hold the
// sender the item in progress is routed to.
type routedTenantsKey struct{}

// withTenants returns r for a webhook item routed to a sender of these tenants.
func withTenants(r *http.Request, tenants []string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), routedTenantsKey{}, tenants))
}

// numberTenants is whom a customer's word (STOP, START, a marketing preference) in a webhook
// is for: the tenants whose pools hold the number or instance it came to, when the webhook
// was routed by the fleet; else every tenant of the deployment's one number
// (tenantsOfNumber).
func (s *Server) numberTenants(ctx context.Context) []string {
	if t, ok := ctx.Value(routedTenantsKey{}).([]string); ok {
		return t
	}
	return s.tenantsOfNumber()
}

// whiteRoute is where a verified Cloud API webhook goes, change by change: the senders of
// the fleet it named. nil (no fleet routing) sends everything to the deployment's number.
type whiteRoute struct {
	f *fleet.Fleet
	// numbers are the verified senders by phone_number_id, wabas the verified WABA ids.
	numbers map[string]fleet.Sender
	wabas   map[string]bool
	// unknown counts the changes that named no sender Herald knows.
	unknown int
}

// verifyWhite authenticates a Cloud API webhook body. Without fleet routing it is checked
// against HERALD_WHITE_APP_SECRET. With it, each change must be signed with the app secret
// of the sender it names (by metadata.phone_number_id; a quality or account event by its
// display number; a template or WABA-wide event by any sender of the entry's WABA): Meta
// signs a POST with one app's secret, so a body naming numbers of two apps is refused. A body
// that names no sender Herald knows is answered 200 and ignored. false: the answer is
// written.
func (s *Server) verifyWhite(w http.ResponseWriter, r *http.Request, body []byte) (*whiteRoute, bool) {
	sig := r.Header.Get("X-Hub-Signature-256")
	if s.cfg.Fleet == nil || !s.cfg.RouteByFleet {
		if err := webhook.Verify(s.cfg.WhiteAppSecret, body, sig); err != nil {
			s.webhookMetric(r, "whatsapp", "bad_signature")
			if errors.Is(err, webhook.ErrNoSecret) {
				s.log.Error("HERALD_WHITE_APP_SECRET is not set: Cloud API webhooks are refused")
			}
			writeError(w, http.StatusUnauthorized, "bad or missing X-Hub-Signature-256")
			return nil, false
		}
		return nil, true
	}
	f := s.cfg.Fleet
	targets, err := webhook.Targets(body)
	if err != nil {
		s.webhookMetric(r, "whatsapp", "malformed")
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	rt := &whiteRoute{f: f, numbers: map[string]fleet.Sender{}, wabas: map[string]bool{}}
	verified := map[fleet.Secret]bool{}
	checks := func(secret fleet.Secret) bool {
		ok, seen := verified[secret]
		if !seen {
			ok = webhook.Verify(secret.Reveal(), body, sig) == nil
			verified[secret] = ok
		}
		return ok
	}
	var unknownIDs []string
	for _, t := range targets {
		candidates := rt.candidates(t)
		if len(candidates) == 0 {
			rt.unknown++
			if t.PhoneNumberID != "" {
				unknownIDs = append(unknownIDs, t.PhoneNumberID)
			}
			continue
		}
		signed := -1
		for i, c := range candidates {
			if checks(c.AppSecret) {
				signed = i
				break
			}
		}
		if signed < 0 {
			s.webhookMetric(r, "whatsapp", "bad_signature")
			writeError(w, http.StatusUnauthorized, "bad or missing X-Hub-Signature-256: each change must be signed with the app secret of the number it names")
			return nil, false
		}
		if t.PhoneNumberID != "" {
			rt.numbers[t.PhoneNumberID] = candidates[signed]
		} else {
			rt.wabas[t.EntryID] = true
		}
	}
	if len(rt.numbers) == 0 && len(rt.wabas) == 0 {
		s.webhookMetric(r, "whatsapp", "unknown_number")
		slices.Sort(unknownIDs)
		s.log.Info("Cloud API webhook for no number of the fleet ignored", "phone_number_ids", slices.Compact(unknownIDs), "changes", len(targets))
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return nil, false
	}
	return rt, true
}

// candidates are the senders one change may be signed by: the number it names, else the
// senders of its WABA.
func (rt *whiteRoute) candidates(t webhook.Target) []fleet.Sender {
	if t.PhoneNumberID != "" {
		if s, ok := rt.f.SenderByPhoneNumberID(t.PhoneNumberID); ok {
			return []fleet.Sender{s}
		}
		return nil
	}
	if t.DisplayPhoneNumber != "" {
		if s, ok := rt.f.SenderByDisplayPhoneNumber(t.DisplayPhoneNumber); ok {
			return []fleet.Sender{s}
		}
	}
	return sendersOfWABA(rt.f, t.EntryID)
}

func sendersOfWABA(f *fleet.Fleet, waba string) []fleet.Sender {
	if waba == "" {
		return nil
	}
	var out []fleet.Sender
	for _, s := range f.Senders {
		if s.Kind == fleet.KindWhite && s.WABAID == waba {
			out = append(out, s)
		}
	}
	return out
}

// keep drops from b what no verified sender of the route is named by, and the statuses whose
// job belongs to no tenant of the number they came from (another tenant's app cannot report
// on a job): nothing else of the body is trusted.
func (rt *whiteRoute) keep(s *Server, r *http.Request, b *webhook.Batch) {
	if rt == nil {
		return
	}
	known := func(id string) bool { _, ok := rt.numbers[id]; return ok }
	dropped := rt.unknown
	sts := b.Statuses[:0]
	for _, st := range b.Statuses {
		if !known(st.PhoneNumberID) {
			continue
		}
		if ref := reportRef(st.BizOpaque); ref != "" {
			tenant, _, _ := job.SplitRef(ref)
			if !slices.Contains(rt.f.TenantsOf(rt.numbers[st.PhoneNumberID].ID), tenant) {
				s.log.Warn("status for another tenant's job ignored", "sender", rt.numbers[st.PhoneNumberID].ID, "tenant", tenant)
				dropped++
				continue
			}
		}
		sts = append(sts, st)
	}
	b.Statuses = sts
	b.Messages = slices.DeleteFunc(b.Messages, func(in webhook.Inbound) bool { return !known(in.PhoneNumberID) })
	b.UserPreferences = slices.DeleteFunc(b.UserPreferences, func(p webhook.UserPreference) bool { return !known(p.PhoneNumberID) })
	b.TemplateStatus = slices.DeleteFunc(b.TemplateStatus, func(ts webhook.TemplateStatus) bool { return !rt.wabas[ts.WABAID] })
	if dropped > 0 {
		s.webhookMetric(r, "whatsapp", "unknown_number")
	}
}

// request returns r for an item of the number with this phone_number_id: STOP and START
// words in it are for the tenants whose pools hold that number.
func (rt *whiteRoute) request(r *http.Request, phoneNumberID string) *http.Request {
	if rt == nil {
		return r
	}
	return withTenants(r, rt.f.TenantsOf(rt.numbers[phoneNumberID].ID))
}

// greyAuth reads and authenticates a grey webhook. Without fleet routing the token is
// HERALD_GREY_WEBHOOK_TOKEN, checked before the body is read. With it the body is read
// (bounded) to find instanceData.idInstance, and the token must be that instance's
// webhook_token: an instance the fleet does not know is answered 200 and ignored (GREEN-API
// resends anything else for a day). The request returned carries the instance's tenants.
// false: the answer is written.
func (s *Server) greyAuth(w http.ResponseWriter, r *http.Request) ([]byte, *http.Request, bool) {
	routed := s.cfg.Fleet != nil && s.cfg.RouteByFleet
	if !routed {
		if s.cfg.GreyWebhookToken == "" {
			s.noGreyToken.Do(func() {
				s.log.Error("HERALD_GREY_WEBHOOK_TOKEN is not set: grey gateway webhooks are refused")
			})
		}
		if s.cfg.GreyWebhookToken == "" || !bearerMatches(r, s.cfg.GreyWebhookToken) {
			s.webhookMetric(r, "grey", "unauthorized")
			writeError(w, http.StatusUnauthorized, "bad or missing Authorization")
			return nil, nil, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxGreyBody))
	if err != nil {
		s.webhookMetric(r, "grey", "too_large")
		writeError(w, http.StatusRequestEntityTooLarge, "body too large")
		return nil, nil, false
	}
	if !routed {
		return body, r, true
	}
	var peek struct {
		InstanceData struct {
			IDInstance json.RawMessage `json:"idInstance"`
		} `json:"instanceData"`
	}
	_ = json.Unmarshal(body, &peek)
	instance := strings.Trim(string(peek.InstanceData.IDInstance), `"`)
	sender, ok := s.cfg.Fleet.SenderByGreyInstance(instance)
	if !ok {
		s.webhookMetric(r, "grey", "unknown_instance")
		s.log.Info("grey webhook for an instance not in the fleet ignored", "instance", truncateID(instance))
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return nil, nil, false
	}
	if tok := sender.WebhookToken.Reveal(); tok == "" || !bearerMatches(r, tok) {
		s.webhookMetric(r, "grey", "unauthorized")
		writeError(w, http.StatusUnauthorized, "bad or missing Authorization: the instance's webhook_token")
		return nil, nil, false
	}
	return body, withTenants(r, s.cfg.Fleet.TenantsOf(sender.ID)), true
}

// truncateID bounds an unauthenticated id before it is logged.
func truncateID(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// numberEvents records the latest quality and account events of the numbers a verified
// webhook names, for GET /v1/senders. An event that names no number is about every sender
// of its WABA. false: not recorded, Meta should retry.
func (s *Server) numberEvents(r *http.Request, body []byte) bool {
	if s.cfg.Health == nil || s.cfg.Fleet == nil {
		return true
	}
	evs, err := webhook.ParseNumberEvents(body)
	if err != nil || len(evs) == 0 {
		return true
	}
	ok := true
	for _, ev := range evs {
		senders := sendersOfWABA(s.cfg.Fleet, ev.WABAID)
		if ev.DisplayPhoneNumber != "" {
			senders = nil
			if sn, found := s.cfg.Fleet.SenderByDisplayPhoneNumber(ev.DisplayPhoneNumber); found {
				senders = []fleet.Sender{sn}
			}
		}
		if len(senders) == 0 {
			if w := s.cfg.Fleet.Pool(job.DefaultTenant, fleet.KindWhite); !s.cfg.RouteByFleet && len(w) == 1 {
				senders = w // the deployment's one number (HERALD_* alone)
			}
		}
		for _, sn := range senders {
			s.log.Info("number health", "sender", sn.ID, "field", ev.Field, "event", ev.Event, "limit", ev.CurrentLimit,
				"display_phone_number", phone.Mask(ev.DisplayPhoneNumber))
			at := ev.At
			if at.IsZero() {
				at = s.cfg.Now()
			}
			he := health.Event{Event: ev.Event, Limit: ev.CurrentLimit, Detail: numberDetail(ev), Ban: ev.BanState,
				Until: restrictionEnd(ev), At: at.UTC()}
			if !s.reportHealth(r.Context(), sn, ev.Field, he) {
				ok = false
			}
		}
	}
	return ok
}

// numberDetail words what an event says beyond its name.
func numberDetail(ev webhook.NumberEvent) string {
	var parts []string
	if ev.OldLimit != "" {
		parts = append(parts, "was "+ev.OldLimit)
	}
	if ev.PortfolioLimit != "" {
		parts = append(parts, "portfolio "+ev.PortfolioLimit)
	}
	for _, r := range ev.Restrictions {
		p := r.Type
		if !r.Expires.IsZero() {
			p += " until " + r.Expires.Format("2006-01-02T15:04Z07:00")
		}
		parts = append(parts, p)
	}
	if ev.BanState != "" {
		parts = append(parts, "ban "+ev.BanState)
	}
	if ev.Violation != "" {
		parts = append(parts, "violation "+ev.Violation)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// recordGreyState records a grey instance's latest state for GET /v1/senders.
func (s *Server) recordGreyState(r *http.Request, instance, state string) {
	if s.cfg.Health == nil || s.cfg.Fleet == nil {
		return
	}
	sn, ok := s.cfg.Fleet.SenderByGreyInstance(instance)
	if !ok {
		return
	}
	s.reportHealth(r.Context(), sn, health.KindGreyState, health.Event{Event: state, At: s.cfg.Now().UTC()})
}

// reportHealth records a sender's health event and publishes its new Status to the workers
// (health.Reporter, which logs the change). false: not recorded. A Status not published
// is only logged: the workers read Redis within health.RefreshEvery.
func (s *Server) reportHealth(ctx context.Context, sn fleet.Sender, kind string, ev health.Event) bool {
	rep := &health.Reporter{Store: s.cfg.Health, Log: s.log, Now: s.cfg.Now}
	if s.cfg.NATS != nil {
		rep.Pub = s.cfg.NATS
	}
	_, err := rep.Report(ctx, sn.ID, sn.Kind, kind, ev)
	switch {
	case errors.Is(err, health.ErrNotPublished):
		s.log.Warn("sender status not published", "sender", sn.ID, "err", err)
	case err != nil:
		s.log.Warn("sender health not recorded", "sender", sn.ID, "kind", kind, "err", err)
		return false
	}
	return true
}

// restrictionEnd is when an account_update's restrictions all expire: zero when it has none
// or one without an expiry (restricted until further news).
func restrictionEnd(ev webhook.NumberEvent) time.Time {
	var end time.Time
	for _, r := range ev.Restrictions {
		if r.Expires.IsZero() {
			return time.Time{}
		}
		if r.Expires.After(end) {
			end = r.Expires
		}
	}
	return end
}
