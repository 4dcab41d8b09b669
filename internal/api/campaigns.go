package api

import (
	"errors"
	"net/http"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/templates"
)

// getCampaign answers GET /v1/campaigns/{name}: counts by state and channel, rate and the
// estimated cost.
func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	meta, err := campaign.Get(r.Context(), s.cfg.Campaigns, name)
	switch {
	case errors.Is(err, campaign.ErrInvalidName):
		writeError(w, http.StatusBadRequest, "name: "+err.Error())
		return
	case errors.Is(err, campaign.ErrNotFound):
		meta = nil
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "campaign store unavailable")
		return
	}
	counters, err := s.cfg.Store.Campaign(r.Context(), tenantOf(r), name)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "status store unavailable")
		return
	}
	if meta == nil && len(counters.States) == 0 {
		writeError(w, http.StatusNotFound, "no campaign named "+name)
		return
	}
	category := ""
	if meta != nil && meta.Template != "" && s.cfg.KV != nil {
		if d, err := templates.Get(r.Context(), s.cfg.KV, meta.Template, meta.Language); err == nil {
			category = d.Category
		}
	}
	writeJSON(w, http.StatusOK, campaign.Build(name, meta, counters, category, s.cfg.Prices))
}

// cancelCampaign answers POST /v1/campaigns/{name}/cancel: its jobs not yet sent will not be
// sent (state canceled).
func (s *Server) cancelCampaign(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	meta, err := campaign.Cancel(r.Context(), s.cfg.Campaigns, name, "tenant:"+tenantOf(r))
	switch {
	case errors.Is(err, campaign.ErrInvalidName):
		writeError(w, http.StatusBadRequest, "name: "+err.Error())
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "not canceled; retry")
		return
	}
	s.log.Info("campaign canceled", "campaign", name, "by", meta.CanceledBy)
	writeJSON(w, http.StatusOK, meta)
}
