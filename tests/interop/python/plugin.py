#!/usr/bin/env python3
"""A Polaris companion plugin in Python on grpcio, with go-plugin's handshake
done by hand (there is no go-plugin for Python).

    plugin.py --stubs DIR

DIR holds the stubs generated from proto/ (and the test-only
tests/interop/proto/interop.proto) by grpcio-tools:

    python3 -m grpc_tools.protoc -I proto -I tests/interop/proto \
        --python_out=DIR --grpc_python_out=DIR \
        plugin.proto rate_limit.proto interop.proto

What a host needs from it:
- the magic cookie check, else a message on stderr and exit 1;
- one handshake line on stdout, flushed: 1|1|tcp|127.0.0.1:PORT|grpc;
- grpc.health.v1 with "plugin" SERVING (go-plugin hosts' Ping);
- proto.Plugin/Call: RateLimitPluginRequest -> RateLimitPluginResponse{allow: true};
- plugin.GRPCController/Shutdown (and SIGTERM): stop gracefully, exit 0;
- exit when the host process is gone (parent pid changes).
"""

import argparse
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

COOKIE_KEY = "POLARIS_PLUGIN"
COOKIE_VALUE = "ZEEyZPTB68aDLXZGvPwXTJEmzkBpNpeexrx0EhARJx6LGv47pRv8vWurxgCuQtm4"
APP_PROTOCOL_VERSION = 1


def log(level, message):
    """go-plugin hosts read `[LEVEL] message` lines on stderr at that level."""
    print(f"[{level}] {message}", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stubs", required=True, help="directory of the generated *_pb2 modules")
    args = parser.parse_args()

    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        print("This binary is a plugin. These are not meant to be executed directly.\n"
              "Please execute the program that consumes these plugins, which will\n"
              "load any plugins automatically.", file=sys.stderr)
        sys.exit(1)

    sys.path.insert(0, args.stubs)
    import interop_pb2
    import plugin_pb2
    import plugin_pb2_grpc
    import rate_limit_pb2
    import rate_limiter_pb2
    import rate_limiter_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    name = os.environ.get("PLUGIN_NAME") or os.path.basename(sys.argv[0])
    stop = threading.Event()

    class RateLimiter(plugin_pb2_grpc.PluginServicer):
        def Call(self, request, context):
            if request.payload.Is(rate_limit_pb2.RateLimitPluginRequest.DESCRIPTOR):
                reply = rate_limit_pb2.RateLimitPluginResponse(allow=True)
            elif request.payload.Is(interop_pb2.ProbeRequest.DESCRIPTOR):
                reply = interop_pb2.ProbeResponse(pid=os.getpid(), name=name)
            else:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"got wrong payload type url: {request.payload.type_url}")
            response = plugin_pb2.Response()
            response.reply.Pack(reply)
            return response

    def shutdown(_request: bytes, _context) -> bytes:
        # plugin.Empty in, plugin.Empty out: both are zero bytes on the wire.
        log("INFO", "shutdown requested by the host")
        stop.set()
        return b""

    # The plugin's own proto: the typed api.RateLimiter of examples/proto/rate_limiter.proto.
    class TypedRateLimiter(rate_limiter_pb2_grpc.RateLimiterServicer):
        def Ping(self, request, context):
            return rate_limiter_pb2.PongResponse()

        def Allow(self, request, context):
            return rate_limiter_pb2.RateLimitResponse(allow=request.key != "deny")

    controller = grpc.method_handlers_generic_handler(
        "plugin.GRPCController", {"Shutdown": grpc.unary_unary_rpc_method_handler(shutdown)})

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    plugin_pb2_grpc.add_PluginServicer_to_server(RateLimiter(), server)
    rate_limiter_pb2_grpc.add_RateLimiterServicer_to_server(TypedRateLimiter(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_generic_rpc_handlers((controller,))
    # gRPC server reflection over what is served: `polaris-plugin describe` lists it.
    reflection.enable_server_reflection((
        plugin_pb2.DESCRIPTOR.services_by_name["Plugin"].full_name,
        rate_limiter_pb2.DESCRIPTOR.services_by_name["RateLimiter"].full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    ), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    # SIGTERM stops gracefully too; SIGINT (a Ctrl-C in the host's terminal)
    # is left to the host, as go-plugin plugins do.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # The handshake: the first and only line on stdout, flushed.
    print(f"1|{APP_PROTOCOL_VERSION}|tcp|127.0.0.1:{port}|grpc", flush=True)
    log("INFO", f"python plugin {name} serving on 127.0.0.1:{port}")

    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log("WARN", "host process is gone; exiting")
            break
    server.stop(grace=2).wait()
    log("INFO", "python plugin stopped")


if __name__ == "__main__":
    main()
