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
		fmt.Fprintln(stdout, "Usage: herald senders [-output json] [-tenant NAME]\n\nThe senders of the API key's tenant, with what Herald knows of their health.\nExit status: 0 shown, 3 tenant not in the fleet, 1 other failure.")
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

// printSenders writes the senders as a table, one line each.
func printSenders(w io.Writer, tenant string, senders []api.SenderView) error {
	fmt.Fprintf(w, "tenant %s: %d senders\n", tenant, len(senders))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tNUMBER/INSTANCE\tHEALTH\tQUALITY\tBREAKER\tMPS\tDAILY CAP\tTIER\tWARM-UP")
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
		mps := "-"
		if s.MPS > 0 {
			mps = strconv.FormatFloat(s.MPS, 'f', -1, 64)
		}
		daily := "-"
		if s.DailyMax > 0 {
			daily = fmt.Sprintf("%d of %d", s.DailyCap, s.DailyMax)
		}
		tier := "-"
		switch {
		case s.DailyUnique > 0:
			tier = strconv.Itoa(s.DailyUnique)
		case s.PortfolioDailyUnique > 0:
			tier = fmt.Sprintf("%d (%s)", s.PortfolioDailyUnique, s.Portfolio)
		}
		warm := "-"
		if wu := s.Warmup; wu != nil {
			warm = fmt.Sprintf("%d days from %d", wu.Days, wu.Start)
			if wu.Day != nil {
				warm = fmt.Sprintf("day %d of %d", *wu.Day, wu.Days)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Kind, orDash(ident), s.Health, quality, orDash(s.Breaker), mps, daily, tier, warm)
	}
	return tw.Flush()
}
