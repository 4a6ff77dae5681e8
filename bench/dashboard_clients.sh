#!/usr/bin/env bash
# The dashboard under load: engine throughput of `nanotrader run --speed max --preset seed` on
# N real 1-minute bars (default 1,000,000) (a) without the dashboard, (b) with it and no page
# open, (c) with 200 WebSocket clients (examples/dashboard_clients.rs) reading every frame; then
# (d) a live-speed replay (--speed 60000: 1,000 bars/s, 20,000 bars) followed by 200 clients.
# Clients are started as soon as the process prints its `dashboard:` line (their WebSocket
# upgrade waits for the run's board); nothing holds the replay until they are in, so at max speed
# some may connect after the first bars have gone by.
# Usage: bench/dashboard_clients.sh [BARS]   RUNS=3 CLIENTS=200 LIVE_BARS=20000
# Writes bench/out/dashboard_clients.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."
out="$here/out"
mkdir -p "$out"
bars="${1:-1000000}"
runs="${RUNS:-3}"
clients="${CLIENTS:-200}"
live_bars="${LIVE_BARS:-20000}"

cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bins --examples
bin="$repo/target/release/nanotrader"
load="$repo/target/release/examples/dashboard_clients"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$here/make_bars.py" "$bars" "$work/bars.csv" >/dev/null
python3 "$here/make_bars.py" "$live_bars" "$work/live.csv" >/dev/null

rate_of() { sed -n 's/.*bars in .* s (\([0-9]*\) bars\/s).*/\1/p' "$1"; }
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One run with the dashboard on: $1 data file, $2 speed, $3 clients (0 = none), $4 tag.
# Leaves the run summary in $work/summary.$4 and the clients' summary in $work/clients.$4.
web_run() {
  local data="$1" speed="$2" n="$3" tag="$4" url="" client_pid=""
  rm -rf "$work/store"
  "$bin" --data-dir "$work/store" -q run --source replay --data "$data" --speed "$speed" --preset seed \
    --listen 127.0.0.1:0 --stay >"$work/summary.$tag" 2>"$work/stderr.$tag" &
  server_pid=$!
  for _ in $(seq 500); do
    url=$(sed -n 's|^dashboard: http://\([^/]*\)/.*|ws://\1/ws|p' "$work/summary.$tag")
    [ -n "$url" ] && break
    sleep 0.01
  done
  [ -n "$url" ] || { echo "no dashboard line" >&2; cat "$work/stderr.$tag" >&2; exit 1; }
  if [ "$n" -gt 0 ]; then
    "$load" --url "$url" --clients "$n" --until-finished --timeout 300 >"$work/clients.$tag" &
    client_pid=$!
  fi
  # With --stay the process serves on after the summary: wait for the summary, then stop it.
  for _ in $(seq 30000); do
    grep -q 'bars in .* bars/s' "$work/summary.$tag" && grep -q 'dashboard stays up' "$work/summary.$tag" && break
    sleep 0.01
  done
  if [ -n "$client_pid" ]; then wait "$client_pid"; fi
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

field() { sed -n "s/^$2 *//p" "$1"; }

: >"$work/rates.a"; : >"$work/rates.b"; : >"$work/rates.c"
for i in $(seq "$runs"); do
  rm -rf "$work/store"
  "$bin" --data-dir "$work/store" -q run --source replay --data "$work/bars.csv" --speed max --preset seed \
    --no-web >"$work/summary.a$i"
  rate_of "$work/summary.a$i" >>"$work/rates.a"
  web_run "$work/bars.csv" max 0 "b$i"
  rate_of "$work/summary.b$i" >>"$work/rates.b"
  web_run "$work/bars.csv" max "$clients" "c$i"
  rate_of "$work/summary.c$i" >>"$work/rates.c"
done
web_run "$work/live.csv" 60000 "$clients" d

lat() { field "$1" 'latency ms' | sed 's/ (over.*//'; }
{
  echo "$bars bars, --speed max --preset seed, $runs runs per configuration (median; all runs in brackets)"
  echo
  echo "| configuration | median bars/s | runs bars/s |"
  echo "| --- | ---: | ---: |"
  echo "| (a) --no-web | $(median "$work/rates.a") | $(paste -sd' ' "$work/rates.a") |"
  echo "| (b) dashboard, 0 clients | $(median "$work/rates.b") | $(paste -sd' ' "$work/rates.b") |"
  echo "| (c) dashboard, $clients clients | $(median "$work/rates.c") | $(paste -sd' ' "$work/rates.c") |"
  echo
  echo "| run | frames/client | deltas / snapshots (all clients) | resyncs | seq gaps | latency ms | bytes | completed seen |"
  echo "| --- | --- | --- | ---: | --- | --- | ---: | --- |"
  for tag in $(seq -f 'c%g' "$runs") d; do
    f="$work/clients.$tag"
    echo "| $tag | $(field "$f" 'frames per client') | $(field "$f" 'frames total') | $(field "$f" 'resyncs total') | $(field "$f" 'seq gaps') | $(lat "$f") | $(field "$f" 'bytes received') | $(field "$f" 'run completed') |"
  done
  echo
  echo "(d) = $live_bars bars at --speed 60000 (1,000 bars/s), $clients clients: $(rate_of "$work/summary.d") bars/s"
  echo
  echo "client summary of (d):"
  sed 's/^/    /' "$work/clients.d"
} | tee "$out/dashboard_clients.md"
