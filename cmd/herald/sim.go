package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/telemetry"
)

// cmdSim runs the provider simulator alone.
func cmdSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	webhook := fs.String("webhook-url", "", "where to POST Cloud API status webhooks (e.g. http://127.0.0.1:8080/webhooks/whatsapp)")
	secret := fs.String("app-secret", "", "signs the webhooks (HERALD_WHITE_APP_SECRET of the receiver)")
	token := fs.String("token", "", "required Bearer token (empty: any)")
	latency := fs.Duration("latency", 0, "added to every provider response")
	jitter := fs.Duration("jitter", 0, "random extra latency up to this")
	statusDelay := fs.Duration("status-delay", 200*time.Millisecond, "delay before each status webhook")
	reviewDelay := fs.Duration("review-delay", sim.DefaultReviewDelay, "how long a submitted template stays PENDING before the lint's verdict")
	maxMsgs := fs.Int("max-messages", 1000000, "messages kept for GET /sim/messages")
	greyWebhook := fs.String("grey-webhook-url", "", "where to POST grey gateway notifications (e.g. http://127.0.0.1:8080/webhooks/grey)")
	statuses := fs.String("statuses", "sent,delivered,read", "statuses reported for an accepted send, in order (empty: none)")
	noAccount := fs.String("grey-no-account", "", "comma-separated numbers without WhatsApp (grey reports noAccount)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: herald sim [flags]\n\nThe provider simulator: Cloud API /{version}/{phone-number-id}/messages and message_templates,\nKannel /cgi-bin/sendsms, a GREEN-API grey gateway (/waInstance{id}/...), control under /sim\n(messages, rules, stats, grey/state, grey/incoming).\n\nExample:\n  herald sim -addr 127.0.0.1:8090 -webhook-url http://127.0.0.1:8080/webhooks/whatsapp -app-secret s3cret\n\nFlags:")
		fs.PrintDefaults()
	}
	if pos, err := parseFlags(fs, args, stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{"herald sim takes flags only, got " + pos[0] + " (herald sim -h)"}
	}
	log := telemetry.NewLogger(stderr, "info", "text")
	sts := []string{}
	for _, st := range strings.Split(*statuses, ",") {
		if st = strings.TrimSpace(st); st != "" {
			sts = append(sts, st)
		}
	}
	var noAcc []string
	if *noAccount != "" {
		noAcc = strings.Split(*noAccount, ",")
	}
	s := sim.New(sim.Config{WebhookURL: *webhook, AppSecret: *secret, Token: *token, Latency: *latency,
		Jitter: *jitter, StatusDelay: *statusDelay, ReviewDelay: *reviewDelay, MaxMessages: *maxMsgs, Logger: log, Templates: sampleTemplateJSON(),
		Statuses: sts, GreyWebhookURL: *greyWebhook, GreyNoAccount: noAcc})
	s.Start(ctx)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "simulator listening on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
