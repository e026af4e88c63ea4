package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/metadata"

	"github.com/verdictpdp/verdict/internal/tracing"
)

const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent = "00-" + parentTrace + "-00f067aa0ba902b7-01"
	otherTrace  = "0af7651916cd43dd8448eb211c80319c"
)

func TestDecisionSpan(t *testing.T) {
	tests := []struct {
		name      string
		md        metadata.MD
		headers   map[string]string
		wantTrace string // "" means a new trace
	}{
		{name: "gRPC metadata", md: metadata.Pairs("traceparent", traceparent), wantTrace: parentTrace},
		{name: "checked request's header", headers: map[string]string{"traceparent": traceparent}, wantTrace: parentTrace},
		{
			name: "metadata wins over the header", md: metadata.Pairs("traceparent", traceparent),
			headers: map[string]string{"traceparent": "00-" + otherTrace + "-00f067aa0ba902b7-01"}, wantTrace: parentTrace,
		},
		{name: "no parent", headers: map[string]string{"x-request-id": "1"}},
		{name: "malformed parent", headers: map[string]string{"traceparent": "00-zz-yy-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			tr := tracing.NewWithProvider(tp, tp.Shutdown)
			ctx := context.Background()
			if tt.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tt.md)
			}
			_, span := tr.Start(ctx, "verdict.ext_authz.Check", tt.headers)
			traceID, spanID := tracing.End(span, "d-1", "envoy/authz/allow", "deny", true)

			ended := rec.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d spans ended, want 1", len(ended))
			}
			s := ended[0]
			if traceID != s.SpanContext().TraceID().String() || spanID != s.SpanContext().SpanID().String() {
				t.Errorf("ids %s/%s, span has %s/%s", traceID, spanID, s.SpanContext().TraceID(), s.SpanContext().SpanID())
			}
			if tt.wantTrace != "" && traceID != tt.wantTrace {
				t.Errorf("trace %s, want the caller's %s", traceID, tt.wantTrace)
			}
			if tt.wantTrace == "" && (traceID == parentTrace || s.Parent().IsValid()) {
				t.Errorf("span joined a trace it had no parent for: %s", traceID)
			}
			want := map[attribute.Key]attribute.Value{
				"verdict.decision_id": attribute.StringValue("d-1"),
				"verdict.path":        attribute.StringValue("envoy/authz/allow"),
				"verdict.result":      attribute.StringValue("deny"),
				"verdict.cached":      attribute.BoolValue(true),
			}
			got := map[attribute.Key]attribute.Value{}
			for _, kv := range s.Attributes() {
				got[kv.Key] = kv.Value
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("attribute %s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	tr, err := tracing.New(context.Background(), tracing.Options{})
	if err != nil || tr != nil || tr.Enabled() {
		t.Fatalf("no endpoint: tracer %v, err %v; want nil and disabled", tr, err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
