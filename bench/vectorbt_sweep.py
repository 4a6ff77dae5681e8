#!/usr/bin/env python3
"""vectorbt's parameter sweep of the SMA crossover that `nanotrader backtest --short 5..50:5
--long 52..250:2` runs: 10 short x 100 long windows = 1,000 combinations over one file, each
traded all in (size=inf) with the same 0.40 % fee and 100,000 of cash, entering when the short
average crosses above the long one and leaving when it crosses below.

Each distinct moving average is computed once (`vbt.MA.run` over the 10 and the 100 windows: the
same sharing nanotrader's kernel does); the crossings and `Portfolio.from_signals` then run one
short window at a time against all 100 long ones (100 columns of 1M bars: all 1,000 at once would
need 8 GB for each f64 array). Per combination it reads what nanotrader's sweep reports: orders,
final value, total return, Sharpe, max drawdown.

Prints one JSON line: import, load, first call (numba compiling, or loading its disk cache) and
compute seconds, peak RSS, and the figures of a few combinations to compare.

Usage: vectorbt_sweep.py BARS.csv
"""
import json
import resource
import sys
import time

SHORTS = list(range(5, 51, 5))
LONGS = list(range(52, 251, 2))
CASH = 100_000.0
FEES = 0.004
# Combinations per `Portfolio.from_signals` call: each keeps several f64 arrays of bars x
# combinations (value, returns, drawdowns...), 80 MB each at 10 x 1M bars.
CHUNK = 10


def main():
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd
    import vectorbt as vbt
    # Its cache would keep every chunk's arrays to the end (tens of GB here).
    vbt.settings.caching["enabled"] = False
    t1 = time.perf_counter()
    frame = pd.read_csv(sys.argv[1], usecols=["ts", "close"])
    close = pd.Series(frame["close"].to_numpy(dtype=np.float64),
                      index=pd.to_datetime(frame["ts"], unit="s"), name="close")
    t2 = time.perf_counter()

    def sweep(c, shorts, longs):
        fast = vbt.MA.run(c, shorts, short_name="fast")
        slow = vbt.MA.run(c, longs, short_name="slow")
        # (One window gives a Series, several a DataFrame: both as 2-D arrays.)
        fast_all = fast.ma.to_numpy().reshape(len(c), -1)
        slow_all = slow.ma.to_numpy().reshape(len(c), -1)
        rows = []
        for i, first in ((i, first) for i in range(len(shorts)) for first in range(0, len(longs), CHUNK)):
            chunk = longs[first:first + CHUNK]
            above = fast_all[:, i:i + 1] > slow_all[:, first:first + CHUNK]
            before = np.vstack([np.zeros((1, len(chunk)), dtype=bool), above[:-1]])
            # Crossed above / below, as vbt's `ma_crossed_above` and `ma_crossed_below`.
            entries = above & ~before
            exits = ~above & before
            # Room for every crossing's order (by default one record per bar and column: 0.5 GB
            # a call at 10 x 1M bars, which exhausted memory over the 100 calls).
            orders_room = int(entries.sum() + exits.sum()) + len(chunk)
            pf = vbt.Portfolio.from_signals(c, entries, exits, init_cash=CASH, fees=FEES,
                                            size=np.inf, freq="1min", max_orders=orders_room)
            orders = pf.orders.count().to_numpy()
            final = pf.final_value().to_numpy()
            ret = pf.total_return().to_numpy()
            sharpe = pf.sharpe_ratio().to_numpy()
            dd = pf.max_drawdown().to_numpy()
            for j, l in enumerate(chunk):
                rows.append((shorts[i], l, int(orders[j]), float(final[j]), float(ret[j]),
                             float(sharpe[j]), float(dd[j])))
        return rows

    sweep(close.iloc[:3000], SHORTS[:1], LONGS[:2])    # numba compiles (or loads its cache) here
    t3 = time.perf_counter()
    rows = sweep(close, SHORTS, LONGS)
    t4 = time.perf_counter()
    best = max(rows, key=lambda r: r[4])
    sample = {f"{s}/{l}": {"orders": o, "final_value": f, "return_pct": r * 100, "sharpe": sh,
                           "max_drawdown_pct": -d * 100}
              for s, l, o, f, r, sh, d in rows if (s, l) in ((5, 52), (10, 100), (50, 250))}
    print(json.dumps({"bars": len(close), "combinations": len(rows),
                      "import_secs": t1 - t0, "load_secs": t2 - t1, "first_call_secs": t3 - t2,
                      "compute_secs": t4 - t3, "total_orders": sum(r[2] for r in rows),
                      "best_by_return": {"short": best[0], "long": best[1], "return_pct": best[4] * 100},
                      "sample": sample,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
