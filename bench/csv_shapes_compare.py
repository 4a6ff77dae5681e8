#!/usr/bin/env python3
"""Issue 16, point 3: CSV -> trades on files users have, against the seed's pandas logic.

1. A 2M-bar file with every time 17 s off the minute and about 1 % of the minutes missing
   (bench/make_bars.py ... --offset-secs 17 --drop 0.01), CSV -> trades with the trades written
   (`--trades FILE`), whole process against whole process: ROUNDS (default 7) interleaved rounds,
   each timing the seed's pandas script once and `nanotrader backtest` RUNS_PER_ROUND (5) times;
   the figure is the median of the rounds' ratios. Both trade lists are checked equal.
2. bars/s per file shape: the same 1M bars written by pandas in the shapes users bring
   (bench/csv_shapes.py), each loaded by `nanotrader backtest --cache off --json` (its own load
   timing, and the whole process), median of RUNS (default 5).

Run through bench/csv_shapes_compare.sh (it makes the venv with pinned pandas).
Output: bench/out/csv_shapes_compare.md and .json.
Environment: NANOTRADER_BIN, ROUNDS, RUNS_PER_ROUND, RUNS.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backtest_compare as bc  # noqa: E402  (the shared timing helpers)

HERE, ROOT, OUT, PY = bc.HERE, bc.ROOT, bc.OUT, bc.PY
ROUNDS = int(os.environ.get("ROUNDS", "7"))
RUNS_PER_ROUND = int(os.environ.get("RUNS_PER_ROUND", "5"))
RUNS = int(os.environ.get("RUNS", "5"))
DATA_DIR = os.path.join(OUT, "nanotrader-data")


def make(n, name, *extra):
    path = os.path.join(OUT, name)
    if not (os.path.exists(path) and bc.count_rows(path) >= n * 0.98):
        subprocess.run([PY, os.path.join(HERE, "make_bars.py"), str(n), path, *extra], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    os.environ["NANOTRADER_DATA_DIR"] = DATA_DIR
    nbin, err = bc.nanotrader_bin()
    if err:
        sys.exit(err)
    info = bc.machine_info()
    lines = []
    raw = {"machine": info}

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    # 1. The 2M-bar file, interleaved.
    big = make(2_000_000, "bars_2m_off17_drop1.csv", "--offset-secs", "17", "--drop", "0.01")
    bars = bc.count_rows(big)
    seed_trades = os.path.join(OUT, "csv_shapes_seed_trades.csv")
    nt_trades = os.path.join(OUT, "csv_shapes_nt_trades.csv")
    seed_cmd = [PY, os.path.join(HERE, "seed_pandas_backtest.py"), big, "--trades", seed_trades]
    nt_cmd = [nbin, "backtest", "--data", big, "--preset", "seed", "--cache", "off",
              "--trades", nt_trades, "--json"]
    log(f"{bars:,} bars, {os.path.getsize(big) / 2**20:.0f} MiB: {ROUNDS} interleaved rounds")
    _, _, first = bc.measure(nt_cmd, rss=False)
    rounds = []
    for k in range(ROUNDS):
        seed = bc.measure(seed_cmd, rss=False)[0]
        nt = [bc.measure(nt_cmd, rss=False) for _ in range(RUNS_PER_ROUND)]
        rounds.append({"seed_wall_secs": seed, "nanotrader_wall_secs": bc.med([w for w, _, _ in nt]),
                       "nanotrader_load_secs": bc.med([bc.get(d, "timings", "load_secs") for _, _, d in nt])})
        log(f"  round {k + 1}: seed {seed:.3f} s, nanotrader {rounds[-1]['nanotrader_wall_secs']:.3f} s")
    _, seed_rss, seed_json = bc.measure(seed_cmd)
    _, nt_rss, nt_json = bc.measure(nt_cmd)
    same = bc.compare_trades(nt_trades, seed_trades)
    raw["big"] = {"rounds": rounds, "trades": same, "loaded_from": bc.get(first, "data", "loaded_from"),
                  "seed": seed_json, "nanotrader": nt_json}
    ratios = sorted(r["seed_wall_secs"] / r["nanotrader_wall_secs"] for r in rounds)
    seed_med = bc.med([r["seed_wall_secs"] for r in rounds])
    nt_med = bc.med([r["nanotrader_wall_secs"] for r in rounds])
    load_med = bc.med([r["nanotrader_load_secs"] for r in rounds])
    lines += [
        f"Machine: {info.get('cpu')}, {info.get('nproc')} vCPU, {info.get('mem_gib')} GiB; "
        f"pandas {info['packages'].get('pandas')}; load average at start {' '.join(info.get('loadavg_at_start', []))}; "
        f"{info['date']}.",
        "",
        f"### CSV -> trades, {bars:,} bars 17 s off the minute, about 1 % of minutes missing, `--trades` written",
        "",
        "| tool | whole process (median of rounds) | bars/s | peak RSS | ratio to seed pandas (median of rounds) | per round |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| seed pandas (`seed_pandas_backtest.py --trades`) | {seed_med:.3f} s | {bars / seed_med / 1e6:.1f} M | "
        f"{seed_rss or 0:.0f} MiB | 1x | |",
        f"| nanotrader (`backtest --preset seed --cache off --trades`) | {nt_med:.3f} s | {bars / nt_med / 1e6:.1f} M | "
        f"{nt_rss or 0:.0f} MiB | **{bc.med(ratios):.1f}x** | {ratios[0]:.1f}x..{ratios[-1]:.1f}x |",
        "",
        f"nanotrader loaded the file from **{bc.get(first, 'data', 'loaded_from')}** (the parallel reader), "
        f"{load_med * 1000:.0f} ms of its time (median): {bars / load_med / 1e6:.1f} M bars/s. "
        f"Trades: {same['trades']:,} by nanotrader, {same['ref_trades']:,} by seed pandas, "
        f"lists equal: {same['trade_lists_equal']}.",
        "",
    ]

    # 2. bars/s per shape.
    base = make(1_000_000, "bars_1m_off17_drop1.csv", "--offset-secs", "17", "--drop", "0.01")
    shapes_dir = os.path.join(OUT, "shapes")
    stamp = os.path.join(shapes_dir, ".made_from")
    if not os.path.exists(stamp) or open(stamp).read() != base:
        subprocess.run([PY, os.path.join(HERE, "csv_shapes.py"), base, shapes_dir], check=True,
                       stdout=subprocess.DEVNULL)
        with open(stamp, "w") as f:
            f.write(base)
    files = [("plain `ts,open,high,low,close,volume`, 17 s off the minute, 1 % missing", base)]
    names = {
        "pandas_iso.csv": "pandas `to_csv` of a DatetimeIndex (unnamed column, ISO times)",
        "yahoo_tz.csv": "Yahoo-style (`Datetime` with +00:00, Adj Close)",
        "quoted_ms_crlf.csv": "ms times, quoted header, CRLF, BOM",
        "kraken_ohlcvt.csv": "Kraken OHLCVT, no header",
        "binance_klines.csv": "Binance klines, no header, 12 columns",
    }
    for name, label in names.items():
        files.append((label, os.path.join(shapes_dir, name)))
    lines += [
        f"### bars/s per file shape (the same {bc.count_rows(base):,} bars; `backtest --cache off`, median of {RUNS})",
        "",
        "| file shape | MiB | loaded from | load (CSV parse) | load bars/s | whole process | whole-process bars/s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    raw["shapes"] = {}
    for label, path in files:
        cmd = [nbin, "backtest", "--data", path, "--cache", "off", "--json"]
        runs = [bc.measure(cmd, rss=False) for _ in range(RUNS)]
        wall = bc.med([w for w, _, _ in runs])
        load = bc.med([bc.get(d, "timings", "load_secs") for _, _, d in runs])
        n = bc.get(runs[0][2], "bars")
        src = bc.get(runs[0][2], "data", "loaded_from")
        raw["shapes"][label] = {"wall_secs": wall, "load_secs": load, "bars": n, "loaded_from": src}
        lines.append(f"| {label} | {os.path.getsize(path) / 2**20:.0f} | {src} | {load * 1000:.0f} ms | "
                     f"{n / load / 1e6:.1f} M | {wall:.3f} s | {n / wall / 1e6:.1f} M |")
        log(f"  {label}: load {load * 1000:.0f} ms, whole {wall:.3f} s")
    with open(os.path.join(OUT, "csv_shapes_compare.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "csv_shapes_compare.json"), "w") as f:
        json.dump(raw, f, indent=1, default=str)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
