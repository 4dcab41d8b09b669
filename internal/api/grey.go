package api

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-notify/herald/internal/grey"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/webhook"
)

// GreyStateSubject carries grey instance state changes (core NATS) from the API, which
// receives the gateway's webhooks, to every worker's circuit breaker.
const GreyStateSubject = "herald.grey.state"

// GreyState is the message on GreyStateSubject.
type GreyState struct {
	Instance string `json:"instance"`
	State    string `json:"state"`
}

// maxGreyBody bounds a grey webhook body.
const maxGreyBody = 1 << 20

// greyWebhook takes the grey gateway's notifications: outgoing message statuses (a failed
// one falls back like a failed Cloud API status), inbound messages (STOP applies; no
// WhatsApp window opens for them) and instance state changes (fed to the workers' breakers).
// Only a request with the gateway's token is read at all; without HERALD_GREY_WEBHOOK_TOKEN
// every one is refused.
func (s *Server) greyWebhook(w http.ResponseWriter, r *http.Request) {
	// With a fleet: routed by instanceData.idInstance, checked with that instance's token.
	body, r, ok := s.greyAuth(w, r)
	if !ok {
		return
	}
	ev, err := grey.ParseWebhook(body)
	if err != nil {
		// GREEN-API resends any answer but 200 every minute for a day: a body Herald cannot
		// read will not read better then. The error names what is missing, never a value.
		s.webhookMetric(r, "grey", "malformed")
		s.log.Warn("grey webhook not understood; answered 200 so that it is not resent", "bytes", len(body), "err", err)
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return
	}
	ok = true
	switch {
	case ev.Status != nil:
		rep := *ev.Status
		rep.Fallback = ev.FailKind != 0 && ev.FailKind != provider.Job
		ok = s.apply(r, rep)
		if rep.Code == grey.CodeYellowCard {
			s.greyState(r, ev.Instance, grey.StateYellowCard)
		}
	case ev.Inbound != nil:
		in := webhook.Inbound{ID: ev.Inbound.MessageID, From: ev.Inbound.From, Type: "text", Text: ev.Inbound.Text,
			ContactName: ev.Inbound.Name, At: ev.At}
		if ev.Inbound.Type != "textMessage" && ev.Inbound.Type != "extendedTextMessage" {
			in.Type = ev.Inbound.Type
		}
		ok = s.inbound(r, "grey", in)
	case ev.State != "":
		s.greyState(r, ev.Instance, ev.State)
	}
	if !ok {
		s.webhookMetric(r, "grey", "error")
		writeError(w, http.StatusInternalServerError, "not recorded; retry")
		return
	}
	s.webhookMetric(r, "grey", "ok")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// greyState hands a state change to the workers and, for a ban, raises the sender_blocked
// event.
func (s *Server) greyState(r *http.Request, instance, state string) {
	s.log.Info("grey instance state", "instance", instance, "state", state)
	s.recordGreyState(r, instance, state)
	if s.cfg.NATS != nil {
		data, _ := json.Marshal(GreyState{Instance: instance, State: state})
		if err := s.cfg.NATS.Publish(GreyStateSubject, data); err != nil {
			s.log.Warn("grey state not forwarded to the workers", "err", err)
		}
	}
	if state == grey.StateBlocked {
		PublishSenderBlocked(r, s, instance)
	}
}

// SenderBlocked is the event on herald.events.status.sender_blocked.
type SenderBlocked struct {
	Channel  string    `json:"channel"`
	Instance string    `json:"instance"`
	At       time.Time `json:"at"`
}

// PublishSenderBlocked raises herald.events.status.sender_blocked for a banned grey number,
// once per instance and minute however many processes notice it.
func PublishSenderBlocked(r *http.Request, s *Server, instance string) {
	if s.cfg.JS == nil {
		return
	}
	now := s.cfg.Now().UTC()
	data, _ := json.Marshal(SenderBlocked{Channel: "grey", Instance: instance, At: now})
	m := &nats.Msg{Subject: streams.StatusSubject("sender_blocked"), Data: data, Header: nats.Header{}}
	m.Header.Set(streams.HeaderMsgID, "blocked:"+instance+":"+strconv.FormatInt(now.Unix()/60, 10))
	if _, err := s.cfg.JS.PublishMsg(r.Context(), m); err != nil {
		s.log.Error("sender_blocked event not published", "instance", instance, "err", err)
	}
	s.cfg.Metrics.Count(r.Context(), func(m *telemetry.Metrics) metricCounter { return m.Events }, "state", "sender_blocked")
}

// bearerMatches checks an Authorization: Bearer header in constant time; the scheme is
// case-insensitive (RFC 7235).
func bearerMatches(r *http.Request, want string) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(want)) == 1
}
