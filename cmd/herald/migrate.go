package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/migrate"
)

const migrateUsage = `usage: herald migrate tenancy

Moves what a Herald before tenancy left in Redis (HERALD_REDIS_URL) to the keys of tenancy:
records keyed by a bare job id go under <tenant>/<id> (the tenant the record names, else
"default"), the provider message index names those refs, and campaign counters go to their
tenant. Run it once, after upgrading every worker and API process; it is idempotent and may be
run again after an interruption.
`

// cmdMigrate runs a one-time data migration.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), migrateUsage) }
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "tenancy" {
		return usageError{"name the migration: tenancy (herald migrate -h)"}
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" {
		return usageError{"HERALD_REDIS_URL: required (the Redis to migrate)"}
	}
	rdb, err := app.ConnectRedis(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	res, err := migrate.Tenancy(ctx, rdb, func(stage string, seen, moved int) {
		fmt.Fprintf(stderr, "\r%s: %d keys looked at, %d moved", stage, seen, moved)
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "moved %d records, %d message index entries, %d campaign counters; %d left as they were\n",
		res.Records, res.Messages, res.Campaigns, res.Skipped)
	return nil
}
