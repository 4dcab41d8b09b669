package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/importer"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
)

const importUsage = `usage: herald import [flags] FILE.csv|FILE.jsonl

Queues one templated notification per row, straight to NATS (HERALD_NATS_URL). Each job id
comes from the campaign and the row's key column, so running the same import again (after a
crash or Ctrl-C) queues nobody twice and says how many rows were already queued. Rejected
rows go to a reject file with their line number and reason.

Examples:
  herald import customers.csv --campaign bonus-2026-11 --template bonus_expiring \
      --map name=first_name --map amount=bonus --map date=expires
  herald import orders.csv --campaign pickup-11-25 --template order_ready \
      --map order=order_no --map address=point --map until=keep_until --button 0=order_no
  herald import base.jsonl --campaign outage-42 --template outage --to msisdn --send-at 2026-11-25T10:00:00+03:00

Flags:
`

// cmdImport runs a campaign import with a progress bar (plain progress lines when stderr is
// not a terminal) and records the campaign.
func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.Usage = usageOf(fs, importUsage)
	name := fs.String("campaign", "", "campaign name (required; part of every job id)")
	tpl := fs.String("template", "", "template name (required)")
	lang := fs.String("language", "", "template language (default HERALD_DEFAULT_LANGUAGE)")
	to := fs.String("to", importer.DefaultToColumn, "column with the phone number")
	key := fs.String("key", "", "column identifying a row for idempotency (default: the --to column)")
	prio := fs.String("priority", "bulk", "bulk or transactional")
	tenant := fs.String("tenant", "", "tenant of every job and of the campaign (default \"default\")")
	sendAt := fs.String("send-at", "", "schedule the whole batch (RFC 3339); a send_at column overrides it per row")
	rejects := fs.String("rejects", "", "reject file (default FILE.rejects.csv)")
	format := fs.String("format", "", "csv or jsonl (default: from the extension)")
	output := fs.String("output", "text", "text or json (the summary)")
	maps := kvFlag{}
	fs.Var(maps, "map", "template parameter from a column: param=column (repeatable)")
	buttons := kvFlag{}
	fs.Var(buttons, "button", "template button parameter from a column: index=column, e.g. 0=order (repeatable)")
	// Flags may follow the file name, as the examples show.
	files, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(files) > 1 {
		return usageError{"one file at a time"}
	}
	var file string
	if len(files) == 1 {
		file = files[0]
	}
	if file == "" || *name == "" || *tpl == "" {
		return usageError{"need FILE, --campaign and --template (herald import -h)"}
	}
	var at time.Time
	if *sendAt != "" {
		t, err := time.Parse(time.RFC3339, *sendAt)
		if err != nil {
			return usageError{"--send-at: must be RFC 3339, e.g. 2026-11-25T10:00:00+03:00"}
		}
		at = t
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return usageError{"HERALD_NATS_URL: required"}
	}
	// The import streams: a soft memory limit keeps the garbage collector from letting the
	// heap grow with the file's size (GOMEMLIMIT overrides it). Under that limit the collector
	// may run less often than GOGC=100 would make it (GOGC overrides it): its live heap is a
	// few MB, so at 100 it collected every few thousand rows and cost some 7% of the import's
	// CPU, which nats-server on the same machine could use (peak RSS 56 -> 71 MB for 1M rows).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(48 << 20)
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(400)
		}
	}
	log := telemetry.NewLogger(stderr, "warn", "text")
	nc, js, err := connectJS(cfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	// Idempotent: an import may be the first thing run against a new NATS.
	if err := streams.Ensure(ctx, js, app.StreamOptions(cfg)); err != nil {
		return err
	}
	isTTY := false
	if f, ok := stderr.(*os.File); ok {
		isTTY = term.IsTerminal(int(f.Fd()))
	}
	kv, err := js.KeyValue(ctx, streams.CampaignsKV)
	if err != nil {
		return fmt.Errorf("campaign bucket %s: %w", streams.CampaignsKV, err)
	}
	// The template is checked against the tenant's catalogue before anything goes: a job
	// its template cannot take would fail hours later, one by one.
	tkv, err := js.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		return fmt.Errorf("template bucket %s: %w", streams.TemplatesKV, err)
	}
	// The campaign is the tenant's (campaigns are per tenant), within its cap.
	bucket := campaign.Limited{KeyValue: kv, Max: cfg.CampaignsMaxPerTenant}
	owner := job.TenantOr(*tenant)
	language := *lang
	if language == "" {
		language = cfg.DefaultLanguage
	}
	record := func(ctx context.Context, queued int64) error {
		_, err := campaign.Update(ctx, bucket, owner, *name, func(m *campaign.Meta) {
			m.Template, m.Language = *tpl, language
			m.Queued += queued
		})
		return err
	}
	var registerErr error
	opts := importer.Options{
		File: file, Format: *format, Campaign: *name, Template: *tpl, Language: *lang, To: *to, Key: *key,
		Map: maps, Buttons: buttons, Priority: *prio, Tenant: *tenant, SendAt: at, RejectFile: *rejects,
		Progress: importer.NewProgress(stderr, isTTY), Jobs: cfg.JobOptions(), Catalogue: importer.KVCatalogue{KV: tkv},
		// Registered before the first row goes: a campaign past the tenant's cap queues nothing.
		Register: func(ctx context.Context) error {
			if err := record(ctx, 0); err != nil {
				registerErr = fmt.Errorf("campaign %s of tenant %s not registered, nothing queued: %w", *name, owner, err)
				return registerErr
			}
			return nil
		},
	}
	sum, runErr := importer.Run(ctx, js, opts)
	if errors.Is(runErr, importer.ErrUsage) {
		// The sentence without the sentinel's own words ("import usage: ").
		return usageError{strings.TrimPrefix(runErr.Error(), importer.ErrUsage.Error()+": ")}
	}
	if registerErr != nil {
		return registerErr
	}
	// Count what was queued even after Ctrl-C: what was queued is queued.
	if sum.Queued > 0 {
		if err := record(context.WithoutCancel(ctx), sum.Queued); err != nil {
			fmt.Fprintf(stderr, "warning: campaign %s of tenant %s: %d queued jobs not counted: %v\n", *name, owner, sum.Queued, err)
		}
	}
	if *output == "json" {
		_ = json.NewEncoder(stdout).Encode(sum)
	} else {
		fmt.Fprintln(stdout, sum.String())
	}
	return runErr
}

