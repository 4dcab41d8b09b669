package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/embedded"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/white"
	"github.com/herald-notify/herald/producer"
	"github.com/herald-notify/herald/worker"
)

// Run a worker inside a Go service: it consumes the jobs a producer publishes, renders the
// template and sends it through the Cloud API adapter (here to the provider simulator), and
// announces every state change on herald.events.status.<state>.
func Example() {
	ctx := context.Background()
	discard := slog.New(slog.DiscardHandler)

	// What a deployment already has: NATS with JetStream, Redis and a WhatsApp provider.
	// Here they are the embedded servers of `herald dev` and the simulator.
	dir, err := os.MkdirTemp("", "herald-worker-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ns, err := embedded.StartNATS(dir, "127.0.0.1", -1)
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Shutdown()
	mr, err := embedded.StartRedis()
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	provider := sim.New(sim.Config{Logger: discard})
	simSrv := httptest.NewServer(provider.Handler())
	defer simSrv.Close()

	nc, err := nats.Connect(ns.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	// Streams, consumers and the template catalogue (herald api, worker and dev do this at
	// start), with the sample templates.
	if err := streams.Ensure(ctx, js, streams.Options{}); err != nil {
		log.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, streams.TemplatesKV)
	if err != nil {
		log.Fatal(err)
	}
	if err := templates.PutSamples(ctx, kv); err != nil {
		log.Fatal(err)
	}
	catCtx, stopCatalogue := context.WithCancel(ctx)
	defer stopCatalogue()
	catalogue := templates.NewCatalogue(kv, discard)
	if err := catalogue.Start(catCtx); err != nil {
		log.Fatal(err)
	}

	w := worker.New(js, worker.NewRedisStore(rdb, 24*time.Hour, "1"), catalogue,
		map[string]worker.Sender{
			"white": worker.White{Client: white.New(white.Config{BaseURL: simSrv.URL, PhoneNumberID: "1", Token: "t"}, nil)},
		},
		worker.Config{Channels: []string{"white"}, Logger: discard})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()

	// A business system follows its notifications on the status events.
	sub, err := nc.SubscribeSync(streams.SubjectStatusPrefix + ">")
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe()

	_, err = producer.New(js).Publish(ctx, &producer.Job{
		ID: "order-123456-ready", To: "+7 900 123-45-67", Template: "order_ready",
		Params:  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
		Buttons: map[string]string{"0": "123456"},
	})
	if err != nil {
		log.Fatal(err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		log.Fatal(err)
	}
	var ev worker.Event
	if err := json.Unmarshal(msg.Data, &ev); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s on %s: %s through %s\n", msg.Subject, ev.ID, ev.State, ev.Channel)

	// Stop: Run drains the jobs in flight and returns; only then close the connections
	// (the deferred calls above).
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	for _, m := range provider.Messages() {
		fmt.Printf("sent %s to %s\n", m.Template, m.To)
	}
	// Output:
	// herald.events.status.sent on order-123456-ready: sent through white
	// sent order_ready to 79001234567
}
