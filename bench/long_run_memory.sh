#!/usr/bin/env bash
# Long-run memory with the dashboard connected (issue 6, point 7): `nanotrader run --speed max`
# with one WebSocket client reading every frame, VmRSS/VmHWM sampled every 2 ms from
# /proc/PID/status and the run's progress polled from /metrics; RSS at 1 %, 50 % and 100 % of the
# bars. Scenarios: `day` (a real 24-hour day of 1-minute bars), `month` (31 back-to-back real days),
# `sim` (24 h of seeded simulated trades at --sim-tick-secs, default 0.005 s: 17.3 million trades, so
# that 1 % of the run comes after start-up even on a fast run).
# Usage: bench/long_run_memory.sh        RUNS=3 SCENARIOS=day,month,sim SIM_TICK_SECS=0.005
# Creates bench/.venv-memory (websockets from PyPI) on first use; writes bench/out/long_run_memory.md
# and .json. The Python side stops the nanotrader child (SIGINT, then SIGKILL) on exit and on error.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."
out="$here/out"
data="${DATA_ROOT:-$repo/../shared/data}"
mkdir -p "$out"
bin="$repo/target/release/nanotrader"
[ -x "$bin" ] || cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bin nanotrader
venv="$here/.venv-memory"
if ! "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'websockets==17.4'
fi
exec "$venv/bin/python" "$here/long_run_memory.py" --bin "$bin" --data-root "$data" \
  --runs "${RUNS:-3}" --scenarios "${SCENARIOS:-day,month,sim}" \
  --sim-tick-secs "${SIM_TICK_SECS:-0.005}" --out "$out/long_run_memory.md" --json "$out/long_run_memory.json"
