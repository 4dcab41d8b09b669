package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/templates"
)

// Catalogue finds a tenant's template definition whatever its status: the import checks the
// template, its parameters and buttons against it before anything is queued, since a job
// that names what the template lacks can never be sent (it would fail hours later, one by
// one). templates.Get on the template bucket answers it: see KVCatalogue.
type Catalogue interface {
	Definition(ctx context.Context, tenant, name, language string) (*templates.Definition, error)
}

// KVCatalogue is the Catalogue of a template bucket (streams.TemplatesKV).
type KVCatalogue struct{ KV jetstream.KeyValue }

var _ Catalogue = KVCatalogue{}

// Definition returns templates.Get of the bucket.
func (c KVCatalogue) Definition(ctx context.Context, tenant, name, language string) (*templates.Definition, error) {
	return templates.Get(ctx, c.KV, tenant, name, language)
}

// checkTemplate refuses, as ErrUsage, a template the tenant's catalogue does not hold in
// the language, and mappings that do not fit it: a parameter without --map, a --map the
// template has no variable for, a button value it needs without --button, or one it has
// no place for. Without a catalogue nothing is checked.
func (o *Options) checkTemplate(ctx context.Context, params, buttons map[string]string) error {
	if o.Catalogue == nil {
		return nil
	}
	tenant, lang := job.TenantOr(o.Tenant), o.Language
	if lang == "" {
		lang = o.Jobs.DefaultLanguage
	}
	d, err := o.Catalogue.Definition(ctx, tenant, o.Template, lang)
	switch {
	case errors.Is(err, templates.ErrUnknownTemplate):
		return fmt.Errorf("%w: --template %s: not in tenant %s's catalogue (herald templates list)", ErrUsage, o.Template, tenant)
	case errors.Is(err, templates.ErrUnknownLanguage):
		return fmt.Errorf("%w: --template %s --language %s: %w", ErrUsage, o.Template, lang, err)
	case err != nil:
		return fmt.Errorf("template %s of tenant %s not checked, nothing queued: %w", o.Template, tenant, err)
	}
	if _, err := d.RenderText(templates.Input{Params: params, Buttons: buttons}); err != nil {
		hint := ""
		switch {
		case errors.Is(err, templates.ErrMissingParam):
			hint = " (add --map PARAM=COLUMN for each)"
		case errors.Is(err, templates.ErrMissingButton):
			hint = " (add --button INDEX=COLUMN)"
		case errors.Is(err, templates.ErrExtraParam):
			hint = " (drop that --map or --button)"
		}
		return fmt.Errorf("%w: --template %s: %w%s", ErrUsage, o.Template, err, hint)
	}
	return nil
}
