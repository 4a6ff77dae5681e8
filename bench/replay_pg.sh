#!/usr/bin/env bash
# Replay into PostgreSQL vs SQLite (issue 19, point 6: PostgreSQL at least half SQLite's rate):
# `nanotrader run --source replay --speed max --preset seed --no-web` over N real 1-minute bars
# (bench/make_bars.py), once into a fresh SQLite data directory and once into a fresh PostgreSQL
# database. Two rates each: the engine's (the summary's "bars/s": the replay through strategy,
# broker and the store queue) and the wall clock's (process start to exit, the writer's last
# commit included), which is the one that says whether the store keeps up.
# RUNS rounds (default 3), each SQLite then PostgreSQL back to back (a fresh data directory and a
# fresh database every time), the load average before each run in its row; then the medians and
# PostgreSQL's share of SQLite's rate.
# Usage: bench/replay_pg.sh [N] (default 1000000). PG_SERVER: a URL without database
# (default postgres://postgres@127.0.0.1:5432). Writes bench/out/replay_pg.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."
out="$here/out"
mkdir -p "$out"
n="${1:-1000000}"
server="${PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
if [ -n "${NANOTRADER_BIN:-}" ]; then
  bin="$NANOTRADER_BIN"
else
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
  bin="$repo/target/release/nanotrader"
fi
work="$(mktemp -d)"
db="nt_bench_$$"
runs="${RUNS:-3}"
trap 'rm -rf "$work"; psql -X -q -d "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
python3 "$here/make_bars.py" "$n" "$work/bars.csv" ${MAKE_BARS_SOURCE:+--source "$MAKE_BARS_SOURCE"} >/dev/null

one() { # name, then the store's flags
  local name="$1"
  shift
  local start end load
  load=$(cut -d' ' -f1 /proc/loadavg)
  start=$(date +%s.%N)
  "$bin" -q "$@" run --source replay --data "$work/bars.csv" --speed max --preset seed --no-web >"$work/summary"
  end=$(date +%s.%N)
  local engine wall fills
  engine=$(sed -n 's/.*bars in .* s (\([0-9,]*\) bars\/s).*/\1/p' "$work/summary" | tr -d ,)
  wall=$(python3 -c "print(round($n / ($end - $start)))")
  fills=$(sed -n 's/^  fills *\([0-9]*\).*/\1/p' "$work/summary")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$round" "$load" "$name" "$n" "$engine" "$wall" "$fills"
}

{
  echo "| round | load (1 min) | store | bars | engine bars/s | wall-clock bars/s | fills |"
  echo "| ---: | ---: | --- | ---: | ---: | ---: | ---: |"
  for round in $(seq 1 "$runs"); do
    rm -rf "$work/store" "$work/unused"
    psql -X -q -d "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    one sqlite --data-dir "$work/store"
    one postgres --data-dir "$work/unused" --db-url "$server/$db"
  done
} | tee "$out/replay_pg.md"
# Medians per store, and PostgreSQL's share of SQLite's rate.
python3 - "$out/replay_pg.md" <<'PY' | tee -a "$out/replay_pg.md"
import statistics, sys
rows = [l.split("|")[1:-1] for l in open(sys.argv[1]) if l.startswith("| ") and l.split("|")[3].strip() in ("sqlite", "postgres")]
med = {}
for store in ("sqlite", "postgres"):
    r = [x for x in rows if x[2].strip() == store]
    med[store] = [statistics.median(int(x[i]) for x in r) for i in (4, 5)]
print()
for store, (engine, wall) in med.items():
    print(f"median {store}: engine {engine:,.0f} bars/s, wall clock {wall:,.0f} bars/s")
print(f"PostgreSQL / SQLite: engine {med['postgres'][0] / med['sqlite'][0]:.0%}, "
      f"wall clock {med['postgres'][1] / med['sqlite'][1]:.0%}")
PY
