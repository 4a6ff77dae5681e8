#!/usr/bin/env bash
# End-to-end replay speed and memory: `nanotrader run --speed max` (CSV -> bars -> SMA 10/20 ->
# paper broker -> SQLite) over real 1-minute bars, from 1 thousand to 2 million bars, under
# --preset seed (no fees, so the strategy keeps trading at every crossover: about 1 fill per 20 bars).
# Usage: bench/replay_throughput.sh [SIZES...]   (default: 1000 10000 100000 1000000 2000000)
# Writes bench/out/replay_throughput.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."
out="$here/out"
mkdir -p "$out"
sizes=("${@:-1000 10000 100000 1000000 2000000}")
[ $# -gt 0 ] || sizes=(1000 10000 100000 1000000 2000000)

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release/nanotrader"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

{
  echo "| bars | wall s | engine bars/s | ns/bar | fills | peak RSS MiB |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
  for n in "${sizes[@]}"; do
    python3 "$here/make_bars.py" "$n" "$work/bars.csv" >/dev/null
    rm -rf "$work/store"
    /usr/bin/time -f "%e %M" -o "$work/time" \
      "$bin" --data-dir "$work/store" -q run --source replay --data "$work/bars.csv" --speed max --preset seed >"$work/summary"
    read -r wall rss_kb <"$work/time"
    rate=$(sed -n 's/.*bars in .* s (\([0-9]*\) bars\/s).*/\1/p' "$work/summary")
    fills=$(sed -n 's/^  fills *\([0-9]*\).*/\1/p' "$work/summary")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$n" "$wall" "$rate" "$((1000000000 / (rate > 0 ? rate : 1)))" "$fills" "$((rss_kb / 1024))"
  done
} | tee "$out/replay_throughput.md"
