package console

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/status"
)

// PageSize is the per-recipient table's rows per page.
const PageSize = 50

// scanLimit bounds the index entries one page request reads while filtering: a rare state
// among a million rows is found page by page ("continue") instead of in one slow request.
const scanLimit = 20000

// campaignSummary is one campaign with its progress.
type campaignSummary struct {
	campaign.View
	Total, Done int64
	Percent     int
	ETA         string
}

func summarize(v campaign.View) campaignSummary {
	s := campaignSummary{View: v, Total: max(v.Queued, v.Seen)}
	// A job is done once it left the queue: sent, delivered and read may still change, but
	// the campaign no longer waits for it.
	for st, n := range v.States {
		if st != status.Queued && st != status.Scheduled {
			s.Done += n
		}
	}
	if s.Total > 0 {
		s.Percent = int(s.Done * 100 / s.Total)
	}
	if left := s.Total - s.Done; left > 0 && v.Rate > 0 && v.Canceled == nil {
		s.ETA = (time.Duration(float64(left)/v.Rate) * time.Second).Round(time.Second).String()
	}
	return s
}

// campaignNames lists the tenant's campaigns: those the API indexed and those imports
// recorded in the metadata bucket.
func (h *handlers) campaignNames(ctx context.Context, tenant string) ([]string, error) {
	names, err := h.c.cfg.Records.CampaignNames(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if kv := h.c.cfg.Campaigns; kv != nil {
		lister, err := kv.ListKeysFiltered(ctx, campaign.TenantFilter(tenant))
		if err == nil {
			for k := range lister.Keys() {
				if t, n, _, ok := campaign.ParseKey(k); ok && job.TenantOr(t) == tenant && !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		} else if !errors.Is(err, jetstream.ErrNoKeysFound) {
			h.c.log.Warn("console: campaign bucket not listed", "err", err)
		}
	}
	return names, nil
}

func (h *handlers) campaignViews(ctx context.Context, u *user) ([]campaignSummary, error) {
	names, err := h.campaignNames(ctx, u.Tenant)
	if err != nil {
		return nil, err
	}
	out := make([]campaignSummary, 0, len(names))
	for _, n := range names {
		var v campaign.View
		if _, err := h.callAPI(ctx, u, http.MethodGet, "/v1/campaigns/"+url.PathEscape(n), nil, &v); err != nil {
			continue // a name the API does not find for this tenant is not shown
		}
		out = append(out, summarize(v))
	}
	return out, nil
}

func (h *handlers) campaigns(w http.ResponseWriter, r *http.Request, u *user) {
	views, err := h.campaignViews(r.Context(), u)
	p := page{Title: "Campaigns", Nav: "campaigns", User: u, Data: views, Stream: "campaigns", Flash: r.URL.Query().Get("flash")}
	if err != nil {
		p.Error = "status store unavailable: " + err.Error()
	}
	h.render(w, "campaigns", p)
}

// recipientRow is one line of the per-recipient table: the phone masked.
type recipientRow struct {
	ID, To, State, Reason, Channel, Updated string
	Attempts                                int
}

func rowOf(rec *status.Record) recipientRow {
	return recipientRow{ID: rec.ID, To: phone.Mask(rec.To), State: rec.State, Reason: rec.Reason, Channel: rec.Channel,
		Updated: rec.UpdatedAt, Attempts: rec.Attempts}
}

// filter is the per-recipient table's filter; empty fields match everything.
type filter struct {
	State, Reason string
}

func (f filter) match(rec *status.Record) bool {
	return (f.State == "" || rec.State == f.State) && (f.Reason == "" || strings.Contains(rec.Reason, f.Reason))
}

// scan reads the campaign's index from offset and returns up to limit matching records,
// the offset to continue from (-1 at the end) and the campaign's size. It reads at most
// maxScan index entries.
func (h *handlers) scan(ctx context.Context, tenant, name string, f filter, offset int64, limit int, maxScan int64) ([]*status.Record, int64, int64, error) {
	const chunk = 500
	var out []*status.Record
	var total int64
	read := int64(0)
	for {
		ids, n, err := h.c.cfg.Records.CampaignMembers(ctx, tenant, name, offset, chunk)
		if err != nil {
			return nil, -1, 0, err
		}
		total = n
		if len(ids) == 0 {
			return out, -1, total, nil
		}
		refs := make([]string, len(ids))
		for i, id := range ids {
			refs[i] = job.Ref(tenant, id)
		}
		recs, err := h.c.cfg.Records.GetMany(ctx, refs)
		if err != nil {
			return nil, -1, 0, err
		}
		for i, rec := range recs {
			if rec == nil || !f.match(rec) {
				continue
			}
			out = append(out, rec)
			if limit > 0 && len(out) == limit {
				next := offset + int64(i) + 1
				if next >= total {
					next = -1
				}
				return out, next, total, nil
			}
		}
		offset += int64(len(ids))
		read += int64(len(ids))
		if offset >= total {
			return out, -1, total, nil
		}
		if maxScan > 0 && read >= maxScan {
			return out, offset, total, nil
		}
	}
}

type campaignPage struct {
	campaignSummary
	Filter             filter
	Rows               []recipientRow
	Offset, Next, Size int64
	AllStates          []string
	Query              string
	Channels           []channelCount
}

type channelCount struct {
	Name  string
	Count int64
}

func (h *handlers) campaign(w http.ResponseWriter, r *http.Request, u *user) {
	name := r.PathValue("name")
	var v campaign.View
	if _, err := h.callAPI(r.Context(), u, http.MethodGet, "/v1/campaigns/"+url.PathEscape(name), nil, &v); err != nil {
		w.WriteHeader(statusOf(err))
		h.render(w, "error", page{Title: "Campaign " + name, Nav: "campaigns", User: u, Error: err.Error()})
		return
	}
	q := r.URL.Query()
	f := filter{State: q.Get("state"), Reason: strings.TrimSpace(q.Get("reason"))}
	offset, _ := strconv.ParseInt(q.Get("offset"), 10, 64)
	offset = max(0, offset)
	recs, next, size, err := h.scan(r.Context(), u.Tenant, name, f, offset, PageSize, scanLimit)
	p := campaignPage{campaignSummary: summarize(v), Filter: f, Offset: offset, Next: next, Size: size,
		AllStates: []string{status.Queued, status.Scheduled, status.Sent, status.Delivered, status.Read, status.Failed, status.Rejected, status.Expired, status.Suppressed, status.Canceled}}
	for _, rec := range recs {
		p.Rows = append(p.Rows, rowOf(rec))
	}
	for ch, n := range v.Channels {
		p.Channels = append(p.Channels, channelCount{ch, n})
	}
	sort.Slice(p.Channels, func(i, j int) bool { return p.Channels[i].Name < p.Channels[j].Name })
	p.Query = url.Values{"state": {f.State}, "reason": {f.Reason}}.Encode()
	pg := page{Title: "Campaign " + name, Nav: "campaigns", User: u, Data: p, Stream: "campaign:" + name, Flash: q.Get("flash")}
	if err != nil {
		pg.Error = "records not read: " + err.Error()
	}
	h.render(w, "campaign", pg)
}

// exportCampaign streams the filtered set as CSV (phones masked, as on screen).
func (h *handlers) exportCampaign(w http.ResponseWriter, r *http.Request, u *user) {
	name := r.PathValue("name")
	if _, err := h.callAPI(r.Context(), u, http.MethodGet, "/v1/campaigns/"+url.PathEscape(name), nil, nil); err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	q := r.URL.Query()
	f := filter{State: q.Get("state"), Reason: strings.TrimSpace(q.Get("reason"))}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".csv"))
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "to", "state", "reason", "channel", "attempts", "updated_at"})
	for offset := int64(0); offset >= 0; {
		recs, next, _, err := h.scan(r.Context(), u.Tenant, name, f, offset, 1000, 0)
		if err != nil {
			h.c.log.Error("console: export stopped", "campaign", name, "err", err)
			break
		}
		for _, rec := range recs {
			row := rowOf(rec)
			_ = cw.Write([]string{row.ID, row.To, row.State, row.Reason, row.Channel, strconv.Itoa(row.Attempts), row.Updated})
		}
		cw.Flush()
		offset = next
	}
	cw.Flush()
}

