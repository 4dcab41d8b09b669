package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/herald-notify/herald/internal/fleet"
)

const configUsage = `usage: herald config check [-allow-unset] FILE.yaml

Validates a fleet file (what HERALD_CONFIG_FILE names: portfolios, senders, tenants) with
${NAME} expanded from the environment, as herald api and herald worker would read it. On
success it prints a summary of the tenants, senders and portfolios; otherwise every problem,
one per line, as path: reason (senders[2].mps: must be greater than 0). Secrets are never
printed.

Exit status: 0 valid, 2 a problem (or the file cannot be read).

Flags:
  -allow-unset   a ${NAME} whose variable is unset stands for a placeholder, so a file can be
                 checked where its secrets are not (CI); the names are listed

Examples:
  herald config check /etc/herald/fleet.yaml
  herald config check -allow-unset deploy/fleet.yaml
`

// cmdConfig runs herald config SUBCOMMAND.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return usageError{"need a subcommand: check"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, configUsage)
		return errHelp
	case "check":
		return configCheck(args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown subcommand %q (herald config -h)", args[0])}
}

// configCheck validates a fleet file and prints its summary or its problems.
func configCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	allowUnset := fs.Bool("allow-unset", false, "unset variables stand for placeholders")
	fs.Usage = func() { fmt.Fprint(fs.Output(), configUsage) }
	pos, err := parseFlags(fs, args, stdout)
	if errors.Is(err, errHelp) {
		return err
	}
	if err != nil {
		fmt.Fprint(stderr, configUsage)
		return err
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, configUsage)
		return usageError{"need exactly one FILE"}
	}
	file := pos[0]
	var unset []string
	getenv := os.Getenv
	if *allowUnset {
		getenv = func(name string) string {
			if v := os.Getenv(name); v != "" || slices.Contains(fleet.DefaultVariables, name) {
				return v
			}
			unset = append(unset, name)
			// Long enough for every length rule, free of spaces: it stands for a secret.
			return "placeholder-for-" + name
		}
	}
	f, err := fleet.Load(file, getenv)
	var problems fleet.Errors
	switch {
	case errors.As(err, &problems):
		for _, p := range problems {
			fmt.Fprintln(stdout, p.Error())
		}
		return usageError{file + ": " + count(len(problems), "problem")}
	case err != nil:
		return usageError{err.Error()}
	}
	printFleet(stdout, file, f)
	if len(unset) > 0 {
		sort.Strings(unset)
		fmt.Fprintf(stdout, "\nunset (placeholders were checked): %s\n", strings.Join(dedup(unset), ", "))
	}
	return nil
}

// printFleet prints the tenants, senders and portfolios as tables.
func printFleet(w io.Writer, file string, f *fleet.Fleet) {
	fmt.Fprintf(w, "%s: valid: %s, %s, %s\n\n", file, count(len(f.Tenants), "tenant"),
		count(len(f.Senders), "sender"), count(len(f.Portfolios), "portfolio"))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tCHANNELS\tSENDERS\tAPI KEYS\tQUIET HOURS")
	for _, name := range f.TenantNames() {
		t := f.Tenants[name]
		var kinds []string
		for _, k := range []string{fleet.KindWhite, fleet.KindGrey, fleet.KindSMS} {
			if n := len(f.Pool(name, k)); n > 0 {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			}
		}
		qh := t.QuietHours
		if qh == "" {
			qh = "HERALD_QUIET_HOURS"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d (%s)\t%d\t%s\n", name, strings.Join(t.Channels, ","), len(t.Senders),
			strings.Join(kinds, ", "), len(t.APIKeys), qh)
	}
	_ = tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SENDER\tKIND\tNUMBER / INSTANCE\tMPS\tDAILY CAP\tPORTFOLIO")
	for _, s := range f.Senders {
		mps := "-"
		if s.MPS > 0 {
			mps = strconv.FormatFloat(s.MPS, 'g', -1, 64)
		}
		portfolio := s.Portfolio
		if portfolio == "" {
			portfolio = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Kind, address(s), mps, dailyCap(f, s), portfolio)
	}
	_ = tw.Flush()

	if len(f.Portfolios) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PORTFOLIO\tDAILY UNIQUE\tNUMBERS")
	names := make([]string, 0, len(f.Portfolios))
	for n := range f.Portfolios {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		numbers := 0
		for _, s := range f.Senders {
			if s.Portfolio == n {
				numbers++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\n", n, limit(f.Portfolios[n].DailyUnique), numbers)
	}
	_ = tw.Flush()
}

// address is where a sender sends from: the phone number id and the grey instance id (ids,
// not secrets), the SMS gateway without credentials.
func address(s fleet.Sender) string {
	switch s.Kind {
	case fleet.KindWhite:
		return s.PhoneNumberID
	case fleet.KindGrey:
		return s.InstanceID
	}
	var where string
	switch s.Driver {
	case fleet.DriverKannel:
		where = s.URL
		if u, err := url.Parse(s.URL); err == nil {
			where = u.Host // never the query or user info, which may carry a password
		}
	case fleet.DriverSMPP:
		where = s.Addr + " as " + s.SystemID
	case fleet.DriverNATS:
		where = s.Subject
	}
	out := s.Driver + " " + where
	if s.From != "" {
		out += " from " + s.From
	}
	return out
}

// dailyCap describes the sender's daily limits: the tier of a white number (its own and its
// portfolio's), the cap and warm-up of a grey one.
func dailyCap(f *fleet.Fleet, s fleet.Sender) string {
	switch s.Kind {
	case fleet.KindWhite:
		own, shared := s.DailyUnique, f.PortfolioLimit(s)
		switch {
		case own > 0 && shared > 0:
			return fmt.Sprintf("%d unique (portfolio %d)", own, shared)
		case own > 0:
			return fmt.Sprintf("%d unique", own)
		case shared > 0:
			return fmt.Sprintf("%d unique (portfolio)", shared)
		}
		return "unlimited"
	case fleet.KindGrey:
		if s.DailyMax <= 0 {
			return "none"
		}
		if w := s.Warmup; w != nil {
			out := fmt.Sprintf("%d→%d over %d days", w.Start, s.DailyMax, w.Days)
			if !w.Since.IsZero() {
				out += " from " + w.Since.Format("2006-01-02")
			}
			return out
		}
		return strconv.Itoa(s.DailyMax)
	}
	return "-"
}

func limit(n int) string {
	if n <= 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func dedup(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}
