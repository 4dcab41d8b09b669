// Package telemetry sets up Herald's logs (log/slog), traces (OpenTelemetry, exported over
// OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set) and metrics (OpenTelemetry instruments
// read by the Prometheus exporter and served on /metrics).
package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// NewLogger returns a slog logger writing JSON or text at the given level.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	opts.ReplaceAttr = durationText
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationText writes a duration as Go spells it ("30s", "1.5ms") in JSON logs, as the text
// handler does: the JSON handler's default, integer nanoseconds, is what nobody reading a log
// line or writing a query wants ("timeout":30000000000).
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// Provider owns the process's tracer and meter providers and the Prometheus registry.
type Provider struct {
	Registry *prometheus.Registry
	Metrics  *Metrics
	tp       *sdktrace.TracerProvider // nil: no exporter, no tracing
	mp       *sdkmetric.MeterProvider
}

// Setup installs global OpenTelemetry providers for service (the W3C trace-context
// propagator, a tracer provider exporting over OTLP when configured, a meter provider read by
// Prometheus) and creates Herald's instruments.
func Setup(ctx context.Context, service string) (*Provider, error) {
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	// Without an exporter the global no-op tracer stays: an SDK provider would record every
	// span only to drop it (its spans were 4% of a busy worker's allocations). Incoming
	// trace context still propagates through the no-op spans.
	var tp *sdktrace.TracerProvider
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
		otel.SetTracerProvider(tp)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	otel.SetMeterProvider(mp)
	m, err := NewMetrics(mp.Meter("github.com/herald-notify/herald"))
	if err != nil {
		return nil, err
	}
	return &Provider{Registry: reg, Metrics: m, tp: tp, mp: mp}, nil
}

