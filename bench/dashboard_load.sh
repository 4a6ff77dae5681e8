#!/usr/bin/env bash
# The dashboard under load (issue 6, point 5): engine throughput of
# `nanotrader run --source replay --speed max --preset seed --listen 127.0.0.1:0 --stay` on N real
# 1-minute bars (default 5,000,000, so that a loaded run lasts well over 10 s)
#   (a) with the dashboard on and nothing connected (the no-load baseline),
#   (b) with CLIENTS WebSocket clients (examples/dashboard_clients.rs, SLOW of them slow readers)
#       AND wrk hammering the read API (bench/dashboard_api.lua rotates /api/status, /api/account,
#       /api/performance, /api/bars, /api/fills, /api/config, /metrics) for the whole run,
# RUNS times each; then (c) a paced replay (--speed 60000: 1,000 bars/s, LIVE_BARS bars) under the
# same clients and wrk. Clients start as soon as the process prints its `dashboard:` line (their
# upgrade waits for the run's board), wrk as soon as /api/status answers 200 (before that the API
# says 503 "no run has started yet"), and wrk runs until the run's summary appears (SIGINT makes
# it stop and print; -d is only an upper bound). WRK_PATHS (space-separated) replaces the routes. The server's VmRSS is sampled from /proc every 0.5 s from start to stop; VmHWM at the end.
# Usage: bench/dashboard_load.sh [BARS]   RUNS=3 CLIENTS=1000 SLOW=100 SLOW_MS=500 LIVE_BARS=30000
#        WRK_CONNS=50 WRK_MAX_SECS=300 WRK_TIMEOUT=10s WRK_PATHS='/api/status /api/fills ...'
#        CLIENTS=0 or WRK_CONNS=0 leaves that part of the load out; LIVE_BARS=0 skips (c); LOADGEN_NICE=19
#        runs the load generators at low priority. (CARGO_TARGET_DIR is honoured)
# Needs wrk (Debian: apt-get install wrk; installed here if missing and apt-get can run) and curl.
# Writes bench/out/dashboard_load.md (bench/out/$REPORT.md with REPORT=name).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="$here/out"
mkdir -p "$out"
bars="${1:-5000000}"
runs="${RUNS:-3}"
clients="${CLIENTS:-1000}"
slow="${SLOW:-100}"
slow_ms="${SLOW_MS:-500}"
live_bars="${LIVE_BARS:-30000}"
wrk_conns="${WRK_CONNS:-50}"
wrk_max="${WRK_MAX_SECS:-300}"
# The load generators share this machine's cores with the server. LOADGEN_NICE=19 has them yield to
# it, approaching load from other machines (the generators then read more slowly).
loadgen_nice="${LOADGEN_NICE:-0}"
# wrk leaves a request slower than its timeout (default 2 s) out of the latency figures: be generous.
wrk_timeout="${WRK_TIMEOUT:-10s}"
read -r -a wrk_paths <<<"${WRK_PATHS:-}"
target="${CARGO_TARGET_DIR:-$repo/target}"

if ! command -v wrk >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  fi
  command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk (Debian)" >&2; exit 1; }
