#!/usr/bin/env bash
# Exchange-fault soak (issue 6, point 2): for each fault kind (drops, stalls, garbage frames,
# rate-limit answers, 5xx, slow responses) the mock Kraken exchange injects that fault on a
# schedule while the release binary runs `run --source kraken` against it for MINUTES of replayed
# market time at SPEED x; then the stored bars must equal the mock's bars, the faults must have
# been injected, bars must follow the faults, and RSS must stay flat (end <= start * 1.5 + 8 MiB).
# Prints one summary line per kind and a markdown table (also saved to bench/out/soak.md).
# Usage: bench/soak.sh [MINUTES [SPEED]]   (default: 10 market minutes per kind at 6x: ~11 min wall)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."
minutes="${1:-10}"
speed="${2:-6}"
mkdir -p "$here/out"
log="$here/out/soak.log"
echo "soak: $minutes market minutes per kind at ${speed}x (release build)" >&2
set +e
NANOTRADER_SOAK_MARKET_MINUTES="$minutes" NANOTRADER_SOAK_SPEED="$speed" \
  cargo test --release --manifest-path "$repo/Cargo.toml" --test soak -- --nocapture --test-threads 1 \
  2>&1 | tee "$log" | grep --line-buffered -E '^soak |^test |^test result|panicked'
status=${PIPESTATUS[0]}
set -e
{
  echo "| kind | market min | wall s | faults injected | reconnects | bars stored (= mock's) | RSS start MiB | RSS end MiB | RSS max MiB |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  grep -oE 'soak .{16} market_min=.*' "$log" | sed -E 's/^soak (.{16}) /\1|/' | awk -F'|' '{
    kind = $1; sub(/ +$/, "", kind); n = split($2, kv, " ");
    for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    printf "| %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s |\n", kind, v["market_min"], v["wall_s"],
      v["faults"], v["reconnects"], v["bars"], v["bars_equal_mock"], v["rss_start_mib"], v["rss_end_mib"], v["rss_max_mib"]
  }'
} | tee "$here/out/soak.md"
exit "$status"
