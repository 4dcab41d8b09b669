// Command herald is Herald's single binary: the all-in-one dev server, the two deployables
// (worker, api), the provider simulator and the operator CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/telemetry"
)

const usage = `herald: bulk WhatsApp notifications with SMS fallback

Usage:
  herald dev                     everything in one process: embedded NATS and Redis, simulator, API, worker
  herald worker                  run a worker (HERALD_NATS_URL, HERALD_REDIS_URL)
  herald api                     run the HTTP API and webhooks
  herald sim [flags]             run the provider simulator (Cloud API, Kannel sendsms)
  herald send [flags]            send one notification through the API
  herald status ID               show a notification's status and history
  herald templates list|add FILE|lint FILE...|sync|migrate
  herald import FILE --campaign NAME --template T [--map param=column ...]
  herald campaign show|cancel NAME
  herald dlq list|replay [--reason R] [ID...]
  herald senders [-output json] the API key's tenant's senders: kind, health, quality, caps
  herald config check FILE       validate a fleet file (HERALD_CONFIG_FILE) and summarise it
  herald migrate tenancy         one-time: move pre-tenancy Redis keys to <tenant>/<id> (HERALD_REDIS_URL)

Configuration comes from HERALD_* environment variables (see README.md).
Run 'herald COMMAND -h' for a command's flags.
`

// exit codes scripts can trust.
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed
	exitUsage    = 2 // bad flags or arguments
	exitNotFound = 3 // the thing asked for does not exist
)

// usageError marks an error in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// notFoundError marks a missing object.
type notFoundError struct{ msg string }

func (e notFoundError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "dev", "worker", "api":
		// -h answers before the configuration is read: it starts nothing.
		err = serverArgs(cmd, rest, stdout)
	}
	if err != nil {
		return exitCode(cmd, err, stderr)
	}
	switch cmd {
	case "dev":
		err = withConfig(stderr, config.Role{}, func(cfg *config.Config, log *slog.Logger) error { return cmdDev(ctx, cfg, log, stdout) })
	case "worker":
		err = withConfig(stderr, config.Role{Worker: true}, func(cfg *config.Config, log *slog.Logger) error { return cmdServe(ctx, cfg, log, false, true) })
	case "api":
		err = withConfig(stderr, config.Role{API: true}, func(cfg *config.Config, log *slog.Logger) error { return cmdServe(ctx, cfg, log, true, false) })
	case "sim":
		err = cmdSim(ctx, rest, stdout, stderr)
	case "send":
		err = cmdSend(ctx, rest, stdout)
	case "status":
		err = cmdStatus(ctx, rest, stdout)
	case "templates":
		err = cmdTemplates(ctx, rest, stdout, stderr)
	case "dlq":
		err = cmdDLQ(ctx, rest, stdout)
	case "import":
		err = cmdImport(ctx, rest, stdout, stderr)
	case "campaign":
		err = cmdCampaign(ctx, rest, stdout)
	case "senders":
		err = cmdSenders(ctx, rest, stdout)
	case "migrate":
		err = cmdMigrate(ctx, rest, stdout, stderr)
	case "config":
		err = cmdConfig(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	return exitCode(cmd, err, stderr)
}

// exitCode prints err, if any, as one line naming the command, and maps it to the exit
// status: 0 for none and for help shown.
func exitCode(cmd string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "herald "+cmd+": "+err.Error())
	var ue usageError
	var nf notFoundError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &nf):
		return exitNotFound
	}
	return exitFailure
}

// withConfig loads and validates the configuration, with what role requires, and builds
// the logger; every problem is reported at once, one variable a line.
func withConfig(stderr io.Writer, role config.Role, fn func(*config.Config, *slog.Logger) error) error {
	cfg, err := config.LoadFor(role)
	if err != nil {
		return fmt.Errorf("configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	slog.SetDefault(log)
	return fn(cfg, log)
}
