package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/herald-notify/herald/internal/api"
)

// cmdSenders prints the API key's tenant's senders (GET /v1/senders): kind, ids, health,
// quality, breaker, caps and warm-up.
func cmdSenders(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("senders", flag.ContinueOnError)
	fs.SetOutput(stdout)
	output := fs.String("output", "text", "text or json")
	tenant := fs.String("tenant", "", "the tenant to show (operator keys only; default: the key's)")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: herald senders [-output json] [-tenant NAME]\n\nThe senders of the API key's tenant: usable or not and why, health, and use against their caps.\nExit status: 0 shown, 3 tenant not in the fleet, 1 other failure.")
		fs.PrintDefaults()
	}
	if pos, err := parseFlags(fs, args, stdout); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError{"herald senders takes no arguments"}
	}
	c, err := newAPIClient()
	if err != nil {
		return err
	}
	path := "/v1/senders"
	if *tenant != "" {
		path += "?tenant=" + url.QueryEscape(*tenant)
	}
	var out struct {
		Tenant  string           `json:"tenant"`
		Senders []api.SenderView `json:"senders"`
	}
	if _, err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	if *output == "json" {
		return json.NewEncoder(stdout).Encode(out)
	}
	return printSenders(stdout, out.Tenant, out.Senders)
}

// printSenders writes the senders as a table, one line each: usable or not and why,
// health, quality, breaker, the rate and daily use against their caps, the tier and the
// warm-up.
func printSenders(w io.Writer, tenant string, senders []api.SenderView) error {
	fmt.Fprintf(w, "tenant %s: %d senders\n", tenant, len(senders))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tNUMBER/INSTANCE\tUSABLE\tHEALTH\tQUALITY\tBREAKER\tRATE\tDAILY CAP\tTIER\tWARM-UP\tREASON")
	for _, s := range senders {
		ident := s.PhoneNumberID
		switch s.Kind {
		case "grey":
			ident = s.Instance
		case "sms":
			ident = s.Driver
		}
		quality := "-"
		if s.Quality != nil {
			quality = s.Quality.Event
			if s.Quality.Limit != "" {
				quality += " " + s.Quality.Limit
			}
		}
		if s.Account != nil {
			quality += " / " + s.Account.Event
		}
		if s.State != nil {
			quality = s.State.Event
		}
		if s.Rating != "" {
			quality = s.Rating + " (" + quality + ")"
		}
		usable, reason := "yes", orDash(s.Reason)
		if !s.Usable {
			usable = "no"
		}
		if s.Until != nil {
			reason = fmt.Sprintf("%s until %s", reason, s.Until.Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Kind, orDash(ident), usable, s.Health, quality,
			orDash(s.Breaker), senderRate(s), senderDaily(s), senderTier(s), senderWarmup(s), reason)
	}
	return tw.Flush()
}

// senderRate is the rate column: the sends of the last second (where counted) against the
// cap, the rate a throughput penalty leaves, and "full" while slots are booked ahead.
func senderRate(s api.SenderView) string {
	if s.MPS <= 0 {
		return "-"
	}
	mps := strconv.FormatFloat(s.MPS, 'f', -1, 64)
	u := s.Use
	if u == nil {
		return mps + "/s"
	}
	out := mps + "/s"
	if u.Sends1s != nil {
		out = fmt.Sprintf("%d of %s/s", *u.Sends1s, mps)
	}
	if u.Rate < s.MPS {
		out += " slowed to " + strconv.FormatFloat(u.Rate, 'f', -1, 64)
	}
	if u.BookedAheadMS > 0 {
		out += " full"
	}
	return out
}

// senderDaily is the grey daily cap column: the moving 24 h's sends, today's cap and the cap
// at full warm-up.
func senderDaily(s api.SenderView) string {
	if s.DailyMax <= 0 {
		return "-"
	}
	out := fmt.Sprintf("%d of %d", s.DailyCap, s.DailyMax)
	if s.Use != nil && s.Use.Sends24h != nil {
		out = fmt.Sprintf("%d sent, %s", *s.Use.Sends24h, out)
	}
	return out
}

// senderTier is the white tier column: the number's own limit or else its portfolio's, with
// the unique recipients of the moving 24 h counted against it.
func senderTier(s api.SenderView) string {
	switch {
	case s.DailyUnique > 0 && s.Use != nil && s.Use.Unique24h != nil:
		return fmt.Sprintf("%d of %d", *s.Use.Unique24h, s.DailyUnique)
	case s.DailyUnique > 0:
		return strconv.Itoa(s.DailyUnique)
	case s.PortfolioDailyUnique > 0 && s.Use != nil && s.Use.PortfolioUnique24h != nil:
		return fmt.Sprintf("%d of %d (%s)", *s.Use.PortfolioUnique24h, s.PortfolioDailyUnique, s.Portfolio)
	case s.PortfolioDailyUnique > 0:
		return fmt.Sprintf("%d (%s)", s.PortfolioDailyUnique, s.Portfolio)
	}
	return "-"
}

// senderWarmup is the warm-up column: today's day of the ramp, or the ramp before the first
// send.
func senderWarmup(s api.SenderView) string {
	wu := s.Warmup
	if wu == nil {
		return "-"
	}
	if wu.Day == nil {
		return fmt.Sprintf("%d days from %d", wu.Days, wu.Start)
	}
	if wu.From == "first_send" {
		return fmt.Sprintf("day %d of %d (from the first send)", *wu.Day, wu.Days)
	}
	return fmt.Sprintf("day %d of %d", *wu.Day, wu.Days)
}
