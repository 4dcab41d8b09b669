package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/smpp"
	"github.com/herald-notify/herald/internal/status"
)

// dialSMPP binds the SMPP transceiver; its delivery receipts go to onReport. The client
// rebinds by itself; it is closed when ctx ends.
func dialSMPP(ctx context.Context, cfg *config.Config, log *slog.Logger, onReport func(context.Context, status.Report) error) (*smpp.Client, error) {
	c, err := smpp.Dial(ctx, smpp.Config{
		Addr: cfg.SMSSMPPAddr, SystemID: cfg.SMSSMPPSystemID, Password: cfg.SMSSMPPPassword,
		From: cfg.SMSFrom, MaxSegments: cfg.SMSMaxSegments, Logger: log,
		OnReport: func(ctx context.Context, r status.Report) {
			if err := onReport(ctx, r); err != nil {
				log.Warn("SMPP delivery receipt not recorded", "message", r.MessageID, "err", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("HERALD_SMS_SMPP_ADDR: %w", err)
	}
	context.AfterFunc(ctx, func() { _ = c.Close() })
	return c, nil
}
