#!/usr/bin/env bash
# A/B of the call path: builds examples/src/bin/call-ab.rs (release) at
# commit BASE and at the working tree, runs them interleaved ROUNDS times on
# the same machine, prints the median of each figure and the ratio new/base.
#
#   benches/ab.sh BASE [ROUNDS]      e.g. benches/ab.sh 6d08f5d 7
#
# The base is checked out into a temporary worktree this script creates and
# removes. call-ab.rs is copied into it when the base predates it.
set -euo pipefail
base=${1:?usage: benches/ab.sh BASE [ROUNDS]}
rounds=${2:-7}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$root" worktree add --quiet --detach "$work/base" "$base"
cp "$root/examples/src/bin/call-ab.rs" "$work/base/examples/src/bin/call-ab.rs"
target="${CARGO_TARGET_DIR:-$root/target}"
# The base builds in a directory of its own, kept between runs for its
# dependencies. Not the same one as the working tree's: cargo names a
# workspace's own crates by a hash of their path inside the workspace, so the
# base and the working tree would share artifacts, and the working tree, older
# than the base's fresh build, would be taken as up to date: "new" would be the
# base. -j1 and no incremental: the machine is shared.
build() { (cd "$1" && CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$2" cargo build --quiet -j"${AB_JOBS:-1}" --release -p polaris-plugin-examples --bins); }
echo "building base ($base) and new..." >&2
base_target="$target/ab-base-target"
build "$work/base" "$base_target"
build "$root" "$target"
bin_base="$base_target/release/call-ab"
bin_new="$target/release/call-ab"
for i in $(seq "$rounds"); do
    echo "round $i/$rounds" >&2
    "$bin_base" | sed 's/^/base /' >>"$work/results"
    "$bin_new" | sed 's/^/new /' >>"$work/results"
done
median() { grep "^$1 $2 " "$work/results" | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '| figure | base %s (median of %d) | new | new/base |\n|---|---|---|---|\n' "$base" "$rounds"
for k in $(grep '^new ' "$work/results" | awk '{ print $2 }' | awk '!seen[$0]++'); do
    b=$(median base "$k")
    n=$(median new "$k")
    printf '| %s | %s | %s | %s |\n' "$k" "$b" "$n" "$(awk -v n="$n" -v b="$b" 'BEGIN { printf "%.3f", n / b }')"
done
