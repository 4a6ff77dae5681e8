#!/usr/bin/env python3
"""The 1,000-combination SMA sweep, nanotrader against vectorbt, interleaved on one file.

Each round runs, each in a fresh process: nanotrader's sweep from the CSV (`--cache off`), from
its binary cache, the same with an older binary when BEFORE_BIN is set, and vectorbt's sweep
(bench/vectorbt_sweep.py). nanotrader's compute is the JSON's `timings.compute_secs` (the sweep
and the best combination's backtest after it), vectorbt's is its own `compute_secs` (every moving
average, crossing and portfolio, numba warm). The table gives medians over the rounds.

Usage: bench/.venv-backtest/bin/python bench/sweep_compare.py [BARS.csv] [OUT.md]
Env: NANOTRADER_BIN (target/release/nanotrader), BEFORE_BIN (none), ROUNDS (3), VBT=0 to skip
     vectorbt (about 5 minutes a round on 1M bars).
"""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SWEEP = ["--short", "5..50:5", "--long", "52..250:2"]


def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
    return wall, json.loads(p.stdout[p.stdout.find("{"):])


def nanotrader(binary, bars, *extra):
    wall, data = run([binary, "backtest", "--data", bars, *SWEEP, "--json", "--top", "3", *extra])
    return {"wall": wall, "compute": data["timings"]["compute_secs"], "combinations": data.get("combinations"),
            "best": data["best"]["strategy"] if "best" in data else None}


def main():
    bars = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out", "bars_1m.csv"))
    out = sys.argv[2] if len(sys.argv) > 2 else None
    if not os.path.exists(bars):
        subprocess.run([sys.executable, os.path.join(HERE, "make_bars.py"), "1000000", bars], check=True)
    ours = os.environ.get("NANOTRADER_BIN", os.path.join(ROOT, "target", "release", "nanotrader"))
    before = os.environ.get("BEFORE_BIN")
    rounds = int(os.environ.get("ROUNDS", "3"))
    with_vbt = os.environ.get("VBT", "1") != "0"
    tasks = {"nanotrader, CSV -> ranked sweep (--cache off)": lambda: nanotrader(ours, bars, "--cache", "off"),
             "nanotrader, from the binary cache": lambda: nanotrader(ours, bars)}
    if before:
        tasks["before, CSV -> ranked sweep (--cache off)"] = lambda: nanotrader(before, bars, "--cache", "off")
        tasks["before, from the binary cache"] = lambda: nanotrader(before, bars)
    if with_vbt:
        vbt_py = os.path.join(HERE, ".venv-backtest", "bin", "python")

        def vectorbt():
            wall, data = run([vbt_py, os.path.join(HERE, "vectorbt_sweep.py"), bars])
            return {"wall": wall, "compute": data["compute_secs"], "combinations": data["combinations"],
                    "rss": data["peak_rss_mib"]}
        tasks["vectorbt 1.2.0, CSV -> every combination's figures"] = vectorbt
    nanotrader(ours, bars)                       # writes the cache
    results = {name: [] for name in tasks}
    for r in range(rounds):
        names = list(tasks) if r % 2 == 0 else list(reversed(tasks))
        for name in names:
            results[name].append(tasks[name]())
            print(f"round {r + 1}: {name}: {results[name][-1]}", file=sys.stderr, flush=True)
    load = os.getloadavg()
    lines = [f"{os.path.basename(bars)}, {rounds} interleaved rounds, load average at the end "
             f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", "",
             "| tool, task | whole process (median) | compute (median) | combinations x bars / s (compute) | per round (whole) |",
             "| --- | ---: | ---: | ---: | --- |"]
    bar_count = sum(1 for _ in open(bars)) - 1
    for name, rs in results.items():
        wall = statistics.median(r["wall"] for r in rs)
        compute = statistics.median(r["compute"] for r in rs)
        combos = rs[0]["combinations"] or 1000
        lines.append(f"| {name} | {wall:.3f} s | {compute:.3f} s | {combos * bar_count / compute / 1e6:,.0f} M | "
                     + ", ".join(f"{r['wall']:.3f}" for r in rs) + " |")
    text = "\n".join(lines)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n\n" + json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
