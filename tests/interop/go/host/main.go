// go-host: a Polaris plugin host on hashicorp/go-plugin's client, the way the
// Polaris Go SDK loads companion plugins (plugin.NewClient with the Polaris
// handshake, gRPC only, PLUGIN_NAME/PLUGIN_PROCS in the environment). For the
// interop tests: can a plugin built with our Rust SDK be loaded by Go hosts?
//
// Check mode (default): load, Dispense, call, Ping, Kill; print a JSON report
// on stdout, including the plugin's exit code and every WARN/ERROR line the
// go-plugin client logged (its hclog output, captured at Debug):
//
//	go-host -plugin PATH [-name KEY] [-procs N] [-calls N] [-automtls] [-- plugin args...]
//
// Bench mode: N calls (sequential when -concurrency is 1, else C goroutines),
// after a short warm-up; prints {p50_us, p99_us, p999_us, calls_per_sec, ...}:
//
//	go-host -bench -plugin PATH -calls N -concurrency C [-automtls]
//
// Exits 0 when it could run to the end (the report says what happened), 1 on
// a fatal error (the report has "error"), 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/anypb"

	"polarisinterop/api"
	"polarisinterop/shared"
)

// logCapture keeps every line the go-plugin client logs (hclog JSON) and
// copies it to stderr for humans.
type logCapture struct {
	mu      sync.Mutex
	partial []byte
	lines   []logLine
}

type logLine struct {
	Level   string `json:"level"`
	Message string `json:"message"`
	Raw     string `json:"raw"`
}

func (c *logCapture) Write(p []byte) (int, error) {
	os.Stderr.Write(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := strings.IndexByte(string(c.partial), '\n')
		if i < 0 {
			break
		}
		raw := string(c.partial[:i])
		c.partial = c.partial[i+1:]
		var entry map[string]interface{}
		line := logLine{Level: "unknown", Raw: raw}
		if json.Unmarshal([]byte(raw), &entry) == nil {
			line.Level, _ = entry["@level"].(string)
			line.Message, _ = entry["@message"].(string)
		}
		c.lines = append(c.lines, line)
	}
	return len(p), nil
}

// at returns the captured lines at `level` (hclog: trace|debug|info|warn|error).
func (c *logCapture) at(level string) []logLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []logLine{}
	for _, l := range c.lines {
		if l.Level == level {
			out = append(out, l)
		}
	}
	return out
}

type report struct {
	Plugin    string    `json:"plugin"`
	Key       string    `json:"dispense_key"`
	Loaded    bool      `json:"loaded"`
	Protocol  string    `json:"protocol"`
	Dispensed bool      `json:"dispensed"`
	Calls     int       `json:"calls"`
	CallsOK   int       `json:"calls_ok"`
	Allow     bool      `json:"allow"`
	Ping      string    `json:"ping"`
	Killed    bool      `json:"killed"`
	KillMs    float64   `json:"kill_ms"`
	Exited    bool      `json:"exited"`
	ExitCode  int       `json:"exit_code"`
	Exit      string    `json:"exit"`
	Graceful  bool      `json:"graceful"`
	Warnings  []logLine `json:"warnings"`
	Errors    []logLine `json:"errors"`
	Error     string    `json:"error,omitempty"`
}

type benchReport struct {
	Calls       int     `json:"calls"`
	Concurrency int     `json:"concurrency"`
	Errors      int64   `json:"errors"`
	P50Us       float64 `json:"p50_us"`
	P99Us       float64 `json:"p99_us"`
	P999Us      float64 `json:"p999_us"`
	CallsPerSec float64 `json:"calls_per_sec"`
	FirstError  string  `json:"first_error,omitempty"`
}

func request() *api.Request {
	payload, err := anypb.New(&api.RateLimitPluginRequest{Type: api.RatelimitType_APIRatelimit, Key: "/interop"})
	if err != nil {
		panic(err)
	}
	return &api.Request{Payload: payload}
}

// call makes one Call and checks the reply is an allowing RateLimitPluginResponse.
func call(client api.PluginClient, req *api.Request) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client.Call(ctx, req)
	if err != nil {
		return false, err
	}
	var verdict api.RateLimitPluginResponse
	if err := resp.GetReply().UnmarshalTo(&verdict); err != nil {
		return false, err
	}
	return verdict.Allow, nil
}

func emit(v interface{}) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