fi
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
# Each client is a socket in the client process and one in the server (which inherits this limit).
need_fds=$((clients + wrk_conns + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  ulimit -n "$need_fds" 2>/dev/null || { echo "ulimit -n $need_fds refused (hard limit $(ulimit -Hn))" >&2; exit 1; }
fi

cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bins --examples
bin="$target/release/nanotrader"
load="$target/release/examples/dashboard_clients"
work="$(mktemp -d)"
server_pid="" client_pid="" wrk_pid="" sampler_pid=""
cleanup() {
  for pid in $wrk_pid $client_pid $sampler_pid $server_pid; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$here/make_bars.py" "$bars" "$work/bars.csv" >/dev/null
if [ "$live_bars" -gt 0 ]; then python3 "$here/make_bars.py" "$live_bars" "$work/live.csv" >/dev/null; fi

rate_of() { sed -n 's/.*bars in .* s (\([0-9]*\) bars\/s).*/\1/p' "$1"; }
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/^$2 *//p" "$1"; }
kib_to_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# One run with the dashboard on: $1 data file, $2 speed, $3 load (0 = none, 1 = clients + wrk),
# $4 tag. Leaves in $work: summary.TAG (the run), clients.TAG, wrk.TAG, metrics.TAG (/metrics
# after the run), rss.TAG (one VmRSS in kB per line), hwm.TAG (VmHWM in kB) and wall.TAG (s from
# the first 200 of /api/status to the summary: the engine's time plus the store's final flush).
web_run() {
  local data="$1" speed="$2" loaded="$3" tag="$4" addr="" t0
  rm -rf "$work/store"
  : >"$work/clients.$tag"
  : >"$work/wrk.$tag"
  "$bin" --data-dir "$work/store" -q run --source replay --data "$data" --speed "$speed" --preset seed \
    --listen 127.0.0.1:0 --stay >"$work/summary.$tag" 2>"$work/stderr.$tag" &
  server_pid=$!
  (
    while [ -r "/proc/$server_pid/status" ]; do
      sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$server_pid/status" 2>/dev/null || true
      sleep 0.5
    done
  ) >"$work/rss.$tag" &
  sampler_pid=$!
  for _ in $(seq 500); do
    addr=$(sed -n 's|^dashboard: http://\([^/]*\)/.*|\1|p' "$work/summary.$tag")
    [ -n "$addr" ] && break
    sleep 0.01
  done
  [ -n "$addr" ] || { echo "no dashboard line" >&2; cat "$work/stderr.$tag" >&2; exit 1; }
  if [ "$loaded" = 1 ] && [ "$clients" -gt 0 ]; then
    nice -n "$loadgen_nice" "$load" --url "ws://$addr/ws" --clients "$clients" --slow "$slow" --slow-ms "$slow_ms" \
      --until-finished --timeout 300 >"$work/clients.$tag" &
    client_pid=$!
  fi
  for _ in $(seq 3000); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/api/status")" = 200 ] && break
    sleep 0.01
  done
  t0=$(date +%s.%N)
  sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$server_pid/status" >"$work/rss0.$tag"
  if [ "$loaded" = 1 ] && [ "$wrk_conns" -gt 0 ]; then
    nice -n "$loadgen_nice" wrk -t1 -c"$wrk_conns" -d"${wrk_max}s" --timeout "$wrk_timeout" --latency -s "$here/dashboard_api.lua" \
      "http://$addr" -- "${wrk_paths[@]}" >"$work/wrk.$tag" 2>&1 &
    wrk_pid=$!
  fi
  # With --stay the process serves on after the summary: wait for the summary, then stop it.
  for _ in $(seq 60000); do
    grep -q 'bars in .* bars/s' "$work/summary.$tag" && grep -q 'dashboard stays up' "$work/summary.$tag" && break
    kill -0 "$server_pid" 2>/dev/null || { echo "nanotrader exited early" >&2; cat "$work/stderr.$tag" >&2; exit 1; }
    sleep 0.01
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f\n", b - a}' >"$work/wall.$tag"
  if [ -n "$wrk_pid" ]; then
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" || true
    wrk_pid=""
  fi
  if [ -n "$client_pid" ]; then
    wait "$client_pid"
    client_pid=""
  fi
  curl -s "http://$addr/metrics" >"$work/metrics.$tag" || true
  sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$server_pid/status" >"$work/hwm.$tag"
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  server_pid="" sampler_pid=""
}

metric() { sed -n "s/^$2\({[^}]*}\)\? \([0-9.]*\)$/\2/p" "$1" | paste -sd+; } # one value per pair, joined by +
rss() { # at the run's start (first /api/status 200) / peak / end of the samples, then VmHWM, in MiB
  local f="$work/rss.$1"
  printf '%s / %s / %s / %s' "$(kib_to_mib "$(cat "$work/rss0.$1")")" "$(kib_to_mib "$(sort -n "$f" | tail -1)")" \
    "$(kib_to_mib "$(tail -1 "$f")")" "$(kib_to_mib "$(cat "$work/hwm.$1")")"
}
wrk_rps() { sed -n 's/^Requests\/sec: *//p' "$work/wrk.$1"; }
wrk_pct() { awk -v p="$2" '$1 == p {print $2}' "$work/wrk.$1"; }
wrk_lat() { echo "$(wrk_pct "$1" 50%) / $(wrk_pct "$1" 90%) / $(wrk_pct "$1" 99%)"; }
wrk_total() { sed -n 's/^ *\([0-9]*\) requests in \([0-9.]*[a-z]*\),.*/\1 in \2/p' "$work/wrk.$1"; }
wrk_bad() { # non-2xx/3xx answers and socket errors (wrk prints those lines only when non-zero)
  local n e
  n=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$work/wrk.$1")
  e=$(sed -n 's/^ *Socket errors: *//p' "$work/wrk.$1")
  echo "${n:-0}${e:+ (socket errors: $e)}"
}

: >"$work/rates.a"; : >"$work/rates.b"
for i in $(seq "$runs"); do
  web_run "$work/bars.csv" max 0 "a$i"
  rate_of "$work/summary.a$i" >>"$work/rates.a"
  web_run "$work/bars.csv" max 1 "b$i"
  rate_of "$work/summary.b$i" >>"$work/rates.b"
done
if [ "$live_bars" -gt 0 ]; then web_run "$work/live.csv" 60000 1 c; fi

base="$(median "$work/rates.a")"
loaded_tags="$(seq -f 'b%g' "$runs" | paste -sd' ')"
if [ "$live_bars" -gt 0 ]; then loaded_tags="$loaded_tags c"; fi
ratio() { awk -v b="$1" -v a="$2" 'BEGIN {printf "%.2f", b / a}'; }
secs_of() { sed -n 's/.*bars in \([0-9.]*\) s .*/\1/p' "$work/summary.$1"; }
{
  echo "$bars bars, --speed max --preset seed, dashboard on (--listen 127.0.0.1:0 --stay), $runs runs per configuration"
  echo "load = $clients WebSocket clients ($slow of them read a frame every $slow_ms ms with SO_RCVBUF 4096)"
  echo "       + wrk -t1 -c$wrk_conns --timeout $wrk_timeout --latency over ${WRK_PATHS:-7 API routes} (bench/dashboard_api.lua) until the run ends"
  echo
  echo "| run | engine s | bars/s | ratio to (a) median | s from first /api/status 200 to summary |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for i in $(seq "$runs"); do
    echo "| (a) $i no load | $(secs_of "a$i") | $(sed -n "${i}p" "$work/rates.a") | $(ratio "$(sed -n "${i}p" "$work/rates.a")" "$base") | $(cat "$work/wall.a$i") |"
  done
  for i in $(seq "$runs"); do
    echo "| (b) $i under load | $(secs_of "b$i") | $(sed -n "${i}p" "$work/rates.b") | $(ratio "$(sed -n "${i}p" "$work/rates.b")" "$base") | $(cat "$work/wall.b$i") |"
  done
  if [ "$live_bars" -gt 0 ]; then
    echo "| (c) --speed 60000, $live_bars bars, under load | $(secs_of c) | $(rate_of "$work/summary.c") | $(ratio "$(rate_of "$work/summary.c")" 1000) of the 1,000 asked | $(cat "$work/wall.c") |"
  fi
  echo
  echo "median (b) / median (a) = $(ratio "$(median "$work/rates.b")" "$base")"
  echo
  echo "| run | wrk requests | req/s | latency p50 / p90 / p99 | non-2xx/3xx |"
  echo "| --- | ---: | ---: | --- | ---: |"
  for tag in $loaded_tags; do
    echo "| $tag | $(wrk_total "$tag") | $(wrk_rps "$tag") | $(wrk_lat "$tag") | $(wrk_bad "$tag") |"
  done
  echo
  echo "| run | clients | frames/client (normal) | snapshots after the first (normal) | seq gaps / backwards | delta latency ms (normal) | slow: snapshots after the first | slow: seq | slow: delta latency ms | slow: completed | /metrics resyncs (all) | completed seen |"
  echo "| --- | --- | --- | ---: | --- | --- | --- | --- | --- | --- | ---: | --- |"
  for tag in $loaded_tags; do
    f="$work/clients.$tag"
    echo "| $tag | $(field "$f" 'clients') | $(field "$f" 'frames per client') | $(field "$f" 'resyncs total') | $(field "$f" 'seq gaps') / $(field "$f" 'seq backwards') | $(field "$f" 'latency ms') | $(field "$f" 'slow resyncs') | $(field "$f" 'slow seq') | $(field "$f" 'slow latency ms') | $(field "$f" 'slow completed') | $(metric "$work/metrics.$tag" nanotrader_dashboard_resyncs_total) | $(field "$f" 'run completed') |"
  done
  echo
  echo "server memory, MiB: VmRSS when the run started (first /api/status 200), then sampled every 0.5 s until stopped (peak / end), then VmHWM"
  echo
  echo "| run | samples | RSS at start / peak / end / HWM |"
  echo "| --- | ---: | --- |"
  for tag in $(seq -f 'a%g' "$runs") $loaded_tags; do
    echo "| $tag | $(wc -l <"$work/rss.$tag") | $(rss "$tag") |"
  done
  echo
  echo "skipped events (hub behind the engine), /metrics: $(for tag in $loaded_tags; do printf '%s=%s ' "$tag" "$(metric "$work/metrics.$tag" nanotrader_dashboard_skipped_events_total)"; done)"
  echo "fills in the run (/api/fills returns them all): $(metric "$work/metrics.b1" nanotrader_fills_total)"
  echo
  for tag in $loaded_tags; do
    echo "client summary of ($tag):"
    sed 's/^/    /' "$work/clients.$tag"
    echo "wrk output of ($tag):"
    sed 's/^/    /' "$work/wrk.$tag"
    echo "RSS samples of ($tag), kB: $(paste -sd' ' "$work/rss.$tag")"
    echo
  done
} | tee "$out/${REPORT:-dashboard_load}.md"
