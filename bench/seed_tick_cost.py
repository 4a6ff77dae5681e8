#!/usr/bin/env python3
"""Per-tick cost of the seed (teaching) program's DataFrame loop, without its plotting.

Each tick the seed appended one record to a DataFrame holding every tick so far and
recomputed SMA10/SMA20/signal/entry-exit over the WHOLE frame, then acted on the last row.
DataFrame.append is gone in pandas 2+; pd.concat of a one-row frame is what it did.
The hvplot/panel redraw is left out, so these figures are a lower bound for the seed.
Usage: seed_tick_cost.py [CSV]
"""
import os, platform, resource, sys, time
import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    HERE, "..", "..", "shared", "data", "btcperp_ftx_1m_20211231_20220201.csv")
BUDGET_S = 10.0          # timed ticks per size stay within about this
MIN_T, MAX_T = 20, 5000

closes = pd.read_csv(CSV, usecols=["close"])["close"].to_numpy(dtype=np.float64)
START = pd.Timestamp("2022-01-01")


def build(n):
    # Real closes, repeated to reach n; one row per second like the seed's loop.
    vals = np.resize(closes, n)
    return pd.DataFrame({"close": vals}, index=pd.date_range(START, periods=n, freq="s"))


def tick(df):
    n = len(df)
    new = pd.DataFrame({"close": [closes[n % len(closes)]]},
                       index=pd.DatetimeIndex([START + pd.Timedelta(seconds=n)]))
    df = pd.concat([df, new])                       # what DataFrame.append did
    sma10 = df["close"].rolling(window=10).mean()
    sma20 = df["close"].rolling(window=20).mean()
    signal = pd.Series(np.where(sma10 > sma20, 1.0, 0.0), index=df.index)
    entry_exit = signal.diff()
    return df, entry_exit.iloc[-1]                  # the decision the seed acted on


def bench(n):
    df = build(n)
    t0 = time.perf_counter()                        # calibrate T on 3 warm-up ticks
    for _ in range(3):
        df, _ = tick(df)
    est = (time.perf_counter() - t0) / 3
    t_ticks = int(min(MAX_T, max(MIN_T, BUDGET_S / est)))
    times, decisions = [], 0
    for _ in range(t_ticks):
        t0 = time.perf_counter()
        df, d = tick(df)
        times.append(time.perf_counter() - t0)
        decisions += d != 0                         # keep the result used
    ms = np.array(times) * 1e3
    return t_ticks, float(np.median(ms)), float(ms.mean()), est


print(f"python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}, "
      f"{platform.machine()}, {os.cpu_count()} cpus\n")
print("| N rows | ticks T | median ms/tick | mean ms/tick |")
print("|---:|---:|---:|---:|")
for n in (1_000, 10_000, 100_000, 1_000_000):
    if n == 1_000_000:
        # Only if 1M stays within ~30 s: probe one tick first.
        d = build(n); t0 = time.perf_counter(); tick(d); probe = time.perf_counter() - t0; del d
        if probe * MIN_T > 30:
            print(f"| {n:,} | skipped (probe {probe*1e3:.0f} ms/tick) | | |"); continue
    t, med, mean, _ = bench(n)
    print(f"| {n:,} | {t} | {med:.3f} | {mean:.3f} |", flush=True)

peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(f"\npeak RSS: {peak/1024:.0f} MiB; plotting (hvplot/panel redraw) excluded")