func (h *handlers) confirmCancel(w http.ResponseWriter, r *http.Request, u *user) {
	h.render(w, "cancel", page{Title: "Cancel " + r.PathValue("name"), Nav: "campaigns", User: u, Data: r.PathValue("name")})
}

func (h *handlers) cancelCampaign(w http.ResponseWriter, r *http.Request, u *user) {
	name := r.PathValue("name")
	if r.PostFormValue("confirm") != name {
		w.WriteHeader(http.StatusBadRequest)
		h.render(w, "cancel", page{Title: "Cancel " + name, Nav: "campaigns", User: u, Data: name,
			Error: "confirm: type the campaign's name, " + name + ", to cancel it"})
		return
	}
	if _, err := h.callAPI(r.Context(), u, http.MethodPost, "/v1/campaigns/"+url.PathEscape(name)+"/cancel", nil, nil); err != nil {
		w.WriteHeader(statusOf(err))
		h.render(w, "cancel", page{Title: "Cancel " + name, Nav: "campaigns", User: u, Data: name, Error: err.Error()})
		return
	}
	http.Redirect(w, r, "/console/campaigns/"+url.PathEscape(name)+"?flash="+url.QueryEscape("Canceled: jobs not yet sent will not be sent."), http.StatusSeeOther)
}

