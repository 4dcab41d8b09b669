package console

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/dlq"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/lint"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
)

// lookupPage is a notification's timeline, or the notifications sent to a number.
type lookupPage struct {
	Query   string
	Record  *status.Record
	To      string // masked
	Matches []recipientRow
}

func (h *handlers) lookup(w http.ResponseWriter, r *http.Request, u *user) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	p := page{Title: "Lookup", Nav: "lookup", User: u}
	lp := lookupPage{Query: q}
	switch {
	case q == "":
	case looksLikePhone(q):
		e164, err := phone.Normalize(q, h.c.cfg.Region)
		if err != nil {
			p.Error = "phone: " + err.Error()
			break
		}
		lp.To = phone.Mask(e164)
		ids, err := h.c.cfg.Records.JobsTo(r.Context(), u.Tenant, e164)
		if err != nil {
			p.Error = "status store unavailable"
			break
		}
		refs := make([]string, len(ids))
		for i, id := range ids {
			refs[i] = job.Ref(u.Tenant, id)
		}
		recs, err := h.c.cfg.Records.GetMany(r.Context(), refs)
		if err != nil {
			p.Error = "status store unavailable"
			break
		}
		for _, rec := range recs {
			if rec != nil {
				lp.Matches = append(lp.Matches, rowOf(rec))
			}
		}
		switch len(lp.Matches) {
		case 0:
			p.Error = "no notification to " + lp.To + " in tenant " + u.Tenant
		case 1:
			lp.Record, _, p.Error = h.record(r.Context(), u, lp.Matches[0].ID)
		}
	default:
		var code int
		if lp.Record, code, p.Error = h.record(r.Context(), u, q); code != 0 {
			w.WriteHeader(code)
		}
	}
	p.Data = lp
	h.render(w, "lookup", p)
}

// looksLikePhone tells a phone number from a notification id: digits, with an optional
// leading '+' and the spaces, dashes and brackets people type.
func looksLikePhone(q string) bool {
	digits := 0
	for i, c := range q {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' && i == 0, c == ' ', c == '(', c == ')':
		default:
			return false
		}
	}
	return digits >= 7
}

// record reads one notification through the API, its phone masked; on error, the API's
// status code and text.
func (h *handlers) record(ctx context.Context, u *user, id string) (*status.Record, int, string) {
	var rec status.Record
	if _, err := h.callAPI(ctx, u, http.MethodGet, "/v1/notifications/"+url.PathEscape(id), nil, &rec); err != nil {
		return nil, statusOf(err), err.Error()
	}
	rec.To = phone.Mask(rec.To)
	return &rec, 0, ""
}

// letterRow is a dead letter as the table shows it.
type letterRow struct {
	dlq.DeadLetter
	Campaign, To string
}

type dlqFilter struct {
	Reason, Tenant, Campaign, Since string
}

type dlqPage struct {
	Filter  dlqFilter
	Rows    []letterRow
	Reasons []string
	Total   int
	// Replayed are the jobs of the last replay, with their state now; ReplayedQuery reloads
	// the page to see them progress. It is the request's query encoded anew (every byte
	// escaped), so it is safe in the link's href as it is; a plain string would be escaped
	// as one query value there, "=" and "&" included.
	Replayed      []recipientRow
	ReplayedQuery template.URL
}

// letters reads the DLQ for the session: a tenant's own letters; an operator's of the
// tenant the filter names ("*" every tenant).
func (h *handlers) letters(ctx context.Context, u *user, f dlqFilter) ([]letterRow, error) {
	if h.c.cfg.JS == nil {
		return nil, nil
	}
	all, err := dlq.Read(ctx, h.c.cfg.JS, f.Reason)
	if err != nil {
		return nil, err
	}
	tenant := u.Tenant
	if u.Operator != "" && f.Tenant != "" {
		tenant = f.Tenant
	}
	if tenant == "*" {
		tenant = ""
	}
	var since time.Time
	if f.Since != "" {
		since, _ = time.ParseInLocation("2006-01-02T15:04", f.Since, time.UTC)
	}
	var out []letterRow
	for _, l := range dlq.OfTenant(all, tenant) {
		if !since.IsZero() && l.At.Before(since) {
			continue
		}
		var j struct {
			Campaign string `json:"campaign"`
			To       string `json:"to"`
		}
		_ = json.Unmarshal(l.Data, &j)
		if f.Campaign != "" && j.Campaign != f.Campaign {
			continue
		}
		out = append(out, letterRow{DeadLetter: l, Campaign: j.Campaign, To: phone.Mask(j.To)})
	}
	return out, nil
}

