package templates

import (
	"slices"

	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/job"
)

// Owners returns the tenants that send through the WhatsApp Business Account waba (a fleet
// file gives each tenant its senders, and so its WABAs).
type Owners func(waba string) []string

// WABATenants returns those of tenants whose catalogues hold the templates of the WhatsApp
// Business Account waba, sorted: the tenants a review from Meta (a template webhook, the
// listing `herald templates sync` reads) applies to. owners says who sends through waba; nil
// is the environment configuration, one WABA (HERALD_WHITE_WABA_ID) that every tenant sends
// through, so that every tenant owns it whatever waba says.
func WABATenants(owners Owners, waba string, tenants []string) []string {
	var of []string
	if owners != nil {
		of = owners(waba)
	}
	out := make([]string, 0, len(tenants))
	for _, t := range tenants {
		if t = job.TenantOr(t); job.ValidTenant(t) && (owners == nil || slices.Contains(of, t)) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// FleetOwners is Owners by a fleet file (HERALD_CONFIG_FILE): the tenants whose pools hold a
// white sender of the WABA. Not for the fleet the environment alone describes, whose one
// sender may name no WABA: that is the nil Owners.
func FleetOwners(f *fleet.Fleet) Owners {
	return func(waba string) []string {
		var out []string
		for _, s := range f.Senders {
			if waba != "" && s.Kind == fleet.KindWhite && s.WABAID == waba {
				out = append(out, f.TenantsOf(s.ID)...)
			}
		}
		return out
	}
}
