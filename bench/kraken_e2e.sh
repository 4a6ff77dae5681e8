#!/usr/bin/env bash
# End to end over loopback: the mock Kraken exchange replays 19,904 real Binance BTC/USDT trades
# (10 min 50 s of market) at SPEED x over WebSocket v2; `nanotrader run --source kraken` turns them
# into bars, runs the strategy and stores everything. Reports the trade rate the feed carried and
# whether every stored bar equals the bar rebuilt from the file (no loss at that rate).
# Usage: bench/kraken_e2e.sh [SPEED...]   (default: 100 300 1000)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/.."
data="${DATA:-$repo/../shared/data/btcusdt_trades_binance_20240808_20240809.csv}"
speeds=("$@")
[ $# -gt 0 ] || speeds=(100 300 1000)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bins
bin="$repo/target/release"
work="$(mktemp -d)"
trap 'pkill -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$here/out"

{
  echo "| speed | market trades/s carried | trades stored in closed bars | bars | bars equal to the file's |"
  echo "| ---: | ---: | ---: | ---: | --- |"
  for speed in "${speeds[@]}"; do
    rm -rf "$work/store"
    "$bin/mock_kraken" --speed "$speed" --market-start now --data "$data" --listen 127.0.0.1:0 >"$work/mock.out" 2>&1 &
    mock=$!
    until grep -q '^WS' "$work/mock.out"; do sleep 0.05; done
    rest=$(awk '/^REST/ {print $2}' "$work/mock.out")
    ws=$(awk '/^WS/ {print $2}' "$work/mock.out")
    # Run until the data is over (its span / speed) plus a margin, then stop cleanly.
    secs=$(python3 -c "print(650 / $speed + 3)")
    timeout -s INT "$secs" "$bin/nanotrader" --data-dir "$work/store" -q run --source kraken \
      --kraken-rest-url "$rest" --kraken-ws-url "$ws" >/dev/null || true
    kill "$mock" 2>/dev/null || true
    "$bin/nanotrader" --data-dir "$work/store" bars --csv >"$work/bars.csv"
    python3 - "$data" "$work/bars.csv" "$speed" <<'PY'
import csv, sys
from collections import OrderedDict
from decimal import Decimal
data, stored, speed = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = list(csv.DictReader(open(data)))
bars = OrderedDict()
for r in rows:
    m = int(r["ts_ns"]) // 10**9 // 60               # the minute (the mock shifts whole minutes)
    p, v = Decimal(r["price"]), Decimal(r["volume"])
    b = bars.setdefault(m, [p, p, p, p, Decimal(0), 0])
    b[1], b[2], b[3], b[4], b[5] = max(b[1], p), min(b[2], p), p, b[4] + v, b[5] + 1
got = list(csv.DictReader(open(stored)))
if not got:
    print(f"| {speed:g} | - | 0 | 0 | no bars stored |"); sys.exit()
first = int(got[0]["ts"]) // 60
mine = [[Decimal(g[k]) for k in ("open", "high", "low", "close", "volume")] for g in got]
# Align on the first stored minute by matching its bar against the file's.
offset = next((m - first for m in bars if [*bars[m][:5]] == mine[0]), None)
ok = offset is not None and all([*bars.get(int(g["ts"]) // 60 + offset, [None] * 5)[:5]] == mine[i] for i, g in enumerate(got))
trades = sum(bars[int(g["ts"]) // 60 + offset][5] for g in got) if ok else 0
print(f"| {speed:g} | {len(rows) / ((int(rows[-1]['ts_ns']) - int(rows[0]['ts_ns'])) / 1e9) * speed:,.0f} | {trades:,} | {len(got)} | {'yes' if ok else 'NO'} |")
PY
  done
} | tee "$here/out/kraken_e2e.md"
