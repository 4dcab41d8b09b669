package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/webhook"
	"github.com/herald-notify/herald/worker"
)

// MaxWebhookBody bounds a webhook request; Meta's are a few KiB.
const MaxWebhookBody = 1 << 20

// WindowDuration is how long an inbound message keeps the customer-service window open.
const WindowDuration = 24 * time.Hour

// whatsappVerify answers Meta's subscription handshake.
func (s *Server) whatsappVerify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if s.cfg.WhiteVerifyToken == "" || q.Get("hub.mode") != "subscribe" ||
		q.Get("hub.verify_token") != s.cfg.WhiteVerifyToken {
		writeError(w, http.StatusForbidden, "verification failed")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// whatsappWebhook checks the signature before anything is parsed, then applies statuses and
// inbound messages. It answers 500 only when Herald could not record something, so that Meta
// retries; a repeated delivery changes nothing.
func (s *Server) whatsappWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.webhookMetric(r, "whatsapp", "too_large")
			writeError(w, http.StatusRequestEntityTooLarge, "webhook body larger than 1 MiB")
			return
		}
		s.webhookMetric(r, "whatsapp", "unreadable")
		writeError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	rt, ok := s.verifyWhite(w, r, body)
	if !ok {
		return
	}
	b, err := webhook.Parse(body)
	if err != nil {
		s.webhookMetric(r, "whatsapp", "malformed")
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// With a fleet, each item goes to the number it names (and that number's tenants).
	rt.keep(s, r, b)
	failed := !s.numberEvents(r, body)
	for _, st := range b.Statuses {
		rep := status.Report{JobRef: reportRef(st.BizOpaque), MessageID: st.MessageID, State: st.State, Channel: "white"}
		if len(st.Errors) > 0 {
			rep.Code = strconv.Itoa(st.Errors[0].Code)
			rep.Reason = strings.TrimSpace(st.Errors[0].Title + ": " + st.Errors[0].Details)
		}
		rep.Fallback = rep.State == status.Failed && whiteFallback(rep.Code)
		if !s.apply(rt.request(r, st.PhoneNumberID), rep) {
			failed = true
		}
	}
	for _, in := range b.Messages {
		if !s.inbound(rt.request(r, in.PhoneNumberID), "white", in) {
			failed = true
		}
	}
	for _, ts := range b.TemplateStatus {
		if !s.templateStatus(r.Context(), ts) {
			failed = true
		}
	}
	for _, p := range b.UserPreferences {
		if !s.userPreference(rt.request(r, p.PhoneNumberID).Context(), p) {
			failed = true
		}
	}
	if failed {
		s.webhookMetric(r, "whatsapp", "error")
		writeError(w, http.StatusInternalServerError, "not every update was recorded; retry")
		return
	}
	s.webhookMetric(r, "whatsapp", "ok")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// apply records a status report and publishes the change; false means retry later.
func (s *Server) apply(r *http.Request, rep status.Report) bool {
	switch rep.State {
	case status.Sent, status.Delivered, status.Read, status.Failed:
	default:
		return true // played, deleted, warnings...: nothing Herald tracks
	}
	old, rec, changed, err := s.cfg.Store.Apply(r.Context(), rep)
	if errors.Is(err, status.ErrNotFound) {
		return true // not ours, or expired long ago
	}
	if err != nil {
		s.log.Warn("status report not recorded", "message", rep.MessageID, "err", err)
		return false
	}
	if changed && old != rec.State && s.cfg.JS != nil {
		worker.PublishStatus(r.Context(), s.cfg.JS, s.log, s.cfg.Metrics, rec)
	}
	if changed {
		s.afterReport(r.Context(), rec)
	}
	return true
}

// InboundEvent is published on herald.events.inbound for every customer message.
type InboundEvent struct {
	Channel   string    `json:"channel"`
	From      string    `json:"from"`
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Text      string    `json:"text,omitempty"`
	Payload   string    `json:"payload,omitempty"`
	ContextID string    `json:"context_id,omitempty"`
	Name      string    `json:"name,omitempty"`
	At        time.Time `json:"at"`
}

// waNumber reads a WhatsApp id as E.164. Meta's wa_id is authoritative even where
// libphonenumber's data lags behind: any plausible international number is kept rather
// than lose a customer's message or preference.
func waNumber(id string) (string, bool) {
	if p, err := phone.Normalize("+"+strings.TrimPrefix(id, "+"), ""); err == nil {
		return p, true
	}
	d := strings.TrimPrefix(id, "+")
	if len(d) < 8 || len(d) > 15 || strings.Trim(d, "0123456789") != "" {
		return "", false
	}
	return "+" + d, true
}

// inbound opens the customer's window and hands the message to the business.
func (s *Server) inbound(r *http.Request, channel string, in webhook.Inbound) bool {
	from, ok := waNumber(in.From)
	if !ok {
		s.log.Warn("inbound message from an unparsable number ignored", "from", phone.Mask(in.From))
		return true
	}
	if channel == "white" {
		if err := s.cfg.Store.OpenWindow(r.Context(), in.PhoneNumberID, from, WindowDuration); err != nil {
			s.log.Warn("window not recorded", "from", phone.Mask(from), "err", err)
			return false
		}
	}
	if in.Type == "text" || in.Type == "button" || in.Type == "" {
		if !s.optOut(r.Context(), "inbound:"+channel, from, in.ID, in.Text, in.At) {
			return false
		}
	}
	if s.cfg.JS == nil {
		return true
	}
	ev := InboundEvent{Channel: channel, From: from, ID: in.ID, Type: in.Type, Text: in.Text, Payload: in.Payload,
		ContextID: in.ContextID, Name: in.ContactName, At: in.At}
	data, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: streams.SubjectInbound, Data: data, Header: nats.Header{}}
	msg.Header.Set(streams.HeaderMsgID, "in:"+in.ID)
	if _, err := s.cfg.JS.PublishMsg(r.Context(), msg); err != nil {
		s.log.Warn("inbound event not published", "from", phone.Mask(from), "err", err)
		return false
	}
	return true
}

