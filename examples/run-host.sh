#!/usr/bin/env bash
# The main job: build everything, start the remote example plugin
# (rate-limit-server-v3 on 127.0.0.1:8972), then run the host on
# examples/host.yaml (the companion example plus that remote one) until
# Ctrl-C / SIGTERM, which destroys every plugin gracefully.
#
# While it runs, from another terminal:
#   target/release/polaris-plugin call examples/host.yaml rate-limit-server-v2 \
#       --message RateLimitPluginRequest --json '{"type":"APIRatelimit","key":"/users"}'
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace --bins

target/release/rate-limit-server-v3 --address 127.0.0.1:8972 &
remote=$!
trap 'kill "$remote" 2>/dev/null || true; wait "$remote" 2>/dev/null || true' EXIT

target/release/polaris-plugin run examples/host.yaml
