#!/usr/bin/env python3
"""The seed program's SMA-crossover backtest, vectorised in pandas/numpy the way the seed computed it.

Usage: seed_pandas_backtest.py BARS.csv [--short 10] [--long 20] [--cash 100000] [--min-rows 22]
                               [--trades OUT.csv]

The seed held its records in a DataFrame and computed, over the whole frame,
    sma_short = close.rolling(10).mean(); sma_long = close.rolling(20).mean()
    signal    = np.where(sma_short > sma_long, 1, 0)     # NaN long average -> 0
    positions = signal.diff()                             # +1 entry, -1 exit
and acted on a row only once it held 22 records (row index >= 21). Here the whole file is one frame
(a backtest), and the loop runs only over the (few) rows where `positions` is non-zero, applying the
seed's account rules in floats as the seed did: buy qty = round(cash / close) * 0.001 (Python's round
is half-even), cash -= qty * close; sell the whole position at close; no fees; 100000 cash.
(A sell with no position, or a buy of 0 units, changes nothing and is not counted as a trade.)

Prints one JSON line: rows, trades, buys, sells, cash, position, last_close, equity, load_secs,
compute_secs, total_secs, peak_rss_mib (getrusage ru_maxrss of this process).
"""
import argparse
import json
import resource
import time

import numpy as np
import pandas as pd


def signals(close, short, long_):
    """The seed's frame computation: SMAs, 0/1 signal, and its diff."""
    sma_short = close.rolling(window=short).mean()
    sma_long = close.rolling(window=long_).mean()
    signal = np.where(sma_short > sma_long, 1, 0)        # comparison with NaN is False -> 0
    positions = pd.Series(signal, index=close.index).diff()
    return positions


def trade(positions, close, cash, min_rows):
    """The seed's account rules, applied at each signal change from row index min_rows - 1 on."""
    pos = positions.to_numpy()
    idx = np.flatnonzero(pos[min_rows - 1:] != 0) + (min_rows - 1)   # NaN at row 0 is excluded
    closes = close.to_numpy()
    position = 0.0
    trades = []
    for i in idx.tolist():
        price = float(closes[i])
        if pos[i] > 0:
            qty = round(cash / price) * 0.001
            if qty == 0:
                continue
            cash -= qty * price
            position += qty
            trades.append((i, "buy", qty, price, cash, position))
        else:
            if position == 0:
                continue
            qty = position
            cash += price * position
            position = 0.0
            trades.append((i, "sell", qty, price, cash, position))
    return trades, cash, position


def run(path, short=10, long_=20, cash=100000.0, min_rows=22):
    t0 = time.perf_counter()
    df = pd.read_csv(path)
    t1 = time.perf_counter()
    positions = signals(df["close"], short, long_)
    trades, cash, position = trade(positions, df["close"], cash, min_rows)
    t2 = time.perf_counter()
    return df, trades, cash, position, t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bars")
    ap.add_argument("--short", type=int, default=10)
    ap.add_argument("--long", type=int, default=20)
    ap.add_argument("--cash", type=float, default=100000.0)
    ap.add_argument("--min-rows", type=int, default=22)
    ap.add_argument("--trades", help="write the trades as CSV here")
    a = ap.parse_args()
    df, trades, cash, position, load, compute = run(a.bars, a.short, a.long, a.cash, a.min_rows)
    last_close = float(df["close"].iloc[-1]) if len(df) else 0.0
    if a.trades:
        ts = df["ts"].to_numpy()
        with open(a.trades, "w") as f:
            f.write("ts,side,qty,price,cash_after,position_after\n")
            for i, side, qty, price, c, p in trades:
                f.write(f"{ts[i]},{side},{qty!r},{price!r},{c!r},{p!r}\n")
    out = {
        "rows": len(df),
        "trades": len(trades),
        "buys": sum(1 for t in trades if t[1] == "buy"),
        "sells": sum(1 for t in trades if t[1] == "sell"),
        "cash": cash,
        "position": position,
        "last_close": last_close,
        "equity": cash + position * last_close,
        "load_secs": load,
        "compute_secs": compute,
        "total_secs": load + compute,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
