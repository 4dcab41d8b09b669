package api

import (
	"errors"
	"net/http"
	"slices"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/templates"
)

// TemplateCatalogue is what the API checks a job's template against before queuing it: the
// definitions of each tenant, whatever their status (templates.Catalogue, in memory).
type TemplateCatalogue interface {
	Definition(tenant, name, language string) (*templates.Definition, error)
}

var _ TemplateCatalogue = (*templates.Catalogue)(nil)

// precheck refuses a template job that can never be sent, with 400 and the fields at fault:
// a template the tenant's catalogue does not have (in the job's language), params the
// template lacks or does not take, a button value it needs or has no place for. A pending
// or paused template passes: it may yet be approved, and other channels send its text.
// Without a catalogue, and for jobs without a template, nothing is checked here (the
// worker still is).
func (s *Server) precheck(j *job.Job) (accepted, int, bool) {
	if fe, ok := s.checkSender(j); !ok {
		return accepted{ID: j.ID, Error: "invalid job", Fields: []job.FieldError{fe}}, http.StatusBadRequest, false
	}
	if s.cfg.Catalogue == nil || j.Template == "" {
		return accepted{}, 0, true
	}
	tenant := job.TenantOr(j.Tenant)
	d, err := s.cfg.Catalogue.Definition(tenant, j.Template, j.Language)
	var fe job.FieldError
	switch {
	case errors.Is(err, templates.ErrUnknownTemplate):
		fe = job.FieldError{Field: "template", Reason: j.Template + ": not in tenant " + tenant + "'s catalogue"}
	case errors.Is(err, templates.ErrUnknownLanguage):
		fe = job.FieldError{Field: "language", Reason: err.Error()}
	case err != nil:
		return accepted{}, 0, true // the worker decides
	default:
		if _, err = d.RenderText(templates.Input{Params: j.Params, Buttons: j.Buttons}); err == nil {
			return accepted{}, 0, true
		}
		// Params are checked first: the same check without buttons tells whose fault it is.
		fe = job.FieldError{Field: "buttons", Reason: err.Error()}
		if _, perr := d.RenderText(templates.Input{Params: j.Params}); errors.Is(perr, templates.ErrMissingParam) || errors.Is(perr, templates.ErrExtraParam) {
			fe.Field = "params"
		}
	}
	return accepted{ID: j.ID, Error: "invalid job", Fields: []job.FieldError{fe}}, http.StatusBadRequest, false
}

// checkSender refuses a job that pins a sender its tenant's pool does not hold: with a fleet
// file, another tenant's number is not the caller's to send from.
func (s *Server) checkSender(j *job.Job) (job.FieldError, bool) {
	f := s.cfg.Fleet
	if j.Sender == "" || f == nil {
		return job.FieldError{}, true
	}
	tenant := job.TenantOr(j.Tenant)
	if t, ok := f.Tenants[tenant]; ok && slices.Contains(t.Senders, j.Sender) {
		return job.FieldError{}, true
	}
	return job.FieldError{Field: "sender", Reason: j.Sender + ": not a sender of tenant " + tenant + "'s pool"}, false
}
