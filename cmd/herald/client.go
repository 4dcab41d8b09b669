package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/dlq"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/lint"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
)

// apiClient talks to a running Herald API (HERALD_API_URL, HERALD_API_KEY).
type apiClient struct {
	base, key string
	hc        *http.Client
}

func newAPIClient() (*apiClient, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, err
	}
	if cfg.APIKey == "" {
		return nil, usageError{"HERALD_API_KEY: required (a key from the server's HERALD_API_KEYS; herald dev prints one)"}
	}
	return &apiClient{base: strings.TrimRight(cfg.APIURL, "/"), key: cfg.APIKey, hc: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends a request and decodes a JSON answer; HTTP errors become errors with the server's
// message (404 a notFoundError).
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("HERALD_API_URL %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return resp.StatusCode, notFoundError{apiMessage(resp.StatusCode, data)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("bad answer (%d): %s", resp.StatusCode, truncate(string(data), 300))
		}
	}
	if resp.StatusCode >= 400 && resp.StatusCode != http.StatusBadRequest {
		return resp.StatusCode, errors.New(apiMessage(resp.StatusCode, data))
	}
	return resp.StatusCode, nil
}

// truncate cuts s to at most n characters (not bytes: a Cyrillic reason stays readable).
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

type kvFlag map[string]string

func (k kvFlag) String() string { return "" }
func (k kvFlag) Set(v string) error {
	name, val, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	k[name] = val
	return nil
}

