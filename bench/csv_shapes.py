#!/usr/bin/env python3
"""Writes the same bars in the shapes users bring (for BENCHMARKS.md section 8's table of bars/s
per file shape), with pandas the way pandas users make them.

Usage: csv_shapes.py BARS.csv OUT_DIR
BARS.csv is a plain `ts,open,high,low,close,volume` file (bench/make_bars.py makes one).
"""
import csv
import os
import sys

import pandas as pd


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    bars = pd.read_csv(src)
    when = pd.to_datetime(bars["ts"], unit="s")
    prices = bars[["open", "high", "low", "close", "volume"]]

    def path(name):
        return os.path.join(out, name)

    prices.set_index(when.rename(None)).to_csv(path("pandas_iso.csv"))
    y = prices.rename(columns=str.capitalize)
    y.insert(4, "Adj Close", y["Close"])
    y.set_index(when.dt.tz_localize("UTC").rename("Datetime")).to_csv(path("yahoo_tz.csv"))
    ms = prices.copy()
    ms.insert(0, "timestamp", bars["ts"] * 1000)
    ms.to_csv(path("quoted_ms_crlf.csv"), index=False, quoting=csv.QUOTE_NONNUMERIC,
              lineterminator="\r\n", encoding="utf-8-sig")
    k = pd.DataFrame({
        "open_time": bars["ts"] * 1000, "open": bars["open"], "high": bars["high"],
        "low": bars["low"], "close": bars["close"], "volume": bars["volume"],
        "close_time": bars["ts"] * 1000 + 59999, "quote_volume": bars["volume"],
        "count": 7, "taker_buy_volume": bars["volume"], "taker_buy_quote_volume": bars["volume"],
        "ignore": 0})
    k.to_csv(path("binance_klines.csv"), index=False, header=False)
    o = bars[["ts", "open", "high", "low", "close", "volume"]].copy()
    o["trades"] = 5
    o.to_csv(path("kraken_ohlcvt.csv"), index=False, header=False)
    for name in sorted(os.listdir(out)):
        print(os.path.join(out, name))


if __name__ == "__main__":
    main()