// cmdCampaign shows or cancels a campaign through the API.
func cmdCampaign(ctx context.Context, args []string, stdout io.Writer) error {
	if err := subUsage(args, campaignUsage, stdout); err != nil {
		return err
	}
	if len(args) == 0 || (args[0] != "show" && args[0] != "cancel") {
		return usageError{"name a command: show or cancel (herald campaign -h)"}
	}
	fs := flag.NewFlagSet("campaign "+args[0], flag.ContinueOnError)
	output := fs.String("output", "text", "text or json")
	fs.Usage = usageOf(fs, campaignUsage+"\nFlags:\n")
	pos, err := parseFlags(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"want exactly one campaign NAME (herald campaign -h)"}
	}
	c, err := newAPIClient()
	if err != nil {
		return err
	}
	name := url.PathEscape(pos[0])
	if args[0] == "cancel" {
		// The campaign is the API key's tenant's: another tenant's of the same name is not
		// touched.
		var m struct {
			campaign.Meta
			Error string `json:"error"`
		}
		code, err := c.do(ctx, http.MethodPost, "/v1/campaigns/"+name+"/cancel", nil, &m)
		if code >= 300 && m.Error != "" {
			return fmt.Errorf("HTTP %d: %s", code, m.Error)
		}
		if err != nil {
			return err
		}
		if code >= 300 || m.Canceled == nil {
			return fmt.Errorf("not canceled (HTTP %d)", code)
		}
		fmt.Fprintf(stdout, "campaign %s of tenant %s canceled at %s: jobs not yet sent will not be sent\n",
			m.Name, job.TenantOr(m.Tenant), m.Canceled.Format(time.RFC3339))
		return nil
	}
	var v campaign.View
	code, err := c.do(ctx, http.MethodGet, "/v1/campaigns/"+name, nil, &v)
	if err != nil {
		return err
	}
	if code == http.StatusNotFound {
		return notFoundError{"no campaign named " + pos[0]}
	}
	if code >= 300 {
		return fmt.Errorf("HTTP %d", code)
	}
	// Why jobs wait, from the schedules that hold them, when the CLI reaches NATS (an
	// operator's view, as herald import and dlq are).
	held, scanned, heldErr := heldOf(ctx, v)
	if *output == "json" {
		return json.NewEncoder(stdout).Encode(struct {
			campaign.View
			Waiting []heldGroup `json:"waiting,omitempty"`
		}{v, held})
	}
	if err := printCampaign(stdout, v); err != nil {
		return err
	}
	printHeld(stdout, v, held, scanned, heldErr)
	return nil
}

