package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	mcpv1 "github.com/verdictpdp/verdict/proto/verdict/mcp/v1"
)

// floorServer is the no-op ext_authz server: it allows every Check without
// looking at it. What it costs is the transport and protobuf decoding that
// any ext_authz server pays, the floor the pdp is compared with.
// mcpFloorServer is the same for the native MCP API.
type floorServer struct {
	authv3.UnimplementedAuthorizationServer
}

var okResponse = &authv3.CheckResponse{
	Status:       &rpcstatus.Status{},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

func (floorServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return okResponse, nil
}

type mcpFloorServer struct {
	mcpv1.UnimplementedMCPPolicyServer
}

var mcpAllow = &mcpv1.CheckResponse{Decision: mcpv1.Decision_DECISION_ALLOW}

func (mcpFloorServer) Check(context.Context, *mcpv1.CheckRequest) (*mcpv1.CheckResponse, error) {
	return mcpAllow, nil
}

// serveFloor serves the floor on addr until ctx ends. It runs in its own
// process (-serve-floor) so that, like pdp, it does not share a Go runtime
// with the load generator.
func serveFloor(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, floorServer{})
	mcpv1.RegisterMCPPolicyServer(s, mcpFloorServer{})
	go func() {
		<-ctx.Done()
		s.Stop()
	}()
	if err := s.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("floor: %w", err)
	}
	return nil
}
