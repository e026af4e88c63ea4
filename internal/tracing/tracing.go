// Package tracing starts one OpenTelemetry span per decision. It is off
// unless an OTLP endpoint is configured: a nil or disabled *Tracer costs a
// branch. A decision's span joins the caller's trace when the gRPC metadata
// (or, for ext_authz, the checked HTTP request) carries W3C traceparent.
package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// Options configure tracing.
type Options struct {
	// Endpoint is the OTLP/gRPC collector (host:port); empty turns tracing
	// off.
	Endpoint string
	Insecure bool
	// SampleRatio is the share of new traces sampled.
	SampleRatio float64
	Version     string
}

// Tracer starts decision spans.
type Tracer struct {
	tracer   trace.Tracer
	shutdown func(context.Context) error
	prop     propagation.TextMapPropagator
}

// New returns a tracer exporting to opts.Endpoint, or nil when it is empty.
func New(ctx context.Context, opts Options) (*Tracer, error) {
	if opts.Endpoint == "" {
		return nil, nil
	}
	eopts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(opts.Endpoint)}
	if opts.Insecure {
		eopts = append(eopts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, eopts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("verdict"), semconv.ServiceVersion(opts.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SampleRatio))),
	)
	return NewWithProvider(tp, tp.Shutdown), nil
}

// NewWithProvider returns a tracer on tp; shutdown (may be nil) runs at
// Shutdown.
func NewWithProvider(tp trace.TracerProvider, shutdown func(context.Context) error) *Tracer {
	return &Tracer{
		tracer:   tp.Tracer("github.com/verdictpdp/verdict"),
		shutdown: shutdown,
		prop:     propagation.TraceContext{},
	}
}

// Enabled reports whether spans are recorded.
func (t *Tracer) Enabled() bool { return t != nil }

// Start starts a decision span named name, child of the trace context in
// the incoming gRPC metadata, else in headers (may be nil).
func (t *Tracer) Start(ctx context.Context, name string, headers map[string]string) (context.Context, trace.Span) {
	parent := ctx
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("traceparent")) > 0 {
		parent = t.prop.Extract(ctx, mdCarrier(md))
	} else if headers != nil {
		parent = t.prop.Extract(ctx, propagation.MapCarrier(headers))
	}
	return t.tracer.Start(parent, name, trace.WithSpanKind(trace.SpanKindServer))
}

// End finishes a decision span with its outcome and returns the trace and
// span ids for the audit event.
func End(span trace.Span, decisionID, path, result string, cached bool) (traceID, spanID string) {
	span.SetAttributes(
		attribute.String("verdict.decision_id", decisionID),
		attribute.String("verdict.path", path),
		attribute.String("verdict.result", result),
		attribute.Bool("verdict.cached", cached),
	)
	span.End()
	sc := span.SpanContext()
	if !sc.IsValid() {
		return "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String()
}

// Shutdown flushes and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// mdCarrier reads gRPC metadata as a propagation carrier.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c mdCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}