// heldOf reads why the campaign's jobs wait (campaignHeld) when HERALD_NATS_URL is set.
func heldOf(ctx context.Context, v campaign.View) ([]heldGroup, int, error) {
	waiting := v.States["scheduled"] + v.States["queued"] + v.Pending
	cfg, err := config.Load()
	if err != nil || cfg.NATSURL == "" || waiting == 0 {
		return nil, 0, nil
	}
	nc, js, err := connectJS(cfg, telemetry.NewLogger(os.Stderr, "warn", "text"))
	if err != nil {
		return nil, 0, err
	}
	defer nc.Close()
	return campaignHeld(ctx, js, job.TenantOr(v.Tenant), v.Name, time.Now())
}

// printHeld says why the campaign's jobs wait, and until when; without NATS, what may hold
// a scheduled job and where to look.
func printHeld(w io.Writer, v campaign.View, held []heldGroup, scanned int, err error) {
	switch {
	case err != nil:
		fmt.Fprintf(w, "waiting	not read: %v\n", err)
	case len(held) > 0:
		for _, g := range held {
			line := explainWait(g.Reason, g.Last)
			if !g.First.Equal(g.Last) {
				line = fmt.Sprintf("%s (the first at %s)", line, g.First.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(w, "waiting  %d jobs: %s\n", g.Jobs, line)
		}
		if scanned == maxHeldScan {
			fmt.Fprintf(w, "(the first %d held jobs of the tenant read)\n", maxHeldScan)
		}
	case v.States["scheduled"] > 0:
		fmt.Fprintf(w, "waiting  %d scheduled jobs wait for send_at, quiet hours (bulk), a daily or tier limit: "+
			"herald status ID says which and until when (with HERALD_NATS_URL set, this view counts them)\n", v.States["scheduled"])
	}
}

func printCampaign(w io.Writer, v campaign.View) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign\t%s\n", v.Name)
	if v.Tenant != "" {
		fmt.Fprintf(tw, "tenant\t%s\n", v.Tenant)
	}
	if v.Template != "" {
		fmt.Fprintf(tw, "template\t%s %s\n", v.Template, strings.ToLower(v.Category))
	}
	if v.Canceled != nil {
		fmt.Fprintf(tw, "canceled\t%s\n", v.Canceled.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "queued\t%d (seen by workers %d, pending %d)\n", v.Queued, v.Seen, v.Pending)
	for _, k := range sortedKeys(v.States) {
		fmt.Fprintf(tw, "  %s\t%d\n", k, v.States[k])
	}
	for _, k := range sortedKeys(v.Channels) {
		if k == "sms" && v.SMSSegments > 0 {
			fmt.Fprintf(tw, "sent on %s\t%d (%d segments)\t%.2f %s\n", k, v.Channels[k], v.SMSSegments, v.Cost[k], v.Currency)
			continue
		}
		fmt.Fprintf(tw, "sent on %s\t%d\t%.2f %s\n", k, v.Channels[k], v.Cost[k], v.Currency)
	}
	fmt.Fprintf(tw, "rate\t%.1f/s\n", v.Rate)
	fmt.Fprintf(tw, "estimated cost\t%.2f %s\n", v.Total, v.Currency)
	return tw.Flush()
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
