package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/health"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/smsnats"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/white"
	"github.com/herald-notify/herald/worker"
)

// fleetRoutes are the worker's senders, pools and cascades from a fleet file.
type fleetRoutes struct {
	routes   []worker.Route
	pools    map[string][]string
	channels map[string][]string
	quiet    map[string]worker.QuietHours
}

// buildRoutes builds one adapter per sender of the fleet file, with its limits, and the
// tenants' pools and cascades. Background parts of the adapters (grey state pollers, SMPP
// links) run until ctx ends. A grey sender with a warm-up and no since starts its ramp the
// day a worker first ran with it (kept in Redis: health.SeeSending).
func buildRoutes(ctx context.Context, cfg *config.Config, f *fleet.Fleet, log *slog.Logger, js jetstream.JetStream, nc *nats.Conn, rdb redis.UniversalClient, metrics *telemetry.Metrics, onReport func(context.Context, status.Report) error) (*fleetRoutes, error) {
	fr := &fleetRoutes{pools: map[string][]string{}, channels: map[string][]string{}, quiet: map[string]worker.QuietHours{}}
	for i, s := range f.Senders {
		r := worker.Route{ID: s.ID, Channel: s.Kind, Limit: worker.ChannelLimit{
			Sender: s.Key(), Rate: s.MPS, PairInterval: s.PairIntervalOr(cfg.PairInterval), RecipientDailyMax: cfg.RecipientDailyMax,
		}}
		switch s.Kind {
		case fleet.KindWhite:
			r.WABA, r.PhoneNumberID = s.WABAID, s.PhoneNumberID
			r.Limit.UniqueDailyMax = s.DailyUnique
			if lim := f.PortfolioLimit(s); lim > 0 {
				r.Limit.Portfolio, r.Limit.PortfolioDailyMax = s.Portfolio, lim
			}
			r.Sender = worker.White{Client: white.New(white.Config{
				BaseURL: or(s.BaseURL, cfg.WhiteBaseURL), Version: or(s.APIVersion, cfg.WhiteAPIVersion),
				PhoneNumberID: s.PhoneNumberID, WABAID: s.WABAID, Token: s.Token.Reveal(), Timeout: cfg.SendTimeout,
			}, nil)}
		case fleet.KindGrey:
			r.Limit.Jitter = s.Jitter
			if r.Limit.Jitter == 0 {
				r.Limit.Jitter = fleet.DefaultGreyJitter
			}
			r.Limit.SenderDailyMax = s.DailyMax
			if s.Warmup != nil && s.DailyMax > 0 {
				since := s.Warmup.Since
				if since.IsZero() {
					if err := health.SeeSending(ctx, rdb, s.ID); err != nil {
						return nil, fmt.Errorf("senders[%d] (%s): warm-up start: %w", i, s.ID, err)
					}
					var err error
					if since, err = health.FirstSeen(ctx, rdb, s.ID); err != nil {
						return nil, fmt.Errorf("senders[%d] (%s): warm-up start: %w", i, s.ID, err)
					}
				}
				sn := s
				r.DailyCap = func(now time.Time) int { return sn.DailyCapAt(now, since) }
			}
			c := *cfg
			c.GreyBaseURL, c.GreyInstanceID, c.GreyToken = or(s.BaseURL, cfg.GreyBaseURL), s.InstanceID, s.Token.Reveal()
			r.Sender = worker.Grey{Client: newGrey(ctx, &c, log, js, nc, metrics)}
		case fleet.KindSMS:
			snd, err := smsSender(ctx, cfg, s, log, js, onReport)
			if err != nil {
				return nil, fmt.Errorf("senders[%d] (%s): %w", i, s.ID, err)
			}
			r.Sender = snd
		default:
			return nil, fmt.Errorf("senders[%d] (%s): unknown kind %q", i, s.ID, s.Kind)
		}
		fr.routes = append(fr.routes, r)
	}
	for name, t := range f.Tenants {
		fr.pools[name] = t.Senders
		fr.quiet[name] = t.Quiet(cfg.Quiet())
		if len(t.Channels) > 0 {
			fr.channels[name] = t.Channels
		}
	}
	return fr, nil
}

// smsSender builds the adapter of one SMS account of the fleet.
func smsSender(ctx context.Context, cfg *config.Config, s fleet.Sender, log *slog.Logger, js jetstream.JetStream, onReport func(context.Context, status.Report) error) (worker.Sender, error) {
	from := or(s.From, cfg.SMSFrom)
	switch s.Driver {
	case fleet.DriverKannel:
		return worker.SMS{Client: sms.NewKannel(sms.KannelConfig{
			URL: s.URL, User: s.User, Password: s.Password.Reveal(), From: from,
			DLRURL: PublicURL(cfg) + "/webhooks/sms", DLRSecret: []byte(cfg.SMSDLRSecret),
			MaxSegments: cfg.SMSMaxSegments, Timeout: cfg.SendTimeout,
		}, nil)}, nil
	case fleet.DriverNATS:
		subject := or(s.Subject, cfg.SMSSubject)
		if _, err := smsnats.EnsureStream(ctx, js, subject); err != nil {
			return nil, fmt.Errorf("subject: %w", err)
		}
		return worker.SMS{Client: smsnats.New(js, smsnats.Config{Subject: subject, From: from, MaxSegments: cfg.SMSMaxSegments})}, nil
	case fleet.DriverSMPP:
		c := *cfg
		c.SMSSMPPAddr, c.SMSSMPPSystemID, c.SMSSMPPPassword, c.SMSFrom = s.Addr, s.SystemID, s.Password.Reveal(), from
		cl, err := dialSMPP(ctx, &c, log, onReport)
		if err != nil {
			return nil, err
		}
		return worker.SMS{Client: cl}, nil
	}
	return nil, fmt.Errorf("driver %q: must be kannel, smpp or nats", s.Driver)
}

// senderIDs are the ids of the worker's senders: the fleet file's, or the single senders the
// HERALD_* variables describe (named as fleet.FromEnv names them).
func senderIDs(fr *fleetRoutes, senders map[string]worker.Sender) []string {
	var ids []string
	if fr != nil {
		for _, r := range fr.routes {
			ids = append(ids, r.ID)
		}
		return ids
	}
	for _, ch := range []string{job.ChannelWhite, job.ChannelGrey, job.ChannelSMS} {
		if senders[ch] != nil {
			ids = append(ids, "default-"+ch)
		}
	}
	return ids
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
