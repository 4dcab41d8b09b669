package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/white"
)

// templatesSync pulls the white provider's template listing into the catalogues of the
// tenants that own its WABA: Meta's word, statuses included.
func templatesSync(ctx context.Context, tenant string, stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.WhiteWABAID == "" || cfg.WhiteToken == "" || cfg.NATSURL == "" {
		return usageError{"HERALD_WHITE_WABA_ID, HERALD_WHITE_TOKEN and HERALD_NATS_URL: required for sync"}
	}
	if tenant != "" && !job.ValidTenant(tenant) {
		return usageError{fmt.Sprintf("-tenant %q: must be 1-%d lower-case letters, digits and hyphens", tenant, job.MaxTenantLen)}
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
	wc := white.New(white.Config{BaseURL: cfg.WhiteBaseURL, Version: cfg.WhiteAPIVersion, WABAID: cfg.WhiteWABAID, Token: cfg.WhiteToken}, nil)
	return syncTemplates(ctx, kv, wc, owners, cfg.WhiteWABAID, tenant, configured, stdout, log)
}

// templateLister is the white client's template listing.
type templateLister interface {
	ListTemplates(ctx context.Context, fn func(page []json.RawMessage) error) error
}

// syncTemplates stores the listing of WABA waba in the catalogue of tenant, or, when tenant
// is "", of every tenant that owns the WABA (by owners) among the default one, configured
// and those with templates already. A definition stored already, the same, is left alone.
func syncTemplates(ctx context.Context, kv jetstream.KeyValue, wc templateLister, owners templates.Owners, waba, tenant string, configured []string, stdout io.Writer, log *slog.Logger) error {
	var targets []string
	if tenant != "" {
		if targets = templates.WABATenants(owners, waba, []string{tenant}); len(targets) == 0 {
			return usageError{fmt.Sprintf("-tenant %s: does not send through WABA %s", tenant, waba)}
		}
	} else {
		known, err := templates.Tenants(ctx, kv)
		if err != nil {
			return err
		}
		targets = templates.WABATenants(owners, waba, append(append(known, job.DefaultTenant), configured...))
	}
	n, skipped := 0, 0
	err := wc.ListTemplates(ctx, func(page []json.RawMessage) error {
		for _, raw := range page {
			d, err := templates.ParseDefinition(raw)
			if err != nil {
				skipped++
				log.Warn("template skipped", "err", err)
				continue
			}
			for _, t := range targets {
				if cur, err := templates.Get(ctx, kv, t, d.Name, d.Language); err == nil && sameDefinition(cur, d) {
					continue
				}
				if _, err := templates.Put(ctx, kv, t, d); err != nil {
					return err
				}
				n++
			}
		}
		fmt.Fprintf(stdout, "synced %d templates so far\n", n)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sync done into %s: %d updated, %d skipped\n", strings.Join(targets, ", "), n, skipped)
	return nil
}

// sameDefinition tells whether the stored a says what Meta's listing b says, leaving out
// what Herald adds (version, time, tenant, the approved version carried along).
func sameDefinition(a, b *templates.Definition) bool {
	a2, b2 := *a, *b
	a2.Version, b2.Version = 0, 0
	a2.UpdatedAt, b2.UpdatedAt = time.Time{}, time.Time{}
	a2.Tenant, b2.Tenant = "", ""
	a2.Approved, b2.Approved = nil, nil
	ja, _ := json.Marshal(a2)
	jb, _ := json.Marshal(b2)
	return bytes.Equal(ja, jb)
}