func main() {
	path := flag.String("plugin", "", "the plugin binary (required)")
	key := flag.String("name", "", "dispense key and PLUGIN_NAME (default: the binary's basename)")
	procs := flag.Int("procs", 1, "PLUGIN_PROCS for the plugin")
	calls := flag.Int("calls", 3, "calls to make")
	bench := flag.Bool("bench", false, "benchmark mode: time -calls calls, print percentiles")
	concurrency := flag.Int("concurrency", 1, "bench: goroutines calling at once")
	autoMTLS := flag.Bool("automtls", false, "go-plugin AutoMTLS: a per-run host certificate in PLUGIN_CLIENT_CERT, TLS pinned to the plugin's")
	flag.Parse()
	if *path == "" || *calls < 1 || *concurrency < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if *key == "" {
		*key = filepath.Base(*path)
	}

	capture := &logCapture{}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "go-host",
		Level:      hclog.Debug,
		Output:     capture,
		JSONFormat: true,
	})
	cmd := exec.Command(*path, flag.Args()...)
	// What the Polaris Go SDK's host adds; go-plugin appends the host's own
	// environment and its PLUGIN_* variables and the cookie.
	cmd.Env = []string{"PLUGIN_NAME=" + *key, "PLUGIN_PROCS=" + strconv.Itoa(*procs)}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          plugin.PluginSet{*key: &shared.PluginGRPC{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		AutoMTLS:         *autoMTLS,
	})
	defer client.Kill()

	rep := report{Plugin: *path, Key: *key, Calls: *calls}
	fail := func(step string, err error) {
		client.Kill()
		rep.Error = fmt.Sprintf("%s: %v", step, err)
		rep.Warnings, rep.Errors = capture.at("warn"), capture.at("error")
		emit(rep)
		os.Exit(1)
	}

	rpc, err := client.Client()
	if err != nil {
		fail("load", err)
	}
	rep.Loaded = true
	rep.Protocol = string(client.Protocol())
	raw, err := rpc.Dispense(*key)
	if err != nil {
		fail("dispense", err)
	}
	pc, ok := raw.(api.PluginClient)
	if !ok {
		fail("dispense", fmt.Errorf("got %T, not a proto.Plugin client", raw))
	}
	rep.Dispensed = true

	if *bench {
		runBench(pc, *calls, *concurrency)
		return
	}

	req := request()
	rep.Allow = true
	for i := 0; i < *calls; i++ {
		allow, err := call(pc, req)
		if err != nil {
			fail(fmt.Sprintf("call %d", i), err)
		}
		rep.CallsOK++
		rep.Allow = rep.Allow && allow
	}
	if err := rpc.Ping(); err != nil {
		rep.Ping = err.Error()
	} else {
		rep.Ping = "ok"
	}

	start := time.Now()
	client.Kill()
	rep.KillMs = float64(time.Since(start).Microseconds()) / 1000
	rep.Killed = true
	rep.Exited = client.Exited()
	if ps := cmd.ProcessState; ps != nil {
		rep.ExitCode = ps.ExitCode()
		rep.Exit = ps.String()
	} else {
		rep.ExitCode = -1
		rep.Exit = "not reaped"
	}
	rep.Graceful = true
	for _, w := range capture.at("warn") {
		if strings.Contains(w.Message, "failed to exit gracefully") {
			rep.Graceful = false
		}
	}
	rep.Warnings, rep.Errors = capture.at("warn"), capture.at("error")
	emit(rep)
}

// runBench: a warm-up, then n timed calls spread over c goroutines.
func runBench(pc api.PluginClient, n, c int) {
	req := request()
	warmup := n / 10
	if warmup > 1000 {
		warmup = 1000
	}
	for i := 0; i < warmup; i++ {
		call(pc, req)
	}
	durations := make([]time.Duration, n)
	var next, errors int64
	var firstError atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < c; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1) - 1
				if i >= int64(n) {
					return
				}
				t := time.Now()
				_, err := call(pc, req)
				durations[i] = time.Since(t)
				if err != nil {
					atomic.AddInt64(&errors, 1)
					firstError.Store(err.Error())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(durations, func(a, b int) bool { return durations[a] < durations[b] })
	pct := func(q float64) float64 {
		i := int(math.Ceil(q*float64(n))) - 1
		if i < 0 {
			i = 0
		}
		return float64(durations[i].Nanoseconds()) / 1000
	}
	rep := benchReport{
		Calls:       n,
		Concurrency: c,
		Errors:      errors,
		P50Us:       pct(0.50),
		P99Us:       pct(0.99),
		P999Us:      pct(0.999),
		CallsPerSec: float64(n) / elapsed.Seconds(),
	}
	if e, ok := firstError.Load().(string); ok {
		rep.FirstError = e
	}
	emit(rep)
}
