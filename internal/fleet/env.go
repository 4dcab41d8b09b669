package fleet

import (
	"slices"
	"strings"

	"github.com/herald-notify/herald/internal/config"
)

// Ids of the senders, portfolio and tenant FromEnv builds.
const (
	// DefaultTenant is the tenant of jobs that name none.
	DefaultTenant = "default"

	EnvWhiteID     = "default-white"
	EnvGreyID      = "default-grey"
	EnvSMSID       = "default-sms"
	EnvPortfolioID = "default"
)

// FromEnv builds the fleet the HERALD_* variables describe, for a deployment without
// HERALD_CONFIG_FILE: one sender of each kind that is configured (a kind is configured when
// HERALD_CHANNELS lists it or its identifying variable is set: HERALD_WHITE_PHONE_NUMBER_ID,
// HERALD_GREY_INSTANCE_ID, HERALD_SMS_URL or HERALD_SMS_SMPP_ADDR), the white number in
// portfolio "default" whose daily_unique is HERALD_WHITE_DAILY_UNIQUE; the tenant "default"
// (jobs that name no tenant) and every tenant HERALD_API_KEYS names (tenant:key,...), each
// with HERALD_CHANNELS as its cascade, every sender in its pool and HERALD_QUIET_HOURS.
//
// It translates and does not validate: an API process may lack the senders' tokens, which
// only workers need. Call [Fleet.Validate] where a complete fleet is required (its paths are
// those of the equivalent file; config.Config.RequireWorker names the variables).
func FromEnv(c config.Config) *Fleet {
	f := &Fleet{Portfolios: map[string]Portfolio{}, Tenants: map[string]Tenant{}}
	wants := func(ch string) bool { return slices.Contains(c.Channels, ch) }
	if wants(KindWhite) || c.WhitePhoneNumberID != "" {
		f.Portfolios[EnvPortfolioID] = Portfolio{DailyUnique: c.WhiteDailyUnique}
		f.Senders = append(f.Senders, Sender{
			ID: EnvWhiteID, Kind: KindWhite, MPS: c.WhiteMPS,
			BaseURL: c.WhiteBaseURL, APIVersion: c.WhiteAPIVersion, Token: Secret(c.WhiteToken),
			PhoneNumberID: c.WhitePhoneNumberID, WABAID: c.WhiteWABAID, Portfolio: EnvPortfolioID,
			AppSecret: Secret(c.WhiteAppSecret), VerifyToken: Secret(c.WhiteVerifyToken),
		})
	}
	if wants(KindGrey) || c.GreyInstanceID != "" {
		f.Senders = append(f.Senders, Sender{
			ID: EnvGreyID, Kind: KindGrey, MPS: c.GreyMPS, BaseURL: c.GreyBaseURL,
			InstanceID: c.GreyInstanceID, Token: Secret(c.GreyToken), WebhookToken: Secret(c.GreyWebhookToken),
			DailyMax: c.GreyDailyMax, Jitter: DefaultGreyJitter,
		})
	}
	if wants(KindSMS) || c.SMSURL != "" || c.SMSSMPPAddr != "" {
		s := Sender{ID: EnvSMSID, Kind: KindSMS, Driver: c.SMSDriver}
		switch c.SMSDriver {
		case DriverKannel:
			s.URL, s.User, s.Password, s.From = c.SMSURL, c.SMSUser, Secret(c.SMSPassword), c.SMSFrom
		case DriverSMPP:
			s.Addr, s.SystemID, s.Password, s.From = c.SMSSMPPAddr, c.SMSSMPPSystemID, Secret(c.SMSSMPPPassword), c.SMSFrom
		case DriverNATS:
			s.Subject, s.From = c.SMSSubject, c.SMSFrom
		}
		f.Senders = append(f.Senders, s)
	}
	ids := make([]string, len(f.Senders))
	for i, s := range f.Senders {
		ids[i] = s.ID
	}
	tenant := func() Tenant {
		return Tenant{Channels: slices.Clone(c.Channels), Senders: slices.Clone(ids), QuietHours: c.QuietHours}
	}
	f.Tenants[DefaultTenant] = tenant()
	for _, kv := range strings.Split(c.APIKeys, ",") {
		name, key, ok := strings.Cut(strings.TrimSpace(kv), ":")
		if !ok {
			continue
		}
		t, seen := f.Tenants[name]
		if !seen {
			t = tenant()
		}
		t.APIKeys = append(t.APIKeys, Secret(key))
		f.Tenants[name] = t
	}
	return f
}
