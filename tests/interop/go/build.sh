#!/usr/bin/env bash
# Builds the Go interop peers offline, in GOPATH mode, against Debian's Go
# packages (/usr/share/gocode): go-plugin, grpc, protobuf.
#
#   tests/interop/go/build.sh OUT_DIR
#
# writes OUT_DIR/{go-plugin,go-host,go-remote}. The Go code for proto/*.proto
# tests/interop/proto/interop.proto and examples/proto/rate_limiter.proto is generated into OUT_DIR/gopath with
# protoc + protoc-gen-go + protoc-gen-go-grpc; nothing generated is committed.
# Install the toolchain with .ci/install-interop.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in go protoc protoc-gen-go protoc-gen-go-grpc; do
    command -v "$tool" >/dev/null || {
        echo "build.sh: $tool not found; install the interop toolchain with .ci/install-interop" >&2
        exit 1
    }
done

gopath="$out/gopath"
src="$gopath/src/polarisinterop"
rm -rf "$src"
mkdir -p "$src/api" "$src/interoppb" "$src/typedpb"

# proto/*.proto say go_package "./api;api"; map them to an import path here.
m="Mplugin.proto=polarisinterop/api;api,Mrate_limit.proto=polarisinterop/api;api"
protoc -I "$root/proto" \
    --go_out="$gopath/src" --go_opt="$m" \
    --go-grpc_out="$gopath/src" --go-grpc_opt="$m" \
    plugin.proto rate_limit.proto
protoc -I "$root/tests/interop/proto" \
    --go_out="$gopath/src" \
    interop.proto
# Your own proto: the typed api.RateLimiter of examples/proto/rate_limiter.proto.
protoc -I "$root/examples/proto" \
    --go_out="$gopath/src" --go-grpc_out="$gopath/src" \
    rate_limiter.proto

for pkg in shared plugin host remote; do
    mkdir -p "$src/$pkg"
    cp "$here/$pkg"/*.go "$src/$pkg/"
done

export GO111MODULE=off
export GOPATH="$gopath:/usr/share/gocode"
export GOFLAGS=
export GOCACHE="${GOCACHE:-$out/go-cache}"
export CGO_ENABLED=0
cd "$src"
go build -o "$out/go-plugin" ./plugin
go build -o "$out/go-host" ./host
go build -o "$out/go-remote" ./remote