func dlqFilterOf(v url.Values) dlqFilter {
	return dlqFilter{Reason: strings.TrimSpace(v.Get("reason")), Tenant: strings.TrimSpace(v.Get("tenant")),
		Campaign: strings.TrimSpace(v.Get("campaign")), Since: strings.TrimSpace(v.Get("since"))}
}

func (h *handlers) deadLetters(w http.ResponseWriter, r *http.Request, u *user) {
	f := dlqFilterOf(r.URL.Query())
	rows, err := h.letters(r.Context(), u, f)
	p := page{Title: "Dead letters", Nav: "dlq", User: u, Flash: r.URL.Query().Get("flash")}
	if err != nil {
		p.Error = "DLQ not read: " + err.Error()
	}
	reasons := map[string]bool{}
	for _, l := range rows {
		reasons[l.Reason] = true
	}
	dp := dlqPage{Filter: f, Total: len(rows), Replayed: h.outcomes(r.Context(), u, r.URL.Query().Get("replayed")),
		ReplayedQuery: template.URL(r.URL.Query().Encode())}
	for k := range reasons {
		dp.Reasons = append(dp.Reasons, k)
	}
	sort.Strings(dp.Reasons)
	if len(rows) > 500 {
		rows = rows[:500]
	}
	dp.Rows = rows
	p.Data = dp
	h.render(w, "dlq", p)
}

// replay republishes the selected letters, or every letter matching the filter, of the
// session's tenant.
func (h *handlers) replay(w http.ResponseWriter, r *http.Request, u *user) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "form: "+err.Error(), http.StatusBadRequest)
		return
	}
	f := dlqFilterOf(r.PostForm)
	rows, err := h.letters(r.Context(), u, f)
	if err != nil {
		http.Error(w, "DLQ not read: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	var chosen []dlq.DeadLetter
	all := r.PostFormValue("all") == "1"
	seqs := map[string]bool{}
	for _, s := range r.PostForm["seq"] {
		seqs[s] = true
	}
	if !all && len(seqs) == 0 {
		http.Redirect(w, r, "/console/dlq?"+filterQuery(f, "Nothing selected: tick rows, or replay everything that matches."), http.StatusSeeOther)
		return
	}
	for _, l := range rows {
		if all || seqs[strconv.FormatUint(l.Seq, 10)] {
			chosen = append(chosen, l.DeadLetter)
		}
	}
	n, err := dlq.Replay(r.Context(), h.c.cfg.JS, chosen, nil)
	msg := fmt.Sprintf("Replayed %d of %d; their jobs are queued again.", n, len(chosen))
	if err != nil {
		msg = fmt.Sprintf("Replay stopped after %d of %d: %v", n, len(chosen), err)
	}
	h.c.log.Info("console: dead letters replayed", "tenant", u.Tenant, "operator", u.Operator, "replayed", n)
	var refs []string
	for _, l := range chosen[:min(len(chosen), maxOutcomes)] {
		refs = append(refs, job.Ref(l.Tenant, l.JobID))
	}
	q := filterQuery(f, msg) + "&" + url.Values{"replayed": {strings.Join(refs, ",")}}.Encode()
	http.Redirect(w, r, "/console/dlq?"+q, http.StatusSeeOther)
}

// maxOutcomes bounds the replayed jobs whose outcome the page after a replay shows.
const maxOutcomes = 100

// outcomes reads the records of replayed jobs (refs "tenant/id"): a tenant's own only.
func (h *handlers) outcomes(ctx context.Context, u *user, list string) []recipientRow {
	var refs []string
	for _, ref := range strings.Split(list, ",") {
		t, _, ok := strings.Cut(ref, "/")
		if ok && (u.Operator != "" || t == u.Tenant) && len(refs) < maxOutcomes {
			refs = append(refs, ref)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	recs, err := h.c.cfg.Records.GetMany(ctx, refs)
	if err != nil {
		return nil
	}
	var out []recipientRow
	for _, rec := range recs {
		if rec != nil {
			out = append(out, rowOf(rec))
		}
	}
	return out
}

func filterQuery(f dlqFilter, flash string) string {
	return url.Values{"reason": {f.Reason}, "tenant": {f.Tenant}, "campaign": {f.Campaign}, "since": {f.Since}, "flash": {flash}}.Encode()
}

func (h *handlers) senders(w http.ResponseWriter, r *http.Request, u *user) {
	var res struct {
		Data []api.SenderView `json:"senders"`
	}
	p := page{Title: "Senders", Nav: "senders", User: u, Stream: "overview"}
	if _, err := h.callAPI(r.Context(), u, http.MethodGet, "/v1/senders", nil, &res); err != nil {
		p.Error = err.Error()
	}
	p.Data = res.Data
	h.render(w, "senders", p)
}

func (h *handlers) templates(w http.ResponseWriter, r *http.Request, u *user) {
	var res struct {
		Data []json.RawMessage `json:"data"`
	}
	p := page{Title: "Templates", Nav: "templates", User: u}
	if _, err := h.callAPI(r.Context(), u, http.MethodGet, "/v1/templates", nil, &res); err != nil {
		p.Error = err.Error()
	}
	type row struct {
		Name, Language, Status, Category, Quality string
		Version                                   int
	}
	var rows []row
	for _, raw := range res.Data {
		var d struct {
			Name, Language, Status, Category string
			Version                          int
			Quality                          string `json:"quality_score"`
		}
		_ = json.Unmarshal(raw, &d)
		rows = append(rows, row{d.Name, d.Language, d.Status, d.Category, d.Quality, d.Version})
	}
	p.Data = map[string]any{"Rows": rows, "Sample": promoSample}
	h.render(w, "templates", p)
}

// promoSample starts the lint playground: a utility template with promotional wording.
const promoSample = `{
  "name": "order_update",
  "language": "en",
  "category": "UTILITY",
  "components": [
    {"type": "BODY", "text": "Your order {{1}} has shipped. Use code SALE50 for 50% off your next purchase, limited time offer!",
     "example": {"body_text": [["12345"]]}}
  ]
}`

// lint answers the playground: the findings of the posted definition, as JSON.
func (h *handlers) lint(w http.ResponseWriter, r *http.Request, _ *user) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<10))
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "definition larger than 256 KiB"})
		return
	}
	found, err := lint.LintJSON(body)
	if err != nil {
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "findings": []lint.Finding{}})
		return
	}
	if found == nil {
		found = []lint.Finding{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"findings": found, "errors": lint.Errors(found)})
}

