// Package shared holds what the Go interop peers share: the Polaris
// handshake configuration and the go-plugin glue for proto.Plugin.
package shared

import (
	"context"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"polarisinterop/api"
)

// Handshake is the Polaris handshake (src/protocol.rs, docs/protocol.md):
// core protocol 1 (go-plugin's own), app protocol 1, the POLARIS_PLUGIN cookie.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "POLARIS_PLUGIN",
	MagicCookieValue: "ZEEyZPTB68aDLXZGvPwXTJEmzkBpNpeexrx0EhARJx6LGv47pRv8vWurxgCuQtm4",
}

// PluginGRPC serves and dispenses proto.Plugin over go-plugin's gRPC protocol.
// Impl is set on the plugin side and nil on the host side.
type PluginGRPC struct {
	plugin.NetRPCUnsupportedPlugin
	Impl api.PluginServer
}

// GRPCServer registers proto.Plugin on go-plugin's gRPC server.
func (p *PluginGRPC) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	api.RegisterPluginServer(s, p.Impl)
	return nil
}

// GRPCClient is what Dispense returns on the host side: an api.PluginClient.
func (p *PluginGRPC) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return api.NewPluginClient(c), nil
}
