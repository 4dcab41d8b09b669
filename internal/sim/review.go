package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-notify/herald/internal/lint"
)

// DefaultReviewDelay is how long the simulator takes to review a submitted template when
// Config.ReviewDelay is 0: long enough to see it PENDING, short enough for a tour.
const DefaultReviewDelay = 2 * time.Second

// Template review statuses, as Meta names them.
const (
	ReviewPending  = "PENDING"
	ReviewApproved = "APPROVED"
	ReviewRejected = "REJECTED"
)

// reviews holds the template listing once templates can be submitted: the configured ones
// and the submitted ones, each with its status.
type reviews struct {
	mu   sync.Mutex
	list []json.RawMessage
	// index is the position in list of each name/language.
	index map[string]int
}

// templateList returns the current template listing; its elements are never modified.
func (s *Sim) templateList() []json.RawMessage {
	s.reviews.mu.Lock()
	defer s.reviews.mu.Unlock()
	if s.reviews.list == nil {
		return s.templates
	}
	return slices.Clip(s.reviews.list)
}

// submission is what POST /<WABA>/message_templates takes: the fields Meta reads.
type submission struct {
	Name            string            `json:"name"`
	Language        string            `json:"language"`
	Category        string            `json:"category"`
	ParameterFormat string            `json:"parameter_format,omitempty"`
	Components      []json.RawMessage `json:"components"`
}

// createTemplate answers POST /{version}/{WABA}/message_templates the way Meta does: the
// template is listed PENDING and answered {"id","status":"PENDING","category"}; after
// Config.ReviewDelay it is APPROVED or REJECTED, as Herald's lint predicts (an error finding
// rejects it), and a message_template_status_update webhook says so, signed like the
// simulator's other webhooks. A name and language already listed is a new version, reviewed
// again (Meta's edit of a template).
func (s *Sim) createTemplate(w http.ResponseWriter, r *http.Request, wabaID string) {
	if !s.wabaAllowed(w, r, wabaID) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<10))
	if err != nil {
		s.writeGraphError(w, http.StatusBadRequest, invalidParam("The request body could not be read."))
		return
	}
	var sub submission
	if err := json.Unmarshal(body, &sub); err != nil {
		s.writeGraphError(w, http.StatusBadRequest, invalidParam("The request body is not a JSON object."))
		return
	}
	for _, f := range []struct{ name, value string }{{"name", sub.Name}, {"language", sub.Language}, {"category", sub.Category}} {
		if f.value == "" {
			s.writeGraphError(w, http.StatusBadRequest, invalidParam("The parameter "+f.name+" is required."))
			return
		}
	}
	if len(sub.Components) == 0 {
		s.writeGraphError(w, http.StatusBadRequest, invalidParam("The parameter components is required."))
		return
	}
	sub.Category = strings.ToUpper(sub.Category)
	verdict, reason := ReviewApproved, "NONE"
	if found, err := lint.LintJSON(body); err != nil || lint.HasErrors(found) {
		verdict, reason = ReviewRejected, rejectionReason(found)
	}
	id := strconv.FormatUint(1_000_000_000_000_000+s.ids.Add(1), 10)
	s.listTemplate(sub, id, ReviewPending)
	s.sleepLatency(r.Context())
	delay := s.cfg.ReviewDelay
	if delay <= 0 {
		delay = DefaultReviewDelay
	}
	time.AfterFunc(delay, func() { s.review(wabaID, sub, id, verdict, reason) })
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "status": ReviewPending, "category": sub.Category})
}

// wabaAllowed answers a template call (listing or creation) that has no valid token or names
// a WABA the simulator does not serve with Graph's error, and tells whether it may go on.
func (s *Sim) wabaAllowed(w http.ResponseWriter, r *http.Request, wabaID string) bool {
	if !s.anyTokenMatches(requestToken(r)) {
		s.writeGraphError(w, http.StatusUnauthorized, badToken)
		return false
	}
	if s.senders.wabas != nil && !s.senders.wabas[wabaID] {
		s.writeGraphError(w, http.StatusBadRequest, unsupported(strings.ToLower(r.Method), wabaID))
		return false
	}
	return true
}

