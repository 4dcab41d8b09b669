// Command peer is the pipeline a Go team would build instead of Herald, measured beside it by
// heraldbench's e2e section (issue 16): asynq tasks in Redis, a redis_rate limit per recipient,
// the same Cloud API request Herald makes, POSTed to the same simulator, and a status hash per
// notification. It is its own module so that Herald never depends on asynq; heraldbench builds
// it (GOWORK=off go build -C cmd/heraldbench/peer) and runs it as two processes:
//
//	peer enqueue -redis URL -jobs N [-prefix peer-] [-enqueuers 32]
//	peer work -redis URL -sim URL -phone-id ID [-concurrency 200] [-pair-interval 6s]
//
// enqueue puts N tasks on asynq's default queue, prints an EnqueueReport and exits; work processes them with an asynq
// server until SIGINT or SIGTERM. The bearer token comes from $PEER_WHITE_TOKEN, so that it
// is never on a command line. Each task is job i of the benchmark: the order_ready template to
// +7900<i>, with the same parameters and button as Herald's e2e jobs.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// taskType is the asynq task type of one notification.
const taskType = "notify:whatsapp"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peer enqueue|work [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "enqueue":
		err = enqueueMain(args)
	case "work":
		err = workMain(args)
	default:
		err = fmt.Errorf("unknown command %q (enqueue, work)", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

// Job is the task payload: the fields of Herald's job JSON that a template send reads.
type Job struct {
	// Tenant scopes ID: the Cloud API's biz_opaque_callback_data is "<tenant>/<id>", as
	// Herald writes it, so status webhooks would name both.
	Tenant   string            `json:"tenant,omitempty"`
	ID       string            `json:"id"`
	To       string            `json:"to"`
	Template string            `json:"template"`
	Language string            `json:"language"`
	Params   map[string]string `json:"params"`
	Buttons  map[string]string `json:"buttons"`
}

// BenchJob is job i of a run, as heraldbench's e2e jobs are built (e2eJob): the default
// tenant, recipient +7900<i mod 10^7>, the order_ready template, order i.
func BenchJob(prefix string, i int) Job {
	order := strconv.Itoa(i)
	return Job{Tenant: "default", ID: prefix + order, To: fmt.Sprintf("+7900%07d", i%10_000_000), Template: "order_ready", Language: "ru",
		Params:  map[string]string{"order": order, "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
		Buttons: map[string]string{"0": order}}
}

func enqueueMain(args []string) error {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	redisURL := fs.String("redis", "", "Redis URL (redis://host:port/db)")
	jobs := fs.Int("jobs", 0, "tasks to enqueue")
	prefix := fs.String("prefix", "peer-", "task id prefix")
	enqueuers := fs.Int("enqueuers", 32, "goroutines calling Enqueue")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *redisURL == "":
		return errors.New("-redis: required")
	case *jobs <= 0:
		return fmt.Errorf("-jobs: %d is not a positive number", *jobs)
	case *enqueuers <= 0:
		return fmt.Errorf("-enqueuers: %d is not a positive number", *enqueuers)
	}
	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	opt.PoolSize = *enqueuers
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	c := asynq.NewClientFromRedisClient(rdb)
	ctx := context.Background()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *enqueuers)
	for range *enqueuers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < *jobs; i = int(next.Add(1) - 1) {
				j := BenchJob(*prefix, i)
				payload, err := json.Marshal(j)
				if err != nil {
					errs <- err
					return
				}
				// The id makes a second enqueue of the same job a conflict, as Herald's
				// Nats-Msg-Id makes it a duplicate.
				if _, err := c.EnqueueContext(ctx, asynq.NewTask(taskType, payload), asynq.TaskID(j.ID)); err != nil {
					errs <- fmt.Errorf("enqueue %s: %w", j.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	el := time.Since(start)
	// One JSON line for heraldbench: this process ends before it could read our CPU time.
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return fmt.Errorf("getrusage: %w", err)
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return json.NewEncoder(os.Stdout).Encode(EnqueueReport{Jobs: *jobs, Seconds: el.Seconds(), CPUSeconds: cpu.Seconds()})
}

// EnqueueReport is the line enqueue prints when it is done.
type EnqueueReport struct {
	Jobs       int     `json:"jobs"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

func workMain(args []string) error {
	fs := flag.NewFlagSet("work", flag.ContinueOnError)
	redisURL := fs.String("redis", "", "Redis URL (redis://host:port/db)")
	simURL := fs.String("sim", "", "Cloud API base URL (the simulator)")
	phoneID := fs.String("phone-id", "", "business phone number id")
	concurrency := fs.Int("concurrency", 200, "asynq server concurrency")
	pair := fs.Duration("pair-interval", 6*time.Second, "least time between two sends to one recipient")
	if err := fs.Parse(args); err != nil {
		return err
	}
	token := os.Getenv("PEER_WHITE_TOKEN")
	switch {
	case *redisURL == "":
		return errors.New("-redis: required")
	case *simURL == "":
		return errors.New("-sim: required")
	case *phoneID == "":
		return errors.New("-phone-id: required")
	case token == "":
		return errors.New("$PEER_WHITE_TOKEN: required")
	case *concurrency <= 0:
		return fmt.Errorf("-concurrency: %d is not a positive number", *concurrency)
	case *pair <= 0:
		return fmt.Errorf("-pair-interval: %s is not positive", *pair)
	}
	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	// Every handler may hold a connection for its limit check and its HSET, and an HTTP
	// connection for its send: pools as large as the concurrency, as a team tuning it would.
	opt.PoolSize = *concurrency
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = *concurrency, *concurrency
	s := &sender{
		hc:      &http.Client{Transport: tr, Timeout: 10 * time.Second},
		url:     strings.TrimRight(*simURL, "/") + "/v21.0/" + *phoneID + "/messages",
		auth:    "Bearer " + token,
		rdb:     rdb,
		limiter: redis_rate.NewLimiter(rdb),
		pair:    redis_rate.Limit{Rate: 1, Burst: 1, Period: *pair},
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc(taskType, s.process)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:     *concurrency,
		LogLevel:        asynq.WarnLevel,
		ShutdownTimeout: 5 * time.Second,
		RetryDelayFunc:  retryDelay,
		ErrorHandler: asynq.ErrorHandlerFunc(func(_ context.Context, t *asynq.Task, err error) {
			if !errors.As(err, new(*heldError)) {
				slog.Warn("task failed", "type", t.Type(), "err", err)
			}
		}),
	})
	// Run returns on SIGINT or SIGTERM, after the tasks in flight have finished.
	return srv.Run(mux)
}

// heldError is a task the recipient's limit holds back for After.
type heldError struct{ After time.Duration }

func (e *heldError) Error() string { return "recipient limit: retry in " + e.After.String() }

// retryDelay retries a held task when its recipient's limit allows, anything else with
// asynq's default backoff.
func retryDelay(n int, err error, t *asynq.Task) time.Duration {
	if h, ok := errors.AsType[*heldError](err); ok {
		return max(h.After, time.Millisecond)
	}
	return asynq.DefaultRetryDelayFunc(n, err, t)
}

// sender handles one task: limit check, Cloud API send, status record.
type sender struct {
	hc      *http.Client
	url     string
	auth    string
	rdb     *redis.Client
	limiter *redis_rate.Limiter
	pair    redis_rate.Limit
}

func (s *sender) process(ctx context.Context, t *asynq.Task) error {
	var j Job
	if err := json.Unmarshal(t.Payload(), &j); err != nil {
		return fmt.Errorf("decode task: %v: %w", err, asynq.SkipRetry)
	}
	res, err := s.limiter.Allow(ctx, "pair:"+j.To, s.pair)
	if err != nil {
		return fmt.Errorf("pair limit: %w", err)
	}
	if res.Allowed == 0 {
		return &heldError{After: res.RetryAfter}
	}
	body, err := Body(j)
	if err != nil {
		return fmt.Errorf("job %s: %v: %w", j.ID, err, asynq.SkipRetry)
	}
	wamid, err := s.post(ctx, body)
	if err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	err = s.rdb.HSet(ctx, "status:"+j.ID, "status", "sent", "wamid", wamid, "sent_at", time.Now().UnixMilli()).Err()
	if err != nil {
		return fmt.Errorf("job %s: status: %w", j.ID, err)
	}
	return nil
}

// post sends body to the Cloud API and returns the message id. A 4xx other than 429 is final
// (asynq.SkipRetry): sending it again cannot succeed.
func (s *sender) post(ctx context.Context, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", s.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("cloud api: HTTP %d", resp.StatusCode)
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests {
			err = fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return "", err
	}
	var ok struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(data, &ok); err != nil || len(ok.Messages) == 0 {
		return "", fmt.Errorf("cloud api: HTTP %d without a message id", resp.StatusCode)
	}
	return ok.Messages[0].ID, nil
}