// cmdSend sends one notification through the API.
func cmdSend(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	file := fs.String("json", "", "the job as JSON: a file, or - for standard input (other flags then ignored)")
	id := fs.String("id", "", "job id, the idempotency key (required)")
	to := fs.String("to", "", "recipient phone number (required)")
	tpl := fs.String("template", "", "template name")
	lang := fs.String("language", "", "template language (default HERALD_DEFAULT_LANGUAGE on the server)")
	text := fs.String("text", "", "free-form text (inside the 24-hour window) instead of a template")
	smsText := fs.String("sms-text", "", "text for the SMS fallback")
	priority := fs.String("priority", "", "transactional (default) or bulk")
	channels := fs.String("channels", "", "cascade override, e.g. white,sms")
	output := fs.String("output", "text", "text or json")
	params := kvFlag{}
	buttons := kvFlag{}
	fs.Var(params, "param", "template parameter name=value (repeatable)")
	fs.Var(buttons, "button", "button parameter index=value (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: herald send [flags]

Examples:
  herald send -id order-1-ready -to +79001234567 -template order_ready \
      -param order=1 -param address="ул. Текстильщиков, д. 20" -param until=21.02.2027 -button 0=1
  herald send -json job.json

Exit status: 0 queued (or already known), 1 failed, 2 invalid job or flags.

Flags:`)
		fs.PrintDefaults()
	}
	if pos, err := parseFlags(fs, args, stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{"herald send takes flags only, got " + pos[0] + " (herald send -h)"}
	}
	var body []byte
	if *file != "" {
		var err error
		if *file == "-" {
			body, err = io.ReadAll(os.Stdin)
		} else {
			body, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
	} else {
		j := map[string]any{"id": *id, "to": *to}
		for k, v := range map[string]string{"template": *tpl, "language": *lang, "text": *text, "sms_text": *smsText, "priority": *priority} {
			if v != "" {
				j[k] = v
			}
		}
		if len(params) > 0 {
			j["params"] = params
		}
		if len(buttons) > 0 {
			j["buttons"] = buttons
		}
		if *channels != "" {
			j["channels"] = strings.Split(*channels, ",")
		}
		body, _ = json.Marshal(j)
	}
	c, err := newAPIClient()
	if err != nil {
		return err
	}
	var out struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		Duplicate bool   `json:"duplicate"`
		Error     string `json:"error"`
		Fields    []struct{ Field, Reason string }
	}
	code, err := c.do(ctx, http.MethodPost, "/v1/notifications", body, &out)
	if err != nil {
		return err
	}
	if *output == "json" {
		_ = json.NewEncoder(stdout).Encode(out)
	}
	if code == http.StatusBadRequest {
		var lines []string
		for _, f := range out.Fields {
			lines = append(lines, "  "+f.Field+": "+f.Reason)
		}
		return usageError{"invalid job:\n" + strings.Join(lines, "\n")}
	}
	if *output != "json" {
		note := ""
		if out.Duplicate {
			note = " (already known: not queued again)"
		}
		fmt.Fprintf(stdout, "%s %s%s\n", out.ID, out.State, note)
	}
	return nil
}

// cmdStatus prints a notification's record.
func cmdStatus(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	output := fs.String("output", "text", "text or json")
	fs.Usage = usageOf(fs, "Usage: herald status [-output json] ID\n\nA notification of the API key's tenant: its state, why it waits and until when, and its history.\nExit status: 0 found, 3 no such notification, 1 other failure.\n\nFlags:\n")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"want exactly one notification id (herald status -h)"}
	}
	c, err := newAPIClient()
	if err != nil {
		return err
	}
	var rec map[string]any
	if _, err := c.do(ctx, http.MethodGet, "/v1/notifications/"+url.PathEscape(pos[0]), nil, &rec); err != nil {
		return err
	}
	if *output == "json" {
		return json.NewEncoder(stdout).Encode(rec)
	}
	fmt.Fprintf(stdout, "%v  %v", rec["id"], rec["state"])
	if r, ok := rec["reason"]; ok {
		fmt.Fprintf(stdout, "  (%v)", r)
	}
	fmt.Fprintln(stdout)
	if why := recordWait(rec); why != "" {
		fmt.Fprintln(stdout, why)
	}
	hist, _ := rec["history"].([]any)
	if len(hist) == 0 {
		// Suppressed, canceled, queued or waiting: nothing was tried yet (or ever will be).
		fmt.Fprintln(stdout, "no attempt on any channel")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tCHANNEL\tSTATE\tPROVIDER ID\tCODE\tREASON")
	for _, h := range hist {
		a, _ := h.(map[string]any)
		// A row per state change: the attempt as sent, then each report that changed it.
		changes, _ := a["statuses"].([]any)
		if len(changes) == 0 {
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\n", a["at"], a["channel"], a["state"], orDash(a["provider_message_id"]), orDash(a["code"]), orDash(a["reason"]))
			continue
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\n", a["at"], a["channel"], "sent", orDash(a["provider_message_id"]), "-", "-")
		for _, c := range changes {
			ch, _ := c.(map[string]any)
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\n", ch["at"], a["channel"], ch["state"], orDash(a["provider_message_id"]), orDash(ch["code"]), orDash(ch["reason"]))
		}
	}
	return tw.Flush()
}

func orDash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}

// cmdTemplates manages the catalogue: list and add through the API (the caller's tenant's
// catalogue), sync from the white provider and migrate straight in the bucket (operator
// commands: they need HERALD_NATS_URL, not an API key).
func cmdTemplates(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := subUsage(args, templatesUsage, stdout); err != nil {
		return err
	}
	if len(args) == 0 {
		return usageError{"name a command: list, add, lint, sync or migrate (herald templates -h)"}
	}
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("templates list", flag.ContinueOnError)
		output := fs.String("output", "text", "text or json")
		fs.Usage = usageOf(fs, "usage: herald templates list [-output json]\n\nThe API key's tenant's catalogue: name, language, category, status, version.\n\nFlags:\n")
		if pos, err := parseFlags(fs, args[1:], stdout); err != nil {
			return err
		} else if len(pos) > 0 {
			return usageError{"herald templates list takes no arguments, got " + pos[0]}
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		var out struct {
			Data []*templates.Definition `json:"data"`
		}
		if _, err := c.do(ctx, http.MethodGet, "/v1/templates", nil, &out); err != nil {
			return err
		}
		if *output == "json" {
			return json.NewEncoder(stdout).Encode(out.Data)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tLANGUAGE\tCATEGORY\tSTATUS\tVERSION")
		for _, d := range out.Data {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", d.Name, d.Language, d.Category, d.Status, d.Version)
		}
		return tw.Flush()
	case "lint":
		return templatesLint(args[1:], stdout, stderr)
	case "add":
		fs := flag.NewFlagSet("templates add", flag.ContinueOnError)
		force := fs.Bool("force", false, "register it (pending) even when lint predicts a rejection")
		const use = "usage: herald templates add [-force] FILE.json\n\nA definition in the Cloud API format: linted first, then submitted for review; it is PENDING\nuntil Meta (in herald dev, the simulator) approves or rejects it.\n\nFlags:\n"
		fs.Usage = usageOf(fs, use)
		pos, err := parseFlags(fs, args[1:], stdout)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{"want exactly one FILE.json (herald templates add -h)"}
		}
		data, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		// Lint on every add, before the catalogue's own check, so that every problem shows
		// at once: a rejected template costs days and a campaign. The count is lint's: the
		// findings that predict a rejection, not the warnings.
		if found, err := lint.LintJSON(data); err == nil && len(found) > 0 {
			lint.Format(stderr, pos[0], found)
			if n := lint.Errors(found); n > 0 && !*force {
				return lintFailed{n}
			}
		}
		if _, err := templates.ParseDefinition(data); err != nil {
			return usageError{err.Error()}
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		var d templates.Definition
		path := "/v1/templates"
		if *force {
			path += "?force=true"
		}
		code, err := c.do(ctx, http.MethodPost, path, data, &d)
		if err != nil {
			return err
		}
		if code >= 300 {
			return fmt.Errorf("not added (HTTP %d)", code)
		}
		fmt.Fprintf(stdout, "%s.%s version %d %s\n", d.Name, d.Language, d.Version, d.Status)
		return nil
	case "sync":
		fs := flag.NewFlagSet("templates sync", flag.ContinueOnError)
		tenant := fs.String("tenant", "", "sync into this tenant's catalogue only (default: every tenant of each WABA)")
		waba := fs.String("waba", "", "sync this WABA only (default: every waba_id of the fleet file's white senders, or HERALD_WHITE_WABA_ID)")
		fs.Usage = usageOf(fs, "usage: herald templates sync [-tenant T] [-waba ID]\n\nCopies each WABA's templates, as Meta lists them, statuses included, into the catalogues\nof the tenants that send through it (HERALD_NATS_URL), recording the review per WABA: the\nWABAs of the fleet file's white senders (HERALD_CONFIG_FILE), or HERALD_WHITE_WABA_ID.\n\nFlags:\n")
		if pos, err := parseFlags(fs, args[1:], stdout); err != nil {
			return err
		} else if len(pos) != 0 {
			return usageError{"herald templates sync takes no arguments, got " + pos[0]}
		}
		return templatesSync(ctx, *tenant, *waba, stdout)
	case "migrate":
		fs := flag.NewFlagSet("templates migrate", flag.ContinueOnError)
		also := fs.String("tenants", "", "copy the untenanted templates to these tenants too, comma-separated (default: the tenants of HERALD_API_KEYS)")
		keep := fs.Bool("keep", false, "copy only, keep the untenanted entries (before the upgrade, while older processes run)")
		fs.Usage = usageOf(fs, "usage: herald templates migrate [-keep] [-tenants T,...]\n\nMoves the catalogue entries stored before tenancy to the tenants' keys (HERALD_NATS_URL):\n-keep before the upgrade; without, once every process runs this version.\n\nFlags:\n")
		if pos, err := parseFlags(fs, args[1:], stdout); err != nil {
			return err
		} else if len(pos) != 0 {
			return usageError{"herald templates migrate takes no arguments, got " + pos[0]}
		}
		return templatesMigrate(ctx, *also, *keep, stdout)
	}
	return usageError{"unknown templates command " + args[0] + " (herald templates -h)"}
}

// catalogueOf connects to NATS and opens the template bucket, for the operator commands.
func catalogueOf(ctx context.Context, cfg *config.Config, log *slog.Logger) (*nats.Conn, jetstream.KeyValue, error) {
	nc, js, err := connectJS(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	kv, err := js.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("template bucket (start herald api or worker once to create it): %w", err)
	}
	return nc, kv, nil
}

// configuredTenants are the tenants the deployment names, sorted: those of HERALD_API_KEYS
// and of the fleet file (HERALD_CONFIG_FILE), with the fleet's Owners of each WABA (nil
// without a file: every tenant shares HERALD_WHITE_WABA_ID).
func configuredTenants(cfg *config.Config) ([]string, templates.Owners, error) {
	var out []string
	for _, t := range cfg.Tenants() {
		out = append(out, t)
	}
	var owners templates.Owners
	f, fromFile, err := app.LoadFleet(cfg)
	if err != nil {
		return nil, nil, err
	}
	if fromFile {
		out = append(out, f.TenantNames()...)
		owners = templates.FleetOwners(f)
	}
	slices.Sort(out)
	return slices.Compact(out), owners, nil
}

// templatesMigrate moves the catalogue entries stored before tenancy to the default
// tenant's keys, copying them to the tenants that used them too (also, else those of
// HERALD_API_KEYS); keep copies only.
func templatesMigrate(ctx context.Context, also string, keep bool, stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return usageError{"HERALD_NATS_URL: required for migrate"}
	}
	tenants, _, err := configuredTenants(cfg)
	if err != nil {
		return err
	}
	if also != "" {
		tenants = strings.Split(also, ",")
	}
	for _, t := range tenants {
		if !job.ValidTenant(t) {
			return usageError{fmt.Sprintf("-tenants: %q: must be 1-%d lower-case letters, digits and hyphens", t, job.MaxTenantLen)}
		}
	}
	log := telemetry.NewLogger(os.Stderr, cfg.LogLevel, "text")
	nc, kv, err := catalogueOf(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	return migrateTemplates(ctx, kv, templates.MigrateOptions{Also: tenants, Keep: keep}, stdout)
}

func migrateTemplates(ctx context.Context, kv jetstream.KeyValue, o templates.MigrateOptions, stdout io.Writer) error {
	res, err := templates.Migrate(ctx, kv, o)
	if err != nil {
		return err
	}
	targets := templates.WABATenants(nil, "", append(o.Also, job.DefaultTenant))
	fmt.Fprintf(stdout, "migrate done: %d untenanted templates copied to %s (%d keys written; a tenant's own version was kept), %d deleted\n",
		res.Found-len(res.Kept), strings.Join(targets, ", "), res.Copies, res.Moved)
	if len(res.Kept) > 0 {
		fmt.Fprintf(stdout, "left in place, not a valid definition: %s\n", strings.Join(res.Kept, ", "))
		return fmt.Errorf("%d templates not migrated", len(res.Kept))
	}
	return nil
}

// cmdDLQ lists and replays dead letters straight from JetStream.
func cmdDLQ(ctx context.Context, args []string, stdout io.Writer) error {
	if err := subUsage(args, dlqUsage, stdout); err != nil {
		return err
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return usageError{"name a command: list or replay (herald dlq -h)"}
	}
	fs := flag.NewFlagSet("dlq "+args[0], flag.ContinueOnError)
	reason := fs.String("reason", "", "only dead letters with this reason (invalid, rejected, exhausted, panic)")
	tenant := fs.String("tenant", "", "only this tenant's dead letters (ids are per tenant: replay IDs with it)")
	output := fs.String("output", "text", "text or json (list)")
	fs.Usage = usageOf(fs, dlqUsage)
	ids, err := parseFlags(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	if args[0] == "list" && len(ids) > 0 {
		return usageError{"herald dlq list takes no ids (herald dlq replay ID...)"}
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return usageError{"HERALD_NATS_URL: required"}
	}
	nc, js, err := connectJS(cfg, telemetry.NewLogger(os.Stderr, "warn", "text"))
	if err != nil {
		return err
	}
	defer nc.Close()
	letters, err := dlq.Read(ctx, js, *reason)
	if err != nil {
		return err
	}
	letters = dlq.OfTenant(letters, *tenant)
	if args[0] == "list" {
		if *output == "json" {
			return json.NewEncoder(stdout).Encode(letters)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTENANT\tJOB\tREASON\tATTEMPTS\tAGE\tERROR")
		for _, l := range letters {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Seq, orDash(l.Tenant), orDash(l.JobID), l.Reason, l.Attempts, time.Since(l.At).Round(time.Second), truncate(l.Error, 80))
		}
		return tw.Flush()
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n, err := dlq.Replay(ctx, js, letters, want)
	fmt.Fprintf(stdout, "replayed %d dead letters\n", n)
	return err
}

// connectJS connects the CLI to HERALD_NATS_URL; the caller closes nc.
func connectJS(cfg *config.Config, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := app.ConnectNATS(cfg, log, "herald-cli")
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