func (h *handlers) newCampaign(w http.ResponseWriter, r *http.Request, u *user) {
	var tl struct {
		Data []struct {
			Name, Language, Status string
		} `json:"data"`
	}
	_, _ = h.callAPI(r.Context(), u, http.MethodGet, "/v1/templates", nil, &tl)
	h.render(w, "import", page{Title: "Import a campaign", Nav: "campaigns", User: u, Data: tl.Data})
}

// validCampaign is job.campaign's rule, shorter: the jobs' ids are the name and a row number.
var validCampaign = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)

// MaxImportRows bounds a campaign imported from the browser: bigger ones go through
// `herald import` (a file, resumable).
const MaxImportRows = 10000

// importCampaign turns the form's CSV (a "to" column, the others template parameters, a
// "button0" column the first button's parameter) into one API batch of the campaign.
func (h *handlers) importCampaign(w http.ResponseWriter, r *http.Request, u *user) {
	fail := func(code int, msg string) {
		w.WriteHeader(code)
		h.render(w, "error", page{Title: "Import a campaign", Nav: "campaigns", User: u, Error: msg})
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if !validCampaign.MatchString(name) {
		fail(http.StatusBadRequest, "name: a campaign name is 1-100 characters of A-Z a-z 0-9 . _ : - (its jobs' ids add a row number)")
		return
	}
	jobs, err := parseRecipients(name, r.PostFormValue("template"), r.PostFormValue("language"), r.PostFormValue("channels"), r.PostFormValue("recipients"))
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	var res struct {
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
		Results  []struct {
			ID     string `json:"id"`
			Error  string `json:"error"`
			Fields []job.FieldError
		} `json:"results"`
	}
	if _, err := h.callAPI(r.Context(), u, http.MethodPost, "/v1/notifications/batch", map[string]any{"notifications": jobs}, &res); err != nil {
		fail(statusOf(err), err.Error())
		return
	}
	flash := fmt.Sprintf("Imported: %d accepted, %d rejected.", res.Accepted, res.Rejected)
	for _, x := range res.Results {
		if x.Error != "" {
			flash += " " + x.ID + ": " + x.Error
			for _, f := range x.Fields {
				flash += " (" + f.Field + ": " + f.Reason + ")"
			}
			break
		}
	}
	h.c.log.Info("console: campaign imported", "tenant", u.Tenant, "campaign", name, "accepted", res.Accepted, "rejected", res.Rejected)
	http.Redirect(w, r, "/console/campaigns/"+url.PathEscape(name)+"?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

// parseRecipients reads the import form's CSV into jobs of campaign name.
func parseRecipients(name, tmpl, lang, channels, text string) ([]map[string]any, error) {
	tmpl, lang = strings.TrimSpace(tmpl), strings.TrimSpace(lang)
	if tmpl == "" {
		return nil, errors.New("template: choose the campaign's template")
	}
	rd := csv.NewReader(strings.NewReader(strings.TrimSpace(text)))
	rd.TrimLeadingSpace = true
	rows, err := rd.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("recipients: not CSV: %w", err)
	}
	if len(rows) < 2 {
		return nil, errors.New("recipients: a header row (to,param,...) and at least one recipient")
	}
	head := rows[0]
	col := slices.Index(head, "to")
	if col < 0 {
		return nil, errors.New("recipients: the header row has no \"to\" column")
	}
	if len(rows)-1 > MaxImportRows {
		return nil, fmt.Errorf("recipients: %d rows, more than %d; use `herald import` for a file", len(rows)-1, MaxImportRows)
	}
	var chans []string
	for _, c := range strings.Split(channels, ",") {
		if c = strings.TrimSpace(c); c != "" {
			chans = append(chans, c)
		}
	}
	jobs := make([]map[string]any, 0, len(rows)-1)
	for i, row := range rows[1:] {
		params, buttons := map[string]string{}, map[string]string{}
		for k, v := range row {
			switch {
			case k == col || k >= len(head):
			case strings.HasPrefix(head[k], "button"):
				buttons[strings.TrimPrefix(head[k], "button")] = v
			default:
				params[head[k]] = v
			}
		}
		j := map[string]any{"id": fmt.Sprintf("%s-%06d", name, i+1), "to": row[col], "template": tmpl, "campaign": name}
		if lang != "" {
			j["language"] = lang
		}
		if len(params) > 0 {
			j["params"] = params
		}
		if len(buttons) > 0 {
			j["buttons"] = buttons
		}
		if len(chans) > 0 {
			j["channels"] = chans
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func statusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return http.StatusServiceUnavailable
}
