package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/white"
)

// templatesSync pulls the template listing of each WABA into the catalogues of the tenants
// that own it: Meta's word, statuses included, recorded per WABA. The WABAs are those of
// the fleet file's white senders (HERALD_CONFIG_FILE), each listed with one of its senders'
// token, base_url and api_version, or HERALD_WHITE_WABA_ID without a file; only restricts
// them to one.
func templatesSync(ctx context.Context, tenant, only string, stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return usageError{"HERALD_NATS_URL: required for sync"}
	}
	if tenant != "" && !job.ValidTenant(tenant) {
		return usageError{fmt.Sprintf("-tenant %q: must be 1-%d lower-case letters, digits and hyphens", tenant, job.MaxTenantLen)}
	}
	f, fromFile, err := app.LoadFleet(cfg)
	if err != nil {
		return err
	}
	sources, err := wabaSources(cfg, f, fromFile, only)
	if err != nil {
		return err
	}
	configured, owners, err := configuredTenants(cfg)
	if err != nil {
		return err
	}
	log := telemetry.NewLogger(os.Stderr, cfg.LogLevel, "text")
	nc, kv, err := catalogueOf(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	return syncWABAs(ctx, kv, sources, owners, tenant, configured, stdout, log)
}

// templateLister is the white client's template listing.
type templateLister interface {
	ListTemplates(ctx context.Context, fn func(page []json.RawMessage) error) error
}

var _ templateLister = (*white.Client)(nil)

// wabaSource is one WABA to sync and a client that lists its templates.
type wabaSource struct {
	waba   string
	lister templateLister
}

// wabaSources are the WABAs sync reads, sorted by id: with a fleet file, those of its white
// senders, each through its first sender in file order (a WABA's templates are the same
// whichever of its numbers asks); without one, HERALD_WHITE_WABA_ID. only ("" for all)
// keeps one, which must be among them.
func wabaSources(cfg *config.Config, f *fleet.Fleet, fromFile bool, only string) ([]wabaSource, error) {
	if !fromFile {
		if cfg.WhiteWABAID == "" || cfg.WhiteToken == "" {
			return nil, usageError{"HERALD_WHITE_WABA_ID and HERALD_WHITE_TOKEN: required for sync without a fleet file (HERALD_CONFIG_FILE)"}
		}
		if only != "" && only != cfg.WhiteWABAID {
			return nil, usageError{fmt.Sprintf("-waba %s: not HERALD_WHITE_WABA_ID (%s), the one WABA without a fleet file", only, cfg.WhiteWABAID)}
		}
		wc := white.New(white.Config{BaseURL: cfg.WhiteBaseURL, Version: cfg.WhiteAPIVersion, WABAID: cfg.WhiteWABAID, Token: cfg.WhiteToken}, nil)
		return []wabaSource{{cfg.WhiteWABAID, wc}}, nil
	}
	var out []wabaSource
	var all []string
	for _, s := range f.Senders {
		if s.Kind != fleet.KindWhite || s.WABAID == "" || slices.Contains(all, s.WABAID) {
			continue
		}
		all = append(all, s.WABAID)
		if only != "" && s.WABAID != only {
			continue
		}
		wc := white.New(white.Config{BaseURL: s.BaseURL, Version: s.APIVersion, WABAID: s.WABAID, Token: s.Token.Reveal()}, nil)
		out = append(out, wabaSource{s.WABAID, wc})
	}
	slices.Sort(all)
	switch {
	case len(all) == 0:
		return nil, usageError{fmt.Sprintf("HERALD_CONFIG_FILE %s: no white sender with a waba_id: nothing to sync", cfg.ConfigFile)}
	case len(out) == 0:
		return nil, usageError{fmt.Sprintf("-waba %s: no white sender of HERALD_CONFIG_FILE is of it (its WABAs: %s)", only, strings.Join(all, ", "))}
	}
	slices.SortFunc(out, func(a, b wabaSource) int { return strings.Compare(a.waba, b.waba) })
	return out, nil
}

// syncWABAs syncs each source's WABA in turn (syncTemplates), then sums up. With tenant set
// only the WABAs that tenant sends through are read, and there must be one. A WABA whose
// listing fails does not stop the others: the error names every WABA that failed.
func syncWABAs(ctx context.Context, kv jetstream.KeyValue, sources []wabaSource, owners templates.Owners, tenant string, configured []string, stdout io.Writer, log *slog.Logger) error {
	if tenant != "" {
		var wabas []string
		for _, s := range sources {
			wabas = append(wabas, s.waba)
		}
		sources = slices.DeleteFunc(slices.Clone(sources), func(s wabaSource) bool {
			return len(templates.WABATenants(owners, s.waba, []string{tenant})) == 0
		})
		if len(sources) == 0 {
			return usageError{fmt.Sprintf("-tenant %s: does not send through WABA %s", tenant, strings.Join(wabas, ", "))}
		}
	}
	var failed []error
	updated, skipped := 0, 0
	for _, s := range sources {
		n, sk, err := syncTemplates(ctx, kv, s.lister, owners, s.waba, tenant, configured, stdout, log)
		updated, skipped = updated+n, skipped+sk
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(stdout, "WABA %s: sync failed: %v\n", s.waba, err)
			failed = append(failed, fmt.Errorf("WABA %s: %w", s.waba, err))
		}
	}
	if len(sources) > 1 {
		fmt.Fprintf(stdout, "sync done: %d WABAs, %d failed; %d updated, %d skipped\n", len(sources), len(failed), updated, skipped)
	}
	return errors.Join(failed...)
}

// syncTemplates records the listing of WABA waba in the catalogue of tenant, or, when tenant
// is "", of every tenant that owns the WABA (by owners) among the default one, configured
// and those with templates already: each definition's review is recorded under waba,
// keeping the other WABAs' (templates.Sync). What the catalogue says already is left
// alone. It returns the definitions written and the listed ones skipped as invalid.
func syncTemplates(ctx context.Context, kv jetstream.KeyValue, wc templateLister, owners templates.Owners, waba, tenant string, configured []string, stdout io.Writer, log *slog.Logger) (updated, skipped int, err error) {
	var targets []string
	if tenant != "" {
		if targets = templates.WABATenants(owners, waba, []string{tenant}); len(targets) == 0 {
			return 0, 0, usageError{fmt.Sprintf("-tenant %s: does not send through WABA %s", tenant, waba)}
		}
	} else {
		known, err := templates.Tenants(ctx, kv)
		if err != nil {
			return 0, 0, err
		}
		targets = templates.WABATenants(owners, waba, append(append(known, job.DefaultTenant), configured...))
		if len(targets) == 0 {
			fmt.Fprintf(stdout, "WABA %s: not synced: no tenant sends through it\n", waba)
			return 0, 0, nil
		}
	}
	err = wc.ListTemplates(ctx, func(page []json.RawMessage) error {
		for _, raw := range page {
			d, err := templates.ParseDefinition(raw)
			if err != nil {
				skipped++
				log.Warn("template skipped", "waba", waba, "err", err)
				continue
			}
			for _, t := range targets {
				_, changed, err := templates.Sync(ctx, kv, t, waba, d)
				if err != nil {
					return err
				}
				if changed {
					updated++
				}
			}
		}
		fmt.Fprintf(stdout, "WABA %s: synced %d templates so far\n", waba, updated)
		return nil
	})
	if err != nil {
		return updated, skipped, err
	}
	fmt.Fprintf(stdout, "WABA %s: sync done into %s: %d updated, %d skipped\n", waba, strings.Join(targets, ", "), updated, skipped)
	return updated, skipped, nil
}