// smsReport takes Kannel delivery reports (the dlr-url callback). A report counts only with
// the token the worker put in the dlr-url (an HMAC of the job id under HERALD_SMS_DLR_SECRET)
// and only for a job Herald sent or is sending an SMS for: anything else is answered 401 and
// changes nothing, and is not parked to be applied later.
func (s *Server) smsReport(w http.ResponseWriter, r *http.Request) {
	d, err := sms.ParseKannelDLR(r.URL.Query())
	if err != nil {
		s.webhookMetric(r, "sms", "malformed")
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(s.cfg.DLRSecret) == 0 {
		s.noDLRSecret.Do(func() {
			s.log.Error("HERALD_SMS_DLR_SECRET is not set: Kannel delivery reports are refused")
		})
	}
	// The token is a credential: it is compared in constant time and never logged.
	if !sms.VerifyDLRToken(s.cfg.DLRSecret, d.JobID, d.Token) {
		s.webhookMetric(r, "sms", "unauthorized")
		writeError(w, http.StatusUnauthorized, "bad or missing delivery report token")
		return
	}
	// The id is the job's ref as the worker signed it; a bare id is from a dlr-url made
	// before refs, a job of the default tenant.
	ref := reportRef(d.JobID)
	rec, err := s.cfg.Store.Get(r.Context(), ref)
	switch {
	case errors.Is(err, status.ErrNotFound):
		// The token is Herald's, so the SMS was: its record has expired since.
		s.webhookMetric(r, "sms", "unknown")
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return
	case err != nil:
		s.log.Warn("delivery report not checked", "job", d.JobID, "err", err)
		writeError(w, http.StatusInternalServerError, "not recorded; retry")
		return
	case !smsSent(rec):
		s.webhookMetric(r, "sms", "not_sent")
		writeError(w, http.StatusUnauthorized, "no SMS was sent for this job")
		return
	}
	var state string
	switch d.State {
	case "delivered":
		state = status.Delivered
	case "failed", "rejected":
		state = status.Failed
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return
	}
	rep := status.Report{JobRef: ref, MessageID: "kannel:" + ref, State: state, Channel: job.ChannelSMS}
	if state == status.Failed {
		rep.Code, rep.Reason = "dlr_"+strconv.Itoa(d.Type), "SMS not delivered: "+d.Reply
	}
	if !s.apply(r, rep) {
		writeError(w, http.StatusInternalServerError, "not recorded; retry")
		return
	}
	s.webhookMetric(r, "sms", "ok")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// smsSent tells whether Herald made, or is making, an SMS call for the record: an SMS
// attempt in its history, or a claim on the SMS channel (a call in progress, or one whose
// worker died during it). Kannel may report before the worker records the send; the claim
// lets that report in, to be parked until then.
func smsSent(rec *status.Record) bool {
	for _, a := range rec.History {
		if a.Channel == job.ChannelSMS {
			return true
		}
	}
	return rec.Claim != nil && rec.Claim.Channel == job.ChannelSMS
}

func (s *Server) webhookMetric(r *http.Request, source, result string) {
	s.cfg.Metrics.Count(r.Context(), func(m *telemetry.Metrics) metricCounter { return m.Webhooks }, "source", source, "result", result)
}

// reportRef is the job ref a Cloud API status names in biz_opaque_callback_data: the ref the
// worker put there, or, from a message sent before refs (a bare job id), that id in the
// default tenant. "" stays "": the record is then found by message id.
func reportRef(opaque string) string {
	if opaque == "" {
		return ""
	}
	if _, _, ok := job.SplitRef(opaque); ok {
		return opaque
	}
	return job.Ref("", opaque)
}
