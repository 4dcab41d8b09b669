package api

import (
	"errors"
	"net/http"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/templates"
)

// getCampaign answers GET /v1/campaigns/{name}: the caller's tenant's campaign's counts by
// state and channel, rate and the estimated cost. Another tenant's campaign of that name is
// not found: metadata and counters are both read under the caller's tenant.
func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) {
	name, tenant := r.PathValue("name"), tenantOf(r)
	meta, err := campaign.Get(r.Context(), s.cfg.Campaigns, tenant, name)
	switch {
	case errors.Is(err, campaign.ErrInvalidName):
		writeError(w, http.StatusBadRequest, "name: "+err.Error())
		return
	case errors.Is(err, campaign.ErrInvalidTenant):
		writeError(w, http.StatusBadRequest, "tenant: "+err.Error())
		return
	case errors.Is(err, campaign.ErrNotFound):
		meta = nil
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "campaign store unavailable")
		return
	}
	counters, err := s.cfg.Store.Campaign(r.Context(), tenant, name)
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
		if d, err := templates.Get(r.Context(), s.cfg.KV, tenantOf(r), meta.Template, meta.Language); err == nil {
			category = d.Category
		}
	}
	v := campaign.Build(name, meta, counters, category, s.cfg.Prices)
	v.Tenant = tenant
	writeJSON(w, http.StatusOK, v)
}

// cancelCampaign answers POST /v1/campaigns/{name}/cancel: the caller's tenant's jobs of the
// campaign not yet sent will not be sent (state canceled). A name the tenant has not used
// yet is canceled ahead, for that tenant alone; a new name past the tenant's cap
// (HERALD_CAMPAIGNS_MAX_PER_TENANT) is refused with 409.
func (s *Server) cancelCampaign(w http.ResponseWriter, r *http.Request) {
	name, tenant := r.PathValue("name"), tenantOf(r)
	meta, err := campaign.Cancel(r.Context(), s.cfg.Campaigns, tenant, name, actor(r))
	switch {
	case errors.Is(err, campaign.ErrInvalidName):
		writeError(w, http.StatusBadRequest, "name: "+err.Error())
		return
	case errors.Is(err, campaign.ErrInvalidTenant):
		writeError(w, http.StatusBadRequest, "tenant: "+err.Error())
		return
	case errors.Is(err, campaign.ErrTooMany):
		writeError(w, http.StatusConflict, "not canceled: "+err.Error())
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "not canceled; retry")
		return
	}
	s.log.Info("campaign canceled", "tenant", tenant, "campaign", name, "by", meta.CanceledBy)
	writeJSON(w, http.StatusOK, meta)
}
