package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
)

const templatesUsage = `usage: herald templates COMMAND

Commands:
  list [-output json]            the API key's tenant's catalogue, with each template's status
  add [-force] FILE.json         lint a definition (Cloud API format) and submit it for review;
                                 it stays PENDING until Meta (in dev, the simulator) approves it
  lint [-output json] FILE.json...  predict what Meta rejects, without submitting
  sync [-tenant T] [-waba ID]    copy each WABA's templates, as Meta lists them, reviews per WABA
  migrate [-keep] [-tenants T,...]  move pre-tenancy catalogue entries to the tenants' keys

Run 'herald templates COMMAND -h' for a command's flags.
`

const dlqUsage = `usage: herald dlq list [-reason R] [-tenant T] [-output json]
       herald dlq replay [-reason R] [-tenant T] [ID...]

Lists or replays the dead letters, straight from JetStream (HERALD_NATS_URL). Ids are per
tenant: replay IDs together with -tenant.

Flags:
`

const campaignUsage = `usage: herald campaign show [-output json] NAME
       herald campaign cancel NAME

Shows a campaign of the API key's tenant (counters by state and channel, cost, rate and
why jobs wait), or cancels it: jobs not yet sent are not sent.
`

// subUsage prints a command's usage when its first argument asks for help, for commands
// made of subcommands; it returns errHelp then, nil otherwise.
func subUsage(args []string, text string, stdout io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		_, _ = io.WriteString(stdout, text)
		return errHelp
	}
	return nil
}

// usageOf returns a flag.FlagSet Usage function printing text then the flags' defaults on
// the set's output (parseFlags sends it to stdout on -h and drops it on a bad flag).
func usageOf(fs *flag.FlagSet, text string) func() {
	return func() {
		_, _ = io.WriteString(fs.Output(), text)
		fs.PrintDefaults()
	}
}

// apiMessage turns an error answer of the API into a sentence: its "error" text and the
// fields it names, never the raw JSON. A body that is not the API's error object (a proxy's
// page) is shown cut short, with the HTTP status.
func apiMessage(code int, data []byte) string {
	var e struct {
		Error  string `json:"error"`
		Fields []struct {
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(data, &e); err != nil || e.Error == "" {
		text := strings.TrimSpace(string(data))
		if text == "" {
			return fmt.Sprintf("the API answered %d %s", code, http.StatusText(code))
		}
		return fmt.Sprintf("the API answered %d %s: %s", code, http.StatusText(code), truncate(text, 300))
	}
	msg := e.Error
	for _, f := range e.Fields {
		msg += "; " + f.Field + ": " + f.Reason
	}
	return msg
}
