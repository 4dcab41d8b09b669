package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/white"
	"github.com/herald-notify/herald/worker"
)

// floorRound is the least any dispatcher must do per notification, measured on the same
// servers in the same round as Herald (see floorDispatch).
type floorRound struct {
	rate      float64            // notifications/s, first publish → last provider answer
	cpu       map[string]float64 // cores busy per process over the run
	cpuPerJob time.Duration      // all processes' CPU per notification
	restarts  int64              // pulls started again after two missed heartbeats
}

// floorDispatch measures the floor of the end-to-end figure on this machine: n job messages
// published to a work-queue file stream (with a Nats-Msg-Id each, as the producer does) while
// conc goroutines in this process take each one, decode it, make Herald's own Cloud API call
// to the simulator (worker.White over white.Client: the same request body over the same
// kind of keep-alive HTTP pool) and ack it after the answer. They are split like the worker
// processes of the Herald run: pullers pulls and HTTP pools, each with a connection of its
// own. Nothing else: no claim, no rate limit, no status record, no event, no delivery
// deadline, no process boundary. It is
// what a dispatcher that offers none of Herald's guarantees would cost, so Herald / floor
// is the price of the guarantees, and floor / raw bounds the ratio any design could reach
// while it calls an HTTP provider once per notification.
func floorDispatch(ctx context.Context, s *stack, n, conc, pullers int) (res floorRound, err error) {
	st, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_FLOOR", Subjects: []string{"bench.floor"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	if err != nil {
		return res, err
	}
	defer func() { _ = s.js.DeleteStream(context.WithoutCancel(ctx), "BENCH_FLOOR") }()
	_, err = st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "floor", AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 20000, AckWait: time.Minute}) // as HERALD_JOBS's consumers
	if err != nil {
		return res, err
	}
	var def *templates.Definition
	for _, d := range templates.SampleDefinitions() {
		if d.Name == "order_ready" {
			def = d
		}
	}
	if def == nil {
		return res, errors.New("floor: no order_ready sample template")
	}
	// Herald's own Cloud API client and HTTP pool, one per puller as one per worker process.
	senders := make([]worker.White, pullers)
	for i := range senders {
		senders[i] = worker.White{Client: white.New(white.Config{BaseURL: s.simURL, PhoneNumberID: benchPhoneID, Token: benchToken}, nil)}
	}
	cfg := config.Defaults()
	opts := cfg.JobOptions()

	// Pulled as the end-to-end run's worker lanes pull (worker.lane): one pull per worker
	// process (pullers of them), each on a connection of its own, with a small buffer next to
	// the goroutines and a 1 s heartbeat, so that a pull the server forgot
	// (nats-io/nats.go#1622) stalls only that puller, for 2 s.
	msgs := make(chan jetstream.Msg, conc)
	var done, stalls atomic.Int64
	allDone := make(chan struct{})
	fail := make(chan error, 1)
	var pulling sync.WaitGroup
	var its []jetstream.MessagesContext
	// Stopping the iterators ends the pullers, which closes msgs, which ends the senders.
	defer func() {
		for _, it := range its {
			it.Stop()
		}
	}()
	for range pullers {
		nc, err := nats.Connect(s.nats.URL)
		if err != nil {
			return res, err
		}
		defer nc.Close()
		cjs, err := jetstream.New(nc)
		if err != nil {
			return res, err
		}
		c, err := cjs.Consumer(ctx, "BENCH_FLOOR", "floor")
		if err != nil {
			return res, err
		}
		it, err := c.Messages(jetstream.PullMaxMessages(max(8, min(conc/pullers/4, 64))), jetstream.PullHeartbeat(time.Second))
		if err != nil {
			return res, err
		}
		its = append(its, it)
		pulling.Go(func() {
			for {
				m, err := it.Next()
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				if err != nil {
					stalls.Add(1)
					continue // two missed heartbeats: the iterator pulls again
				}
				msgs <- m
			}
		})
	}
	go func() { pulling.Wait(); close(msgs) }()
	var wg sync.WaitGroup
	for g := range conc {
		sender := senders[g%pullers]
		wg.Go(func() {
			for m := range msgs {
				j, err := job.Decode(m.Data(), opts)
				if err == nil {
					_, err = sender.Send(ctx, worker.Message{Job: j, Template: def})
				}
				if err != nil {
					select {
					case fail <- fmt.Errorf("floor: %w", err):
					default:
					}
					_ = m.Nak()
					continue
				}
				_ = m.Ack()
				if done.Add(1) == int64(n) {
					close(allDone)
				}
			}
		})
	}
	defer func() {
		for _, it := range its {
			it.Stop()
		}
		wg.Wait()
	}()

	fmt.Fprintf(os.Stderr, "floor: publish, consume, one Cloud API call and ack per job, %d jobs\n", n)
	before := s.cpu()
	start := time.Now()
	pr := newProgress("floor", int64(n), start)
	for i := range n {
		id := "floor-" + strconv.Itoa(i)
		m := &nats.Msg{Subject: "bench.floor", Header: nats.Header{jetstream.MsgIDHeader: []string{id}},
			Data: floorJob(id, fmt.Sprintf("+7900%07d", i%10_000_000), i)}
		if _, err := s.js.PublishMsgAsync(m); err != nil {
			return res, err
		}
		if i%4096 == 0 {
			pr.update(done.Load())
		}
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for waiting := true; waiting; {
		select {
		case <-allDone:
			waiting = false
		case err := <-fail:
			return res, err
		case <-ctx.Done():
			return res, ctx.Err()
		case <-t.C:
			pr.update(done.Load())
			if time.Since(start) > 10*time.Minute {
				return res, fmt.Errorf("floor: %d of %d sent in 10 minutes", done.Load(), n)
			}
		}
	}
	el := time.Since(start)
	pr.done(int64(n))
	res.rate = float64(n) / el.Seconds()
	res.cpu = cpuShare(before, s.cpu(), el)
	res.cpuPerJob = time.Duration(allCPU(res.cpu) * el.Seconds() / float64(n) * float64(time.Second))
	res.restarts = stalls.Load()
	fmt.Fprintf(os.Stderr, "  floor: %.0f notifications/s, %s CPU per job, %d pull restarts\n", res.rate, res.cpuPerJob.Round(time.Microsecond), res.restarts)
	return res, nil
}

// floorJob is the JSON of job i as the producer writes it: the sample order_ready template.
func floorJob(id, to string, i int) []byte {
	order := strconv.Itoa(i)
	return []byte(`{"id":"` + id + `","to":"` + to + `","template":"order_ready","language":"ru","params":{"address":"ул. Текстильщиков, д. 20","order":"` +
		order + `","until":"21.02.2027"},"buttons":{"0":"` + order + `"},"priority":"transactional"}`)
}
