package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/metric"

	"github.com/herald-notify/herald/internal/lint"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/webhook"
	"github.com/herald-notify/herald/internal/white"
)

type metricCounter = metric.Int64Counter

// listTemplates answers GET /v1/templates: the caller's tenant's catalogue.
func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	defs, err := templates.List(r.Context(), s.cfg.KV, tenantOf(r))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "template catalogue unavailable")
		return
	}
	if defs == nil {
		defs = []*templates.Definition{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": defs})
}

// postTemplate registers a definition in the Cloud API format, as the template listing
// returns it, in the caller's tenant's catalogue. Only Meta approves a template (its
// status webhook, or `herald templates sync`): the body's status is ignored and the
// definition is stored PENDING, also with ?force=true, which only overrides lint.
func (s *Server) postTemplate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<10))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "definition larger than 256 KiB")
		return
	}
	def, err := templates.ParseDefinition(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Lint on every add, whatever status the body claims: a rejection costs days.
	if found := lint.Lint(def); lint.HasErrors(found) && r.URL.Query().Get("force") != "true" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error":    "the template would most likely be rejected by Meta (add ?force=true to register it, pending, anyway)",
			"findings": found,
		})
		return
	}
	// Pending until Meta reviews it; a change to an approved template is a new version, and
	// the approved one is sent meanwhile.
	prev, _ := templates.Get(r.Context(), s.cfg.KV, tenantOf(r), def.Name, def.Language)
	stored, err := templates.Propose(r.Context(), s.cfg.KV, tenantOf(r), def)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "template not stored: "+err.Error())
		return
	}
	// Meta reviews what it is sent: a new text goes to it (what it has already, not again).
	if s.cfg.Submitter != nil && (prev == nil || !templates.SameContent(prev, def)) {
		if err := s.submitTemplate(r.Context(), stored); err != nil {
			s.log.Warn("template not submitted to Meta", "template", stored.Name, "language", stored.Language, "err", err)
			writeError(w, http.StatusBadGateway, "template stored PENDING but not submitted to Meta for review: "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusCreated, stored)
}

// TemplateSubmitter submits a template for Meta's review: white.Client.SubmitTemplate.
type TemplateSubmitter interface {
	SubmitTemplate(ctx context.Context, body []byte) (white.Submission, error)
}

var _ TemplateSubmitter = (*white.Client)(nil)

// submitTemplate sends d to Meta in the creation format: the fields Meta reads, none of
// what Herald adds (status, version, tenant).
func (s *Server) submitTemplate(ctx context.Context, d *templates.Definition) error {
	body, err := json.Marshal(struct {
		Name            string                `json:"name"`
		Language        string                `json:"language"`
		Category        string                `json:"category"`
		ParameterFormat string                `json:"parameter_format,omitempty"`
		Components      []templates.Component `json:"components"`
	}{d.Name, d.Language, d.Category, d.ParameterFormat, d.Components})
	if err != nil {
		return err
	}
	_, err = s.cfg.Submitter.SubmitTemplate(ctx, body)
	return err
}

// getTemplate answers GET /v1/templates/{name}/{language} from the caller's tenant's
// catalogue: another tenant's template is not found.
func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) {
	def, err := templates.Get(r.Context(), s.cfg.KV, tenantOf(r), r.PathValue("name"), r.PathValue("language"))
	switch {
	case errors.Is(err, templates.ErrUnknownTemplate), errors.Is(err, templates.ErrUnknownLanguage):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "template catalogue unavailable")
	default:
		writeJSON(w, http.StatusOK, def)
	}
}

// templateStatus applies a message_template_status_update webhook to the versions it
// is about: the template of that name and language in the catalogue of each tenant of the
// WABA that sent it (templates.WABATenants, wabaOwners), unless the version records another
// Meta template id in that WABA. The review is recorded under that WABA (the entry id), so
// a job's template is judged in its sender's WABA, and sums up into the definition's
// Status. No other tenant's catalogue changes. False means retry later.
func (s *Server) templateStatus(ctx context.Context, ts webhook.TemplateStatus) bool {
	if s.cfg.KV == nil || ts.Name == "" || ts.Language == "" {
		return true
	}
	holders, err := templates.Holders(ctx, s.cfg.KV, ts.Name, ts.Language)
	if err != nil {
		s.log.Warn("template status not recorded", "template", ts.Name, "err", err)
		return false
	}
	tenants := templates.WABATenants(s.wabaOwners(), ts.WABAID, holders)
	if len(tenants) == 0 {
		s.log.Info("status update for a template not in the catalogue", "template", ts.Name, "language", ts.Language, "status", ts.Event, "waba", ts.WABAID)
		return true
	}
	ok := true
	review := templates.Review{TemplateID: ts.TemplateID, Name: ts.Name, Language: ts.Language, Status: ts.Event,
		WABA: ts.WABAID, Category: ts.Category}
	for _, t := range tenants {
		d, err := templates.SetStatus(ctx, s.cfg.KV, t, review)
		switch {
		case errors.Is(err, templates.ErrOtherTemplate):
			s.log.Debug("template status update is another template's", "tenant", t, "template", ts.Name, "err", err)
		case errors.Is(err, templates.ErrUnknownTemplate) || errors.Is(err, templates.ErrUnknownLanguage):
			// Removed since Holders listed it.
		case err != nil:
			s.log.Warn("template status not recorded", "tenant", t, "template", ts.Name, "err", err)
			ok = false
		default:
			s.log.Info("template status changed", "tenant", t, "template", d.Name, "language", d.Language, "waba", ts.WABAID, "status", strings.ToUpper(ts.Event), "summary", d.Status, "reason", ts.Reason)
		}
	}
	return ok
}

// wabaOwners says which tenants send through a WABA: by the fleet file when webhooks are
// routed by it, else nil, the environment configuration's one WABA that every tenant sends
// through.
func (s *Server) wabaOwners() templates.Owners {
	if s.cfg.Fleet == nil || !s.cfg.RouteByFleet {
		return nil
	}
	return templates.FleetOwners(s.cfg.Fleet)
}
