package producer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/embedded"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/producer"
)

// Publish the example job of docs/contracts.md (without send_at, so it is queued at once) to a JetStream
// server, then publish it again: the job id is the idempotency key, so the second publish
// queues nothing.
func Example() {
	dir, err := os.MkdirTemp("", "herald-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.StartNATS(dir, "127.0.0.1", -1)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown()

	nc, err := nats.Connect(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	// herald api, worker and dev do this at start; a service publishing jobs needs only the
	// producer.
	if err := streams.Ensure(ctx, js, streams.Options{}); err != nil {
		log.Fatal(err)
	}

	p := producer.New(js)
	expires := time.Date(2026, 11, 26, 0, 0, 0, 0, time.FixedZone("MSK", 3*60*60))
	j := &producer.Job{
		ID:       "order-123456-ready",
		To:       "+7 900 123-45-67",
		Template: "order_ready",
		Language: "ru",
		Params:   map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2021"},
		Priority: "transactional",
		Channels: []string{"white", "sms"},
		Media:    &producer.Media{Type: "document", URL: "https://shop.example/receipts/123456.pdf", Filename: "receipt.pdf"},
		Buttons:  map[string]string{"0": "orders/123456"},
		SMSText:  "Заказ 123456 ждёт вас до 21.02.2021",
		ExpireAt: &expires,
		Campaign: "balance-expiry-2026-11",
		Tenant:   "shop",
		Metadata: map[string]string{"order_id": "123456"},
	}
	res, err := p.Publish(ctx, j)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s for %s: scheduled=%v duplicate=%v\n", res.ID, j.To, res.Scheduled, res.Duplicate)

	res, err = p.Publish(ctx, j)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("again: duplicate=%v\n", res.Duplicate)
	// Output:
	// order-123456-ready for +79001234567: scheduled=false duplicate=false
	// again: duplicate=true
}
