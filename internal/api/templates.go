package api

import (
	"errors"
	"io"
	"net/http"

	"go.opentelemetry.io/otel/metric"

	"github.com/herald-notify/herald/internal/lint"
	"github.com/herald-notify/herald/internal/templates"
)

type metricCounter = metric.Int64Counter

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	defs, err := templates.List(r.Context(), s.cfg.KV)
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
// returns it.
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
	// Lint on every add: a rejection costs days. ?force=true registers it anyway; so is a
	// definition Meta approved already (copied from its listing).
	if found := lint.Lint(def); def.Status != templates.StatusApproved && lint.HasErrors(found) && r.URL.Query().Get("force") != "true" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error":    "the template would most likely be rejected by Meta (add ?force=true to register it anyway)",
			"findings": found,
		})
		return
	}
	// An operator's change to an approved template is a new, pending version.
	stored, err := templates.Propose(r.Context(), s.cfg.KV, def)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "template not stored: "+err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, stored)
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) {
	def, err := templates.Get(r.Context(), s.cfg.KV, r.PathValue("name"), r.PathValue("language"))
	switch {
	case errors.Is(err, templates.ErrUnknownTemplate), errors.Is(err, templates.ErrUnknownLanguage):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "template catalogue unavailable")
	default:
		writeJSON(w, http.StatusOK, def)
	}
}