// suppression is the API's answer for a number.
type suppression struct {
	Phone               string     `json:"phone"`
	Tenant              string     `json:"tenant"`
	Suppressed          bool       `json:"suppressed"`
	MarketingSuppressed *bool      `json:"marketing_suppressed"`
	By                  string     `json:"by"`
	At                  *time.Time `json:"at"`
}

func (h *handlers) suppressions(w http.ResponseWriter, r *http.Request, u *user) {
	q := strings.TrimSpace(r.URL.Query().Get("phone"))
	p := page{Title: "Suppressions", Nav: "suppressions", User: u, Flash: r.URL.Query().Get("flash")}
	data := map[string]any{"Phone": q}
	if q != "" {
		var s suppression
		if _, err := h.callAPI(r.Context(), u, http.MethodGet, "/v1/suppressions/"+url.PathEscape(q), nil, &s); err != nil {
			p.Error = err.Error()
		} else {
			data["Masked"] = phone.Mask(s.Phone)
			data["Result"] = s
		}
	}
	p.Data = data
	h.render(w, "suppressions", p)
}

func (h *handlers) changeSuppression(w http.ResponseWriter, r *http.Request, u *user) {
	num := strings.TrimSpace(r.PostFormValue("phone"))
	method := http.MethodPost
	if r.PostFormValue("action") == "remove" {
		method = http.MethodDelete
	}
	path := "/v1/suppressions/" + url.PathEscape(num)
	if r.PostFormValue("category") == "marketing" {
		path += "?category=marketing"
	}
	msg := "Added to the suppression list."
	if method == http.MethodDelete {
		msg = "Removed from the suppression list."
	}
	if _, err := h.callAPI(r.Context(), u, method, path, nil, nil); err != nil {
		msg = "Not changed: " + err.Error()
	}
	http.Redirect(w, r, "/console/suppressions?"+url.Values{"phone": {num}, "flash": {msg}}.Encode(), http.StatusSeeOther)
}

// lane is one priority lane's backlog.
type lane struct {
	Name     string `json:"name"`
	Pending  uint64 `json:"pending"`
	InFlight uint64 `json:"inflight"`
}

// lanes reads each lane's consumer: jobs waiting and delivered but not yet acknowledged.
func (h *handlers) lanes(ctx context.Context) []lane {
	if h.c.cfg.JS == nil {
		return nil
	}
	var out []lane
	for _, c := range []struct{ name, label string }{{streams.ConsumerTransactional, "transactional"}, {streams.ConsumerBulk, "bulk"}} {
		cons, err := h.c.cfg.JS.Consumer(ctx, streams.JobsStream, c.name)
		if err != nil {
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		out = append(out, lane{Name: c.label, Pending: info.NumPending, InFlight: uint64(info.NumAckPending)})
	}
	return out
}
