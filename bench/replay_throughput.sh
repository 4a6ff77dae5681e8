#!/usr/bin/env bash
# End-to-end replay speed and memory: `nanotrader run --speed max` (CSV -> bars -> SMA 10/20 ->
# paper broker -> SQLite) over real 1-minute bars, from 1 thousand to 2 million bars, under
# --preset seed (no fees, so the strategy keeps trading at every crossover: about 1 fill per 20 bars).
# Usage: bench/replay_throughput.sh [SIZES...]   (default: 1000 10000 100000 1000000 2000000)
# The dashboard is off (--no-web): this measures the engine and the store.
# Each size runs RUNS times (default 5; this VM's speed drifts): the table shows the median run
# and the fastest. Writes bench/out/replay_throughput.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."
out="$here/out"
mkdir -p "$out"
sizes=("${@:-1000 10000 100000 1000000 2000000}")
[ $# -gt 0 ] || sizes=(1000 10000 100000 1000000 2000000)

# NANOTRADER_BIN: another build to measure (e.g. an older one, side by side); else this tree's.
if [ -n "${NANOTRADER_BIN:-}" ]; then
  bin="$NANOTRADER_BIN"
else
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
  bin="$repo/target/release/nanotrader"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

runs="${RUNS:-5}"
{
  echo "| bars | runs | median bars/s | median ns/bar | fastest bars/s | fills | peak RSS MiB (max) |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for n in "${sizes[@]}"; do
    python3 "$here/make_bars.py" "$n" "$work/bars.csv" >/dev/null
    : >"$work/rates"
    rss_max=0
    for _ in $(seq "$runs"); do
      rm -rf "$work/store"
      /usr/bin/time -f "%M" -o "$work/time" \
        "$bin" --data-dir "$work/store" -q run --source replay --data "$work/bars.csv" --speed max --preset seed --no-web >"$work/summary"
      rss_kb=$(cat "$work/time")
      [ "$rss_kb" -gt "$rss_max" ] && rss_max=$rss_kb
      # The summary writes numbers for people (1,024,349 bars/s): the separators go.
      sed -n 's/.*bars in .* s (\([0-9,]*\) bars\/s).*/\1/p' "$work/summary" | tr -d , >>"$work/rates"
    done
    fills=$(sed -n 's/^  fills *\([0-9]*\).*/\1/p' "$work/summary")
    median=$(sort -n "$work/rates" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    best=$(sort -n "$work/rates" | tail -1)
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$runs" "$median" "$((1000000000 / (median > 0 ? median : 1)))" "$best" "$fills" "$((rss_max / 1024))"
  done
} | tee "$out/replay_throughput.md"
