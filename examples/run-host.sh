#!/usr/bin/env bash
# The main job: build everything, start the remote example plugin
# (rate-limit-server-v3 on 127.0.0.1:8972), then run the host on
# examples/host.yaml (the companion example plus that remote one) until
# Ctrl-C / SIGTERM, which destroys every plugin gracefully.
#
# Works with any target directory (CARGO_TARGET_DIR, build.target-dir): cargo
# says where it builds. The host finds the companion next to its own
# executable (host.yaml names no path).
#
#   examples/run-host.sh                 build (release), then run
#   examples/run-host.sh --print-paths   print where the binaries are; build nothing
#
# PROFILE picks the cargo profile (default release; the tests use dev).
# While it runs, from another terminal (the first line it prints says where
# polaris-plugin is; the host prints where its admin API and status page are):
#   polaris-plugin status
#   polaris-plugin call rate-limit-server-v2 \
#       --message RateLimitPluginRequest --json '{"type":"APIRatelimit","key":"/users"}'
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${PROFILE:-release}
# `dev` builds into debug/, every other profile into a directory of its name.
profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug

# cargo metadata prints one line of JSON; its target_directory is absolute.
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$target_dir" ]; then
    echo "run-host.sh: cargo metadata did not say where cargo builds" >&2
    exit 1
fi
bin=$target_dir/$profile_dir

if [ "${1:-}" = --print-paths ]; then
    echo "target_dir=$target_dir"
    echo "bin_dir=$bin"
    exit 0
fi

cargo build --profile "$profile" --workspace --bins
echo "run-host.sh: binaries in $bin (call with $bin/polaris-plugin)" >&2

"$bin/rate-limit-server-v3" --address 127.0.0.1:8972 &
remote=$!
trap 'kill "$remote" 2>/dev/null || true; wait "$remote" 2>/dev/null || true' EXIT

# In the background so that a SIGTERM to this script reaches the host at once
# (a foreground child would delay the trap until it exited by itself); Ctrl-C
# arrives here too, and the host stops the same way.
"$bin/polaris-plugin" run examples/host.yaml &
host=$!
trap 'kill -TERM "$host" 2>/dev/null || true' INT TERM
# The first wait returns early when a signal ran the trap; the second
# collects the host's own exit status.
wait "$host" || true
wait "$host"