// Handler serves the Prometheus metrics.
func (p *Provider) Handler() http.Handler {
	return promhttp.HandlerFor(p.Registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the providers.
func (p *Provider) Shutdown(ctx context.Context) error {
	var err error
	if p.tp != nil {
		err = p.tp.Shutdown(ctx)
	}
	return errors.Join(err, p.mp.Shutdown(ctx))
}

// Metrics are Herald's instruments. A nil *Metrics records nothing, so packages can be used
// without telemetry in tests.
type Metrics struct {
	Jobs      metric.Int64Counter
	Sends     metric.Int64Counter
	SendTime  metric.Float64Histogram
	InFlight  metric.Int64UpDownCounter
	Retries   metric.Int64Counter
	Fallbacks metric.Int64Counter
	DeadLetts metric.Int64Counter
	Webhooks  metric.Int64Counter
	Events    metric.Int64Counter
	// LimiterWaits counts sends the rate limiter delayed, by sender and reason;
	// LimiterWait is how long they waited.
	LimiterWaits metric.Int64Counter
	LimiterWait  metric.Float64Histogram
	// Waiting is the number of jobs held by this worker, by reason.
	Waiting metric.Int64UpDownCounter
	// SenderRate is the configured rate per sender now (lowered after a 130429).
	SenderRate metric.Float64Gauge
	// Breaker is the grey circuit breaker state by instance (0 closed, 1 open, 2 half-open).
	Breaker metric.Int64Gauge
	// Usable is 1 while a sender is in its pools, 0 while out (health.Watcher sets it).
	Usable metric.Int64Gauge
}

// SenderUsable records whether a sender is usable, tolerating a nil *Metrics.
func (m *Metrics) SenderUsable(sender string, usable bool) {
	if m == nil {
		return
	}
	var v int64
	if usable {
		v = 1
	}
	m.Usable.Record(context.Background(), v, Attrs("sender", sender))
}

// BreakerState records a grey instance's breaker state, tolerating a nil *Metrics.
func (m *Metrics) BreakerState(instance string, state int64) {
	if m == nil {
		return
	}
	m.Breaker.Record(context.Background(), state, Attrs("breaker", instance))
}

// NewMetrics creates the instruments on meter.
func NewMetrics(meter metric.Meter) (*Metrics, error) {
	var m Metrics
	var err, e error
	m.Jobs, e = meter.Int64Counter("herald_jobs", metric.WithDescription("Jobs finished by a worker, by outcome and channel"))
	err = errors.Join(err, e)
	m.Sends, e = meter.Int64Counter("herald_sends", metric.WithDescription("Provider calls by channel, outcome and error code"))
	err = errors.Join(err, e)
	m.SendTime, e = meter.Float64Histogram("herald_send_duration_seconds", metric.WithUnit("s"),
		metric.WithDescription("Provider call latency by channel"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15))
	err = errors.Join(err, e)
	m.InFlight, e = meter.Int64UpDownCounter("herald_jobs_in_flight", metric.WithDescription("Jobs being processed by this worker"))
	err = errors.Join(err, e)
	m.Retries, e = meter.Int64Counter("herald_retries", metric.WithDescription("Sends retried later, by channel and code"))
	err = errors.Join(err, e)
	m.Fallbacks, e = meter.Int64Counter("herald_fallbacks", metric.WithDescription("Moves to the next channel, by channel left and reason"))
	err = errors.Join(err, e)
	m.DeadLetts, e = meter.Int64Counter("herald_dead_letters", metric.WithDescription("Jobs sent to the DLQ, by reason"))
	err = errors.Join(err, e)
	m.Webhooks, e = meter.Int64Counter("herald_webhooks", metric.WithDescription("Webhook requests by source and result"))
	err = errors.Join(err, e)
	m.Events, e = meter.Int64Counter("herald_status_events", metric.WithDescription("Status events published, by state"))
	err = errors.Join(err, e)
	m.LimiterWaits, e = meter.Int64Counter("herald_limiter_waits", metric.WithDescription("Sends delayed by a rate limit, by sender and reason"))
	err = errors.Join(err, e)
	m.LimiterWait, e = meter.Float64Histogram("herald_limiter_wait_seconds", metric.WithUnit("s"),
		metric.WithDescription("How long sends waited for a rate limit"),
		metric.WithExplicitBucketBoundaries(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600))
	err = errors.Join(err, e)
	m.Waiting, e = meter.Int64UpDownCounter("herald_jobs_waiting", metric.WithDescription("Jobs waiting in this worker for a limit, by reason"))
	err = errors.Join(err, e)
	m.SenderRate, e = meter.Float64Gauge("herald_sender_rate", metric.WithDescription("Current allowed messages per second per sender"))
	err = errors.Join(err, e)
	m.Breaker, e = meter.Int64Gauge("herald_breaker_state", metric.WithDescription("Grey circuit breaker by instance: 0 closed, 1 open, 2 half-open"))
	err = errors.Join(err, e)
	m.Usable, e = meter.Int64Gauge("herald_sender_usable", metric.WithDescription("1 while a sender is in its pools, 0 while its health keeps it out, by sender"))
	err = errors.Join(err, e)
	return &m, err
}

// Attrs builds an attribute set option from key/value pairs. Sets of up to three pairs are
// built once and cached: a busy worker records several measurements per job, and building
// (sorting, hashing) the set each time was 5% of its allocations. Label values are bounded
// (channels, codes, reasons), and so is the cache.
func Attrs(kv ...string) metric.MeasurementOption {
	if len(kv) > len(attrKey{}) {
		return buildAttrs(kv)
	}
	var k attrKey
	copy(k[:], kv)
	attrCache.RLock()
	o, ok := attrCache.m[k]
	attrCache.RUnlock()
	if ok {
		return o
	}
	o = buildAttrs(kv)
	attrCache.Lock()
	if len(attrCache.m) < maxAttrSets {
		attrCache.m[k] = o
	}
	attrCache.Unlock()
	return o
}

// attrKey is a cached attribute set's pairs, padded with "".
type attrKey [6]string

// maxAttrSets bounds the cache should a label ever take unbounded values.
const maxAttrSets = 4096

var attrCache = struct {
	sync.RWMutex
	m map[attrKey]metric.MeasurementOption
}{m: map[attrKey]metric.MeasurementOption{}}

func buildAttrs(kv []string) metric.MeasurementOption {
	a := make([]attribute.KeyValue, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		a = append(a, attribute.String(kv[i], kv[i+1]))
	}
	return metric.WithAttributeSet(attribute.NewSet(a...))
}

// Count adds 1 to c with attributes, tolerating a nil *Metrics.
func (m *Metrics) Count(ctx context.Context, c func(*Metrics) metric.Int64Counter, kv ...string) {
	if m == nil {
		return
	}
	c(m).Add(ctx, 1, Attrs(kv...))
}

// Record records v on the histogram h picks, tolerating a nil *Metrics.
func (m *Metrics) Record(ctx context.Context, h func(*Metrics) metric.Float64Histogram, v float64, kv ...string) {
	if m == nil {
		return
	}
	h(m).Record(ctx, v, Attrs(kv...))
}

// Add adds n to the up-down counter c picks, tolerating a nil *Metrics.
func (m *Metrics) Add(ctx context.Context, c func(*Metrics) metric.Int64UpDownCounter, n int64, kv ...string) {
	if m == nil {
		return
	}
	c(m).Add(ctx, n, Attrs(kv...))
}
