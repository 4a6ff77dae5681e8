#!/usr/bin/env bash
# Store faults, repeated: runs tests/store_faults.rs RUNS times (default 5) and collects what each
# fault case printed (bars the engine closed while the store failed, fills announced against fills
# stored, how the writer recovered). The disk-full and read-only cases mount file systems: run as root.
# Usage: RUNS=5 bench/store_faults.sh      Writes bench/out/store_faults.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out"
mkdir -p "$out"
runs="${RUNS:-5}"
report="$out/store_faults.md"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

cd "$here/.."
cargo test --quiet --test store_faults --no-run
{
  echo "# Store faults, $runs runs ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  for run in $(seq "$runs"); do
    NANOTRADER_REQUIRE_MOUNT=1 cargo test --quiet --test store_faults -- --nocapture >"$log" 2>&1 || {
      echo "run $run FAILED:"; cat "$log"; exit 1; }
    echo "## run $run: $(grep -o 'test result: [^;]*; [0-9]* failed' "$log")"
    grep -E 'bars closed during the fault' "$log" | sed 's/ store=.*//; s/^\.*/- /'
  done
} | tee "$report"
