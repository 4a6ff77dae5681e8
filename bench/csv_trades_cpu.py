#!/usr/bin/env python3
"""CSV -> trades with `--trades` written (section 8's nanotrader command), several binaries
interleaved: each round runs each binary once; prints the median wall time, user and system CPU
time and minor page faults (getrusage of the child) of each. On a busy machine the CPU times and
the page faults stay readable when wall times do not.

Usage: csv_trades_cpu.py ROUNDS BINARY... (FILE from $F, default bench/out/bars_2m_off17_drop1.csv)
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FILE = os.environ.get("F", os.path.join(HERE, "out", "bars_2m_off17_drop1.csv"))


def main():
    rounds, bins = int(sys.argv[1]), sys.argv[2:]
    os.environ.setdefault("NANOTRADER_DATA_DIR", os.path.join(HERE, "out", "nanotrader-data"))
    out = os.path.join(HERE, "out", "csv_trades_cpu_trades.csv")
    runs = {b: [] for b in bins}
    for _ in range(rounds):
        for b in bins:
            cmd = [b, "backtest", "--data", FILE, "--preset", "seed", "--cache", "off", "--trades", out, "--json"]
            start = time.perf_counter()
            child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)
            if status != 0:
                sys.exit(f"{b} failed: {status}")
            runs[b].append((time.perf_counter() - start, usage.ru_utime, usage.ru_stime, usage.ru_minflt))
    for b in bins:
        med = lambda i: statistics.median(r[i] for r in runs[b])  # noqa: E731
        cpu = statistics.median(r[1] + r[2] for r in runs[b])
        print(f"{b}: wall {med(0) * 1e3:.1f} ms, user {med(1) * 1e3:.1f} ms, sys {med(2) * 1e3:.1f} ms, "
              f"cpu {cpu * 1e3:.1f} ms, minor faults {med(3):.0f}")
    print("load average after:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
