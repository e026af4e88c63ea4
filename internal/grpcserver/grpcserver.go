// Package grpcserver builds the gRPC server every API is registered on:
// message size limits, TLS/mTLS, panic recovery, the grpc.health.v1 service
// and server reflection. It registers no policy API itself.
package grpcserver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// DefaultMaxRecvMsgBytes bounds one request message.
const DefaultMaxRecvMsgBytes = 4 << 20

// Options configure the server.
type Options struct {
	MaxRecvMsgBytes int
	// TLS enables TLS (and mTLS when it requires client certificates).
	TLS    *tls.Config
	Logger *slog.Logger
	// Reflection registers grpc.reflection so grpcurl and friends work.
	Reflection bool
	// Unary and Stream interceptors run after panic recovery, before every
	// RPC (the caller's mTLS identity check, for instance).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
}

// Server is a gRPC server with its health service.
type Server struct {
	*grpc.Server
	Health *health.Server
}

// New returns a server whose health service reports NOT_SERVING for every
// service until SetServing is called.
func New(opts Options) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	maxRecv := opts.MaxRecvMsgBytes
	if maxRecv <= 0 {
		maxRecv = DefaultMaxRecvMsgBytes
	}
	sopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{recoverUnary(logger)}, opts.Unary...)...),
		grpc.ChainStreamInterceptor(opts.Stream...),
	}
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s := &Server{Server: grpc.NewServer(sopts...), Health: health.NewServer()}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.Server, s.Health)
	if opts.Reflection {
		reflection.Register(s.Server)
	}
	return s
}

// SetServing reports every registered service (and the server as a whole,
// the empty name) as serving or not.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.Health.SetServingStatus("", st)
	for name := range s.GetServiceInfo() {
		if name != healthpb.Health_ServiceDesc.ServiceName {
			s.Health.SetServingStatus(name, st)
		}
	}
}

func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}
