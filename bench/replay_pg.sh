#!/usr/bin/env bash
# Replay into PostgreSQL vs SQLite (issue 19, point 6: PostgreSQL at least half SQLite's rate):
# `nanotrader run --source replay --speed max --preset seed --no-web` over N real 1-minute bars
# (bench/make_bars.py), once into a fresh SQLite data directory and once into a fresh PostgreSQL
# database. Two rates each: the engine's (the summary's "bars/s": the replay through strategy,
# broker and the store queue) and the wall clock's (process start to exit, the writer's last
# commit included), which is the one that says whether the store keeps up.
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
trap 'rm -rf "$work"; psql -X -q -d "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
python3 "$here/make_bars.py" "$n" "$work/bars.csv" ${MAKE_BARS_SOURCE:+--source "$MAKE_BARS_SOURCE"} >/dev/null
psql -X -q -d "$server/postgres" -c "CREATE DATABASE $db"

one() { # name, then the store's flags
  local name="$1"
  shift
  local start end
  start=$(date +%s.%N)
  "$bin" -q "$@" run --source replay --data "$work/bars.csv" --speed max --preset seed --no-web >"$work/summary"
  end=$(date +%s.%N)
  local engine wall fills
  engine=$(sed -n 's/.*bars in .* s (\([0-9,]*\) bars\/s).*/\1/p' "$work/summary" | tr -d ,)
  wall=$(python3 -c "print(round($n / ($end - $start)))")
  fills=$(sed -n 's/^  fills *\([0-9]*\).*/\1/p' "$work/summary")
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$n" "$engine" "$wall" "$fills"
}

{
  echo "| store | bars | engine bars/s | wall-clock bars/s | fills |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  one sqlite --data-dir "$work/store"
  one postgres --data-dir "$work/unused" --db-url "$server/$db"
} | tee "$out/replay_pg.md"
