// Package shared holds what the Go interop peers share: the Polaris
// handshake configuration and the go-plugin glue for proto.Plugin.
package shared

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"polarisinterop/api"
	"polarisinterop/typedpb"
)

// Handshake is the Polaris handshake (src/protocol.rs, docs/protocol.md):
// core protocol 1 (go-plugin's own), app protocol 1, the POLARIS_PLUGIN cookie.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "POLARIS_PLUGIN",
	MagicCookieValue: "ZEEyZPTB68aDLXZGvPwXTJEmzkBpNpeexrx0EhARJx6LGv47pRv8vWurxgCuQtm4",
}

// PluginGRPC serves and dispenses proto.Plugin over go-plugin's gRPC protocol.
// Impl is set on the plugin side and nil on the host side. Typed, when set, is
// served too (a plugin's own proto: api.RateLimiter); Reflection registers gRPC
// server reflection, as go-plugin 1.2 and later do by themselves.
type PluginGRPC struct {
	plugin.NetRPCUnsupportedPlugin
	Impl       api.PluginServer
	Typed      typedpb.RateLimiterServer
	Reflection bool
}

// GRPCServer registers proto.Plugin (and the typed service, and reflection, when
// asked) on go-plugin's gRPC server.
func (p *PluginGRPC) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	api.RegisterPluginServer(s, p.Impl)
	if p.Typed != nil {
		typedpb.RegisterRateLimiterServer(s, p.Typed)
	}
	if p.Reflection {
		reflection.Register(s)
	}
	return nil
}

// GRPCClient is what Dispense returns on the host side: an api.PluginClient.
func (p *PluginGRPC) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return api.NewPluginClient(c), nil
}
