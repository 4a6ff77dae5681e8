#!/usr/bin/env bash
# Ten bots through simulated 24-hour days on NATS JetStream, RSS of each sampled (issue 19,
# point 6; BENCHMARKS.md section 14). See bench/feed_soak.py for what it does.
# Usage: bench/feed_soak.sh [DAYS [BOTS]]   (default 7 days, 10 bots; TRADES_PER_BAR=10,
# NO_WEB=1 to run the bots without their dashboards; PG=1 to store every bot's runs in one fresh
# PostgreSQL database at PG_SERVER, default postgres://postgres@127.0.0.1:5432, instead of a
# SQLite data directory each). Needs nats-server with JetStream at
# 127.0.0.1:4222 (or NANOTRADER_NATS_URL). Release builds (NANOTRADER_BIN to use another binary).
# Writes bench/out/feed_soak.md and the samples to bench/out/feed_soak.csv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."
mkdir -p "$here/out"
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p nanotrader-bus --example feed_day
if [ -n "${NANOTRADER_BIN:-}" ]; then
  bin="$NANOTRADER_BIN"
else
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bin nanotrader
  bin="$repo/target/release/nanotrader"
fi
db_args=()
if [ -n "${PG:-}" ]; then
  server="${PG_SERVER:-postgres://postgres@127.0.0.1:5432}"
  db="nt_soak_$$"
  psql -X -q -d "$server/postgres" -c "CREATE DATABASE $db"
  trap 'psql -X -q -d "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
  db_args=(--db-url "$server/$db")
fi
python3 "$here/feed_soak.py" --bin "$bin" --feed-day "$repo/target/release/examples/feed_day" \
  --days "${1:-7}" --bots "${2:-10}" --trades-per-bar "${TRADES_PER_BAR:-10}" \
  ${NO_WEB:+--no-web} "${db_args[@]}" --out "$here/out/feed_soak${PG:+_pg}.md"
