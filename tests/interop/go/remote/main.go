// go-remote: a plain grpc-go server (no go-plugin) serving proto.Plugin and
// grpc.health.v1 ("plugin" SERVING), as a Polaris *remote* plugin is: a gRPC
// server someone else runs at an address.
//
//	go-remote -addr 127.0.0.1:0
//
// prints the bound address (host:port) on the first stdout line, then serves
// until killed. Rate-limit calls answer allow=true.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"polarisinterop/api"
)

type allowAll struct {
	api.UnimplementedPluginServer
}

func (allowAll) Call(_ context.Context, req *api.Request) (*api.Response, error) {
	var r api.RateLimitPluginRequest
	if err := req.GetPayload().UnmarshalTo(&r); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "got wrong payload type url: %s", req.GetPayload().GetTypeUrl())
	}
	reply, err := anypb.New(&api.RateLimitPluginResponse{Allow: true})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &api.Response{Reply: reply}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-remote:", err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	api.RegisterPluginServer(server, allowAll{})
	hs := health.NewServer()
	hs.SetServingStatus("plugin", grpc_health_v1.HealthCheckResponse_SERVING)
	grpc_health_v1.RegisterHealthServer(server, hs)
	fmt.Println(lis.Addr().String())
	if err := server.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "go-remote:", err)
		os.Exit(1)
	}
}