// rejectionReason is the reason Meta would give for the lint's findings: a promotional or
// wrong-category wording is INCORRECT_CATEGORY, abuse ABUSIVE_CONTENT, the rest
// INVALID_FORMAT.
func rejectionReason(found []lint.Finding) string {
	for _, f := range found {
		if f.Severity != lint.Error {
			continue
		}
		switch f.Code {
		case "promo_in_utility", "copy_code_not_marketing", "greeting_offer", "percent_off":
			return "INCORRECT_CATEGORY"
		case "threat", "insult", "banned_industry":
			return "ABUSIVE_CONTENT"
		}
	}
	return "INVALID_FORMAT"
}

// listTemplate puts sub in the listing with its id and status, in the place of the same
// name and language if listed.
func (s *Sim) listTemplate(sub submission, id, status string) {
	entry, _ := json.Marshal(struct {
		submission
		ID     string `json:"id"`
		Status string `json:"status"`
	}{sub, id, status})
	s.reviews.mu.Lock()
	defer s.reviews.mu.Unlock()
	if s.reviews.list == nil {
		s.reviews.list = slices.Clone(s.templates)
		s.reviews.index = map[string]int{}
		for i, t := range s.reviews.list {
			var k struct{ Name, Language string }
			if json.Unmarshal(t, &k) == nil {
				s.reviews.index[k.Name+"."+k.Language] = i
			}
		}
	}
	key := sub.Name + "." + sub.Language
	if i, ok := s.reviews.index[key]; ok {
		// A new slice: a listing handed out before keeps what it held.
		s.reviews.list = slices.Clone(s.reviews.list)
		s.reviews.list[i] = entry
		return
	}
	s.reviews.index[key] = len(s.reviews.list)
	s.reviews.list = append(s.reviews.list, entry)
}

// templateStatusValue is the value of a message_template_status_update change.
type templateStatusValue struct {
	Event            string `json:"event"`
	TemplateID       string `json:"message_template_id"`
	TemplateName     string `json:"message_template_name"`
	TemplateLanguage string `json:"message_template_language"`
	Reason           string `json:"reason"`
	TemplateCategory string `json:"message_template_category"`
}

// review gives the verdict on a submitted template: the listing shows it, and the webhook
// goes to WebhookURL in the entry of wabaID, signed with the app secret of a number of that
// WABA (the API verifies a template event with it), else AppSecret.
func (s *Sim) review(wabaID string, sub submission, id, verdict, reason string) {
	s.listTemplate(sub, id, verdict)
	if s.cfg.WebhookURL == "" {
		return
	}
	body, err := json.Marshal(bizEnvelope{Object: "whatsapp_business_account", Entry: []bizEntry{{
		ID: wabaID, Time: time.Now().Unix(), Changes: []bizChange{{Field: "message_template_status_update", Value: templateStatusValue{
			Event: verdict, TemplateID: id, TemplateName: sub.Name, TemplateLanguage: sub.Language, Reason: reason,
			TemplateCategory: sub.Category,
		}}},
	}}})
	if err != nil { // cannot happen: plain strings
		s.log.Error("sim: encoding a template status webhook", "error", err)
		return
	}
	secret := s.cfg.AppSecret
	if phoneID, ok := s.numberOfWABA(wabaID); ok {
		secret = s.appSecretOf(phoneID)
	}
	select {
	case s.cbShards[0] <- callback{method: http.MethodPost, url: s.cfg.WebhookURL, body: body, sig: Sign(secret, body), event: true}:
		s.log.Info("sim: template reviewed", "template", sub.Name, "language", sub.Language, "status", verdict, "reason", reason)
	default:
		s.deliver.webhookDropped.Add(1)
		s.warnDrop(1, "queue full")
	}
}

// numberOfWABA returns a phone number id whose WABA is wabaID, the lowest for a stable choice.
func (s *Sim) numberOfWABA(wabaID string) (string, bool) {
	ids := append([]string{s.cfg.PhoneNumberID}, s.cfg.PhoneNumberIDs...)
	slices.Sort(ids)
	for _, id := range ids {
		if id != "" && s.wabaOf(id) == wabaID {
			return id, true
		}
	}
	return "", false
}
