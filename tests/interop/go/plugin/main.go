// go-plugin: a Polaris companion plugin written the way Go plugin authors
// write them, on hashicorp/go-plugin (plugin.Serve, gRPC) with the Polaris
// handshake, for the interop tests of the Rust host.
//
// It does what the Polaris Go SDK's server.Serve does: PLUGIN_NAME is the
// plugin key (else the basename of argv[0]), PLUGIN_PROCS sets GOMAXPROCS,
// and the parent pid is polled every second; the plugin exits when its
// host is gone.
//
// Calls: proto.RateLimitPluginRequest -> RateLimitPluginResponse{allow: true};
// interop.ProbeRequest -> interop.ProbeResponse (GOMAXPROCS, CPU affinity, pid).
//
// Test knobs:
//
//	-crash-after N (or env CRASH_AFTER=N): panic on the N-th rate-limit call
//	-log-levels: log one hclog line per level (trace..error) at start
//	-record FILE: append each rate-limit call's key and the pid to FILE, one line (one
//	 write, O_APPEND) per call, before answering: tests count deliveries
//	-reflection: serve gRPC server reflection (go-plugin 1.2 and later do; 1.0.1 does not)
//
// It also serves the typed api.RateLimiter of examples/proto/rate_limiter.proto
// (a plugin's own proto): Allow answers allow=true for any key but "deny".
package main

import (
	"context"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"polarisinterop/api"
	"polarisinterop/interoppb"
	"polarisinterop/shared"
	"polarisinterop/typedpb"
)

// typedLimiter is api.RateLimiter, the plugin's own proto.
type typedLimiter struct {
	typedpb.UnimplementedRateLimiterServer
}

func (typedLimiter) Ping(context.Context, *typedpb.PingRequest) (*typedpb.PongResponse, error) {
	return &typedpb.PongResponse{}, nil
}

func (typedLimiter) Allow(_ context.Context, req *typedpb.RateLimitRequest) (*typedpb.RateLimitResponse, error) {
	return &typedpb.RateLimitResponse{Allow: req.GetKey() != "deny"}, nil
}

type rateLimiter struct {
	api.UnimplementedPluginServer
	name       string
	logger     hclog.Logger
	crashAfter int64
	calls      int64
	record     string
}

func (s *rateLimiter) Call(_ context.Context, req *api.Request) (*api.Response, error) {
	payload := req.GetPayload()
	if payload == nil {
		return nil, status.Error(codes.InvalidArgument, "request payload is missing")
	}
	var reply proto.Message
	switch {
	case payload.MessageIs(&api.RateLimitPluginRequest{}):
		var r api.RateLimitPluginRequest
		if err := payload.UnmarshalTo(&r); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		n := atomic.AddInt64(&s.calls, 1)
		if s.crashAfter > 0 && n >= s.crashAfter {
			panic(fmt.Sprintf("crash-after %d: crashing on call %d as told", s.crashAfter, n))
		}
		if s.record != "" {
			f, err := os.OpenFile(s.record, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
			_, err = f.Write([]byte(fmt.Sprintf("%s %d\n", r.GetKey(), os.Getpid())))
			f.Close()
			if err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
		}
		reply = &api.RateLimitPluginResponse{Allow: true}
	case payload.MessageIs(&interoppb.ProbeRequest{}):
		reply = &interoppb.ProbeResponse{
			Gomaxprocs:      int32(runtime.GOMAXPROCS(0)),
			CpusAllowedList: cpusAllowedList(),
			Pid:             int64(os.Getpid()),
			Calls:           atomic.LoadInt64(&s.calls),
			Name:            s.name,
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "got wrong payload type url: %s", payload.GetTypeUrl())
	}
	packed, err := anypb.New(reply)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &api.Response{Reply: packed}, nil
}

// cpusAllowedList is the CPU affinity as the kernel reports it ("0-1", "1").
func cpusAllowedList() string {
	data, err := ioutil.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown: " + err.Error()
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Cpus_allowed_list:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "Cpus_allowed_list:"))
		}
	}
	return "unknown"
}

// watchParent is the Go SDK's parent check: poll getppid every second and
// exit when it changes (the host is gone and the plugin was re-parented).
func watchParent(logger hclog.Logger) {
	parent := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			logger.Warn("host process is gone; exiting", "host_pid", parent)
			os.Exit(0)
		}
	}
}

func main() {
	crashAfter := flag.Int64("crash-after", 0, "panic on the N-th rate-limit call (0: never; env CRASH_AFTER)")
	logLevels := flag.Bool("log-levels", false, "log one line per hclog level at start")
	record := flag.String("record", "", "append each rate-limit call's key to this file")
	reflect := flag.Bool("reflection", false, "serve gRPC server reflection")
	flag.Parse()
	if *crashAfter == 0 {
		if v, err := strconv.ParseInt(os.Getenv("CRASH_AFTER"), 10, 64); err == nil {
			*crashAfter = v
		}
	}

	name := os.Getenv("PLUGIN_NAME")
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	if procs, err := strconv.Atoi(os.Getenv("PLUGIN_PROCS")); err == nil && procs > 0 {
		runtime.GOMAXPROCS(procs)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	logger.Info("go plugin starting", "gomaxprocs", runtime.GOMAXPROCS(0),
		"cpus_allowed_list", cpusAllowedList(), "crash_after", *crashAfter)
	if *logLevels {
		logger.Trace("level probe trace")
		logger.Debug("level probe debug")
		logger.Info("level probe info")
		logger.Warn("level probe warn")
		logger.Error("level probe error")
	}
	go watchParent(logger)

	impl := &rateLimiter{name: name, logger: logger, crashAfter: *crashAfter, record: *record}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins: plugin.PluginSet{name: &shared.PluginGRPC{
			Impl: impl, Typed: typedLimiter{}, Reflection: *reflect,
		}},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
	logger.Info("go plugin stopped")
}
