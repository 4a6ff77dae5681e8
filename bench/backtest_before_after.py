#!/usr/bin/env python3
"""BENCHMARKS.md section 9 (issue 17, point 9): section 7's nanotrader figures for two builds,
interleaved (each round runs every task with both, the order alternating), the median of ROUNDS
rounds, each round's figure the median of REPEAT runs (3 for 10M bars, 1 for the sweep).
Usage (from the repository root, after bench/backtest_compare.sh made bench/out/bars_*.csv):
  bench/.venv/bin/python bench/backtest_before_after.py BEFORE_BIN AFTER_BIN OUT.md
Environment: ROUNDS (5), REPEAT (5). Each build gets a data dir of its own (its caches)."""
import json, os, statistics, subprocess, sys, tempfile, time

BIN = {"before": sys.argv[1], "after": sys.argv[2]}
OUT = sys.argv[3]
ROUNDS = int(os.environ.get("ROUNDS", "5"))
REPEAT = int(os.environ.get("REPEAT", "5"))
D = "bench/out/"
TASKS = [
    ("CSV -> trades, whole process (`--cache off`), 1M", ["--data", D + "bars_1m.csv", "--preset", "seed", "--cache", "off"], REPEAT),
    ("from the binary cache, whole process, 1M", ["--data", D + "bars_1m.csv", "--preset", "seed"], REPEAT),
    ("CSV -> trades (`--cache off`), prices with cents, 1M", ["--data", D + "bars_1m_cents.csv", "--preset", "seed", "--cache", "off"], REPEAT),
    ("from the binary cache, prices with cents, 1M", ["--data", D + "bars_1m_cents.csv", "--preset", "seed"], REPEAT),
    ("from the binary cache, whole process, 10M", ["--data", D + "bars_10m.csv", "--preset", "seed"], 3),
    ("CSV -> trades (`--cache off`), 10M", ["--data", D + "bars_10m.csv", "--preset", "seed", "--cache", "off"], 3),
    ("sweep `--short 5..50:5 --long 52..250:2` (1,000 combinations), 1M", ["--data", D + "bars_1m.csv", "--short", "5..50:5", "--long", "52..250:2"], 1),
]
dirs = {k: tempfile.mkdtemp(prefix=f"nt-{k}-") for k in BIN}


def run(which, args):
    env = dict(os.environ, NANOTRADER_DATA_DIR=dirs[which])
    t = time.perf_counter()
    r = subprocess.run([BIN[which], "backtest", *args, "--json"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{which} {args}: {r.stderr}")
    d = json.loads(r.stdout)
    return wall, d.get("timings", {}).get("compute_secs"), d.get("fills")


# Warm: caches written, files in the page cache.
for which in BIN:
    for _, args, _ in TASKS[:2] + TASKS[2:5]:
        run(which, args)
walls = {(t, w): [] for t, _, _ in TASKS for w in BIN}
computes = {(t, w): [] for t, _, _ in TASKS for w in BIN}
fills = {}
for k in range(ROUNDS):
    order = ["before", "after"] if k % 2 == 0 else ["after", "before"]
    for name, args, repeat in TASKS:
        for which in order:
            rs = [run(which, args) for _ in range(repeat)]
            walls[(name, which)].append(statistics.median(w for w, _, _ in rs))
            computes[(name, which)].append(statistics.median(c for _, c, _ in rs if c is not None))
            fills[(name, which)] = rs[0][2]
    print(f"round {k + 1} done", file=sys.stderr, flush=True)

lines = ["| task | before | after | change | fills before / after |", "| --- | ---: | ---: | ---: | ---: |"]
for name, _, _ in TASKS:
    b = statistics.median(walls[(name, "before")])
    a = statistics.median(walls[(name, "after")])
    lines.append(f"| {name} | {b:.3f} s | {a:.3f} s | {100 * (a - b) / b:+.1f} % | {fills[(name, 'before')]} / {fills[(name, 'after')]} |")
b = statistics.median(computes[(TASKS[4][0], "before")])
a = statistics.median(computes[(TASKS[4][0], "after")])
lines.append(f"| of the 10M from the cache: compute in memory (two cores) | {b:.3f} s | {a:.3f} s | {100 * (a - b) / b:+.1f} % | |")
open(OUT, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
