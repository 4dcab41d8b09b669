package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/telemetry"
)

// cmdServe runs `herald api` or `herald worker` against an external NATS and Redis.
func cmdServe(ctx context.Context, cfg *config.Config, log *slog.Logger, apiPart, workerPart bool) error {
	// config.LoadFor has checked NATS, Redis and the role's variables, all at once.
	name := "herald-api"
	if workerPart {
		name = "herald-worker"
	}
	tel, err := telemetry.Setup(ctx, name)
	if err != nil {
		return err
	}
	nc, err := app.ConnectNATS(cfg, log, name)
	if err != nil {
		return err
	}
	rdb, err := app.ConnectRedis(ctx, cfg.RedisURL)
	if err != nil {
		log.Warn("Redis not reachable yet; jobs wait until it is", "err", err)
	}
	runErr := app.Run(ctx, cfg, log, tel, nc, rdb, app.Parts{API: apiPart, Worker: workerPart})
	// Step 4 of the shutdown order: connections, then telemetry.
	_ = nc.Drain()
	_ = rdb.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tel.Shutdown(sctx)
	return runErr
}
