package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
)

// errHelp reports that a command printed its usage because -h or --help was asked for:
// run exits 0 on it and prints nothing more.
var errHelp = errors.New("help shown")

// parseFlags parses args with fs, accepting flags before, between and after the positional
// arguments (herald status ID -output json), and returns the positional arguments in order.
// Everything after "--" is positional. On -h or --help it writes fs's usage to stdout and
// returns errHelp; on a bad flag a usageError naming it and pointing at -h, without the
// flag package's own printout (run prints the error once).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				_, _ = stdout.Write(buf.Bytes())
				return nil, errHelp
			}
			return nil, usageError{err.Error() + " (herald " + fs.Name() + " -h)"}
		}
		left := fs.Args()
		if len(left) == 0 {
			return pos, nil
		}
		// fs.Parse stops at "--" and drops it: all that follows is positional.
		if used := len(rest) - len(left); used > 0 && rest[used-1] == "--" {
			return append(pos, left...), nil
		}
		pos, rest = append(pos, left[0]), left[1:]
	}
}

// isHelp tells whether a is a request for help in the place of a subcommand.
func isHelp(a string) bool {
	switch a {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// serverUsage is the usage of the commands that run servers (dev, worker, api): they take
// no flags, only HERALD_* variables.
var serverUsage = map[string]string{
	"dev": `usage: herald dev

Runs everything in one process: embedded NATS JetStream and Redis-compatible store, the
provider simulator, the API and a worker. It prints the API URL and a key for the default
tenant. Configuration comes from HERALD_* variables (README.md); none is required.
`,
	"worker": `usage: herald worker

Runs a worker: consumes jobs from NATS JetStream and sends them. Requires HERALD_NATS_URL,
HERALD_REDIS_URL and the credentials of each channel in HERALD_CHANNELS (README.md);
every missing or invalid variable is reported at once.
`,
	"api": `usage: herald api

Runs the HTTP API and the provider webhooks. Requires HERALD_NATS_URL and HERALD_REDIS_URL,
and the webhook secrets of the configured channels (README.md); every missing or invalid
variable is reported at once.
`,
}

// serverArgs checks the arguments of a server command: -h prints its usage (errHelp),
// anything else is a usage error.
func serverArgs(cmd string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.Usage = func() { _, _ = io.WriteString(fs.Output(), serverUsage[cmd]) }
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"herald " + cmd + " takes no arguments, got " + pos[0] + " (configuration comes from HERALD_* variables)"}
	}
	return nil
}
