#!/usr/bin/env python3
"""Backtest comparison: the seed's pandas logic, vectorbt, backtesting.py and `nanotrader backtest`.

Run through bench/backtest_compare.sh (it makes the venv with the pinned packages). Every measured
run is a fresh process, so peak RSS is per tool; each figure is the median of RUNS (default 3), or
of SHORT_RUNS (default 15) when a run takes under SHORT_SECS (0.1 s): a few milliseconds of noise
from the VM would otherwise decide a ratio. The headline ratios are measured once more in ROUNDS
(default 7) interleaved rounds, so that the VM's drifting speed is the same on both sides.

  backtest_compare.py                 # everything; writes bench/out/backtest_compare.{md,json}
  backtest_compare.py _vbt FILE       # worker: vectorbt SMA 10/20 crossover (used by the above)
  backtest_compare.py _bt FILE N      # worker: backtesting.py SmaCross 10/20 on the first N bars

Environment: NANOTRADER_BIN (default target/release/nanotrader; built with `cargo build --release`
if missing, unless NANOTRADER_BUILD=0), RUNS (3), SHORT_RUNS (15), ROUNDS (7), BT_CAP_SECS (120: cap per backtesting.py run),
SKIP_10M=1 (leave out the 10M-bar rows).
"""
import csv
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
SHARED = os.path.join(ROOT, "..", "shared")
PY = sys.executable
RUNS = int(os.environ.get("RUNS", "3"))
SHORT_RUNS = int(os.environ.get("SHORT_RUNS", "15"))
SHORT_SECS = 0.1
ROUNDS = int(os.environ.get("ROUNDS", "7"))
BT_CAP = float(os.environ.get("BT_CAP_SECS", "120"))
# Peak RSS: /usr/bin/time -v, in one extra run of each command (see `repeat`). The child's own
# rusage is no good: Linux carries the forking harness's peak RSS over into it across exec.
TIME_V = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
# nanotrader keeps its bar caches under its data dir (DATA_DIR/cache).
DATA_DIR = os.path.join(OUT, "nanotrader-data")
CACHE_DIR = os.path.join(DATA_DIR, "cache")


def newest_cache():
    """The cache file nanotrader wrote last, if any."""
    try:
        files = [os.path.join(CACHE_DIR, f) for f in os.listdir(CACHE_DIR) if f.endswith(".ntbars")]
    except OSError:
        return None
    return max(files, key=os.path.getmtime, default=None)


# ---------------------------------------------------------------- workers (run in fresh processes)

def worker_vbt(path):
    import resource
    t0 = time.perf_counter()
    import numpy as np  # noqa: F401
    import pandas as pd
    import vectorbt as vbt
    t1 = time.perf_counter()
    close = pd.read_csv(path)["close"]
    t2 = time.perf_counter()

    def run(c):
        fast = vbt.MA.run(c, 10, short_name="fast")
        slow = vbt.MA.run(c, 20, short_name="slow")
        entries = fast.ma_crossed_above(slow)
        exits = fast.ma_crossed_below(slow)
        pf = vbt.Portfolio.from_signals(c, entries, exits, init_cash=100000.0, fees=0.0)
        return int(pf.orders.count()), int(pf.trades.count()), float(pf.final_value())

    run(close.iloc[:2000])                      # first call: numba compiles everything it needs
    t3 = time.perf_counter()
    orders, trades, final_value = run(close)
    t4 = time.perf_counter()
    print(json.dumps({"bars": len(close), "orders": orders, "trades": trades,
                      "final_value": final_value, "import_secs": t1 - t0, "load_secs": t2 - t1,
                      "first_call_secs": t3 - t2, "compute_secs": t4 - t3,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def worker_bt(path, n, fractional=False):
    import resource
    import warnings
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import FractionalBacktest, crossover
    from backtesting.test import SMA
    t1 = time.perf_counter()
    df = pd.read_csv(path, nrows=n)
    data = pd.DataFrame({"Open": df["open"], "High": df["high"], "Low": df["low"],
                         "Close": df["close"], "Volume": df["volume"]})
    data.index = pd.to_datetime(df["ts"], unit="s")
    t2 = time.perf_counter()

    class SmaCross(Strategy):                   # backtesting.py's README example, 10/20
        n1 = 10
        n2 = 20

        def init(self):
            close = self.data.Close
            self.sma1 = self.I(SMA, close, self.n1)
            self.sma2 = self.I(SMA, close, self.n2)

        def next(self):
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    if fractional:                              # trades in satoshis (1e-8 BTC) instead of whole BTC
        bt = FractionalBacktest(data, SmaCross, cash=100000, commission=0)
    else:
        bt = Backtest(data, SmaCross, cash=100000, commission=0)
    stats = bt.run()
    t3 = time.perf_counter()
    print(json.dumps({"bars": len(data), "trades": int(stats["# Trades"]),
                      "final_equity": float(stats["Equity Final [$]"]), "import_secs": t1 - t0,
                      "load_secs": t2 - t1, "compute_secs": t3 - t2,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


# ---------------------------------------------------------------- measuring

class RunError(Exception):
    pass


def measure(cmd, timeout=600, cwd=ROOT, env=None, rss=True):
    """Runs cmd once in a fresh process: (wall secs incl. start-up, peak RSS MiB, parsed JSON).
    With `rss`, under /usr/bin/time -v, which adds a process (about 1 ms) to the wall time."""
    time_v = TIME_V if rss else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        full = [time_v, "-v"] + cmd if time_v else cmd
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdout=out, stderr=err, cwd=cwd,
                             env=None if env is None else {**os.environ, **env})
        # A blocking wait returns the moment the child exits. (Popen.wait(timeout=...) polls with
        # sleeps that double from 0.5 ms to 50 ms, which rounded every time up to the next step:
        # 16 ms, 64 ms, ... A timer kills the child instead.)
        expired = threading.Event()

        def expire():
            expired.set()
            p.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            p.wait()
            wall = time.perf_counter() - t0
        finally:
            timer.cancel()
        if expired.is_set():
            raise RunError(f"timed out after {timeout:.0f} s")
        peak = None
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if time_v:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
        peak = int(m.group(1)) / 1024 if m else None
        stderr = stderr[:stderr.find("\tCommand being timed:")] if "\tCommand being timed:" in stderr else stderr
    if p.returncode != 0:
        msg = (stderr.strip() or stdout.strip() or f"exit {p.returncode}").splitlines()
        raise RunError(f"exit {p.returncode}: " + (msg[-1] if msg else "")[:300])
    data = None
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
                break
            except ValueError:
                pass
    if data is None:                             # a pretty-printed JSON document
        try:
            data = json.loads(stdout[stdout.find("{"):])
        except ValueError:
            raise RunError("no JSON on stdout: " + stdout.strip()[:200])
    return wall, peak, data


def repeat(cmd, runs=RUNS, timeout=600):
    """`runs` timed runs (SHORT_RUNS if the first is short), then one more under /usr/bin/time -v
    for the peak RSS (given to each)."""
    res = [measure(cmd, timeout, rss=False)]
    if res[0][0] < SHORT_SECS:
        runs = max(runs, SHORT_RUNS)
    res += [measure(cmd, timeout, rss=False) for _ in range(runs - 1)]
    if TIME_V:
        _, peak, _ = measure(cmd, timeout)
        res = [(wall, peak, data) for wall, _, data in res]
    return res


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


# ---------------------------------------------------------------- data and environment

def count_rows(path):
    with open(path, "rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 24), b"")) - 1


def ensure_bars(n, name, source=None):
    path = os.path.join(OUT, name)
    if os.path.exists(path) and count_rows(path) == n:
        return path
    extra = ["--source", source] if source else []
    subprocess.run([PY, os.path.join(HERE, "make_bars.py"), str(n), path] + extra, check=True)
    shutil.rmtree(CACHE_DIR, ignore_errors=True)  # stale nanotrader caches of an older file
    return path


def machine_info():
    info = {"nproc": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "date": dt.datetime.now().isoformat(timespec="seconds")}
    try:
        info["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    except Exception:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
        info["cpu"] = m.group(1).strip() if m else "?"
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s*(\d+)", f.read())
        info["mem_gib"] = round(int(m.group(1)) / 1024 / 1024, 1)
        info["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    pk = {}
    for mod in ("pandas", "numpy", "vectorbt", "backtesting", "numba"):
        try:
            pk[mod] = __import__(mod).__version__
        except Exception as e:                  # noqa: BLE001
            pk[mod] = f"n/a ({e.__class__.__name__})"
    info["packages"] = pk
    return info


# ---------------------------------------------------------------- known answers

def compare_trades(mine_csv, ref_csv):
    with open(mine_csv) as f:
        mine = list(csv.DictReader(f))
    with open(ref_csv) as f:
        ref = list(csv.DictReader(f))
    first_diff = None
    max_rel_cash = 0.0
    for k, (a, b) in enumerate(zip(mine, ref)):
        same = (a["ts"] == b["ts"] and a["side"] == b["side"]
                and Decimal(a["price"]) == Decimal(b["price"])
                and abs(float(a["qty"]) - float(b["qty"])) <= 1e-9 * max(1.0, float(b["qty"])))
        if not same and first_diff is None:
            first_diff = {"index": k, "mine": a, "ref": b}
        rc = float(b["cash_after"])
        max_rel_cash = max(max_rel_cash, abs(float(a["cash_after"]) - rc) / abs(rc))
    if len(mine) != len(ref) and first_diff is None:
        first_diff = {"index": min(len(mine), len(ref)), "note": "one list is longer"}
    return {"trades": len(mine), "ref_trades": len(ref), "trade_lists_equal": first_diff is None,
            "first_diff": first_diff, "max_rel_cash_after_diff": max_rel_cash}


def verify_seed(bars_1m):
    """seed_pandas_backtest.py against seed_trades.py's exact answers (shared and on the 1M bars)."""
    ref_dir = os.path.join(SHARED, "reference")
    cases = []
    for name in ("btcusd_1m_20170903_20170904", "btcusd_1m_20171217"):
        cases.append((name, os.path.join(SHARED, "data", name + ".csv"), os.path.join(ref_dir, name)))
    # Exact answers made here by seed_trades.py: the 1M bars, and a shared file with an exact SMA tie
    # (row 618, ts 1475836260: both averages 615.611; pandas' rolling means differ in the last bit).
    for label, bars, exact in (
            ("bars_1m", bars_1m, os.path.join(OUT, "seed_exact_1m")),
            ("btcusd_1m_20161007_20161009", os.path.join(SHARED, "data", "btcusd_1m_20161007_20161009.csv"),
             os.path.join(OUT, "seed_exact_20161007_20161009"))):
        if not os.path.exists(bars):
            continue
        stamp = os.path.join(exact, "account.json")
        if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(bars):
            subprocess.run([sys.executable, os.path.join(ref_dir, "seed_trades.py"), bars, exact],
                           check=True, stdout=subprocess.DEVNULL)
        cases.append((label + " (exact answer made here by seed_trades.py)", bars, exact))
    results = []
    for name, bars, ref in cases:
        mine_csv = os.path.join(OUT, "seed_pandas_trades_" + os.path.basename(ref) + ".csv")
        out = subprocess.run([PY, os.path.join(HERE, "seed_pandas_backtest.py"), bars, "--trades", mine_csv],
                             check=True, capture_output=True, text=True).stdout
        mine = json.loads(out)
        with open(os.path.join(ref, "account.json")) as f:
            acc = json.load(f)
        r = compare_trades(mine_csv, os.path.join(ref, "trades.csv"))
        ref_cash = float(acc["cash"])
        r.update({"case": name, "rows": mine["rows"], "cash": mine["cash"], "ref_cash": acc["cash"],
                  "cash_rel_diff": abs(mine["cash"] - ref_cash) / abs(ref_cash),
                  "position": mine["position"], "ref_position": acc["position"]})
        r["ok"] = (r["trades"] == r["ref_trades"] and r["trade_lists_equal"] and r["cash_rel_diff"] <= 1e-6)
        results.append(r)
    return results


# ---------------------------------------------------------------- nanotrader

def nanotrader_bin():
    b = os.environ.get("NANOTRADER_BIN") or os.path.join("target", "release", "nanotrader")
    b = b if os.path.isabs(b) else os.path.join(ROOT, b)
    if not os.path.exists(b) and os.environ.get("NANOTRADER_BUILD", "1") != "0":
        print(f"{b} missing: cargo build --release ...", file=sys.stderr, flush=True)
        r = subprocess.run(["cargo", "build", "--release", "--bin", "nanotrader"], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["?"])[-1]
            return b, f"cargo build --release failed: {tail[:200]}"
    if not os.path.exists(b):
        return b, f"{os.path.relpath(b, ROOT)} not found"
    r = subprocess.run([b, "backtest", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip() or "?").splitlines()[0]
        return b, f"`nanotrader backtest` unavailable: {msg[:200]}"
    return b, None


# ---------------------------------------------------------------- main

def fmt_secs(s):
    return "" if s is None else (f"{s:.3f}" if s < 10 else f"{s:.1f}")


def describe_diff(d):
    if not d or "mine" not in d:
        return json.dumps(d)
    a, b = d["mine"], d["ref"]
    return (f"trade #{d['index'] + 1} is a {a['side']} at ts {a['ts']} (close {a['price']}) where the exact "
            f"rules {b['side']} at ts {b['ts']} (close {b['price']}): a float tie flip of the SMA comparison")


def fmt_ratio(r):
    if r is None:
        return ""
    return f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x" if r < 10 else f"{r:,.0f}x"


def fmt_int(x):
    return "" if x is None else f"{x:,.0f}"


def main():
    os.makedirs(OUT, exist_ok=True)
    os.environ["NANOTRADER_DATA_DIR"] = DATA_DIR
    started = time.perf_counter()
    info = machine_info()
    print(f"machine: {info.get('nproc')} cpus, {info.get('cpu')}, python {info['python']}, "
          f"{info['packages']}", file=sys.stderr, flush=True)
    bars_1m = ensure_bars(1_000_000, "bars_1m.csv")
    with_10m = os.environ.get("SKIP_10M") != "1"
    bars_10m = ensure_bars(10_000_000, "bars_10m.csv") if with_10m else None

    def log(msg):
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    log("known answers")
    verification = verify_seed(bars_1m)
    for v in verification:
        log(f"  {v['case']}: trades {v['trades']}/{v['ref_trades']}, lists equal {v['trade_lists_equal']}, "
            f"cash {v['cash']!r} vs {v['ref_cash']} (rel {v['cash_rel_diff']:.1e}) -> {'OK' if v['ok'] else 'DIFFERS'}")

    rows = []      # the table
    raw = {}       # every run's figures

    def row(tool, task, bars, secs, kind, rss=None, ratio=None, note="", checks=""):
        bps = bars / secs if (bars and secs) else None
        rows.append({"tool": tool, "task": task, "bars": bars, "secs": secs, "kind": kind,
                     "bars_per_s": bps, "peak_rss_mib": rss, "ratio": ratio, "note": note,
                     "checks": checks})

    def na(tool, task, bars, err):
        rows.append({"tool": tool, "task": task, "bars": bars, "secs": None, "kind": "", "bars_per_s": None,
                     "peak_rss_mib": None, "ratio": None, "note": f"n/a: {err}", "checks": ""})
        log(f"  {tool} {task}: n/a: {err}")

    seed_script = os.path.join(HERE, "seed_pandas_backtest.py")

    # a. seed pandas logic, 1M bars, CSV -> trades
    log("seed pandas, 1M bars")
    r = repeat([PY, seed_script, bars_1m])
    raw["seed_1m"] = [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]
    s_wall = med([w for w, _, _ in r])
    s_load = med([d["load_secs"] for _, _, d in r])
    s_comp = med([d["compute_secs"] for _, _, d in r])
    s_tot = med([d["total_secs"] for _, _, d in r])
    s_rss = max(m for _, m, _ in r if m is not None) if TIME_V or r[0][1] else None
    seed_trades_1m = r[0][2]["trades"]
    row("seed pandas", "CSV -> trades, whole process (incl. Python start + imports)", 1_000_000, s_wall,
        "wall", s_rss, 1.0, checks=f"{seed_trades_1m} trades")
    row("seed pandas", "CSV -> trades, in-process (read_csv + compute)", 1_000_000, s_tot, "total", s_rss, 1.0)
    row("seed pandas", "load (pd.read_csv)", 1_000_000, s_load, "load", None, 1.0)
    row("seed pandas", "compute (rolling SMAs, signal, diff, trade loop)", 1_000_000, s_comp, "compute",
        None, 1.0)
    base = {"wall": 1_000_000 / s_wall, "total": 1_000_000 / s_tot, "load": 1_000_000 / s_load,
            "compute": 1_000_000 / s_comp}

    # b. seed pandas compute only, 10M bars
    base10 = base10_wall = None
    if with_10m:
        log("seed pandas, 10M bars")
        r = repeat([PY, seed_script, bars_10m])
        raw["seed_10m"] = [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]
        c10 = med([d["compute_secs"] for _, _, d in r])
        l10 = med([d["load_secs"] for _, _, d in r])
        rss10 = max((m for _, m, _ in r if m is not None), default=None)
        row("seed pandas", "compute only (in memory; load excluded)", 10_000_000, c10, "compute", rss10, 1.0,
            note=f"its read_csv took {l10:.2f} s", checks=f"{r[0][2]['trades']} trades")
        base10 = 10_000_000 / c10
        base10_wall = 10_000_000 / med([w for w, _, _ in r])
        row("seed pandas", "CSV -> trades, whole process", 10_000_000, 10_000_000 / base10_wall, "wall", rss10, 1.0)

    # c. vectorbt
    log("vectorbt, 1M bars")
    try:
        # vectorbt's numba functions are cached on disk (cache=True, in site-packages): one run with
        # an empty NUMBA_CACHE_DIR gives the cold first call; the timed runs then use the warm cache.
        with tempfile.TemporaryDirectory() as nc:
            _, _, cold = measure([PY, os.path.abspath(__file__), "_vbt", bars_1m], env={"NUMBA_CACHE_DIR": nc})
        raw["vectorbt_cold_jit"] = cold
        r = repeat([PY, os.path.abspath(__file__), "_vbt", bars_1m])
        raw["vectorbt_1m"] = [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]
        vc = med([d["compute_secs"] for _, _, d in r])
        vf = med([d["first_call_secs"] for _, _, d in r])
        vi = med([d["import_secs"] for _, _, d in r])
        vw = med([w for w, _, _ in r])
        vrss = max((m for _, m, _ in r if m is not None), default=None)
        d0 = r[0][2]
        row("vectorbt", "Portfolio.from_signals, MA 10/20 crossover, compute (JIT warm)", 1_000_000, vc,
            "compute", vrss, (1_000_000 / vc) / base["compute"],
            note=f"first call on 2,000 bars: {cold['first_call_secs']:.1f} s with numba compiling (empty cache), "
                 f"{vf:.1f} s from numba's on-disk cache; import {vi:.1f} s",
            checks=f"{d0['orders']} orders")
        row("vectorbt", "CSV -> trades, whole process (import, read_csv, first call, compute; numba cache warm)",
            1_000_000, vw, "wall", vrss, (1_000_000 / vw) / base["wall"])
    except RunError as e:
        na("vectorbt", "Portfolio.from_signals SMA 10/20", 1_000_000, e)

    # d. backtesting.py: probe on 20k bars, then as many bars as fit in the cap
    log("backtesting.py")
    me = os.path.abspath(__file__)
    try:
        probe_n = 20_000
        w, m, d = measure([PY, me, "_bt", bars_1m, str(probe_n), "fractional"], timeout=BT_CAP)
        per_bar = d["compute_secs"] / probe_n
        n = 1_000_000
        if per_bar * n > BT_CAP * 0.6:          # bt.run() may grow faster than linearly: margin
            n = max(probe_n, int(BT_CAP * 0.4 / per_bar) // 10_000 * 10_000)
        log(f"  probe {probe_n} bars: {d['compute_secs']:.2f} s -> {n:,} bars per run")
        raw["backtesting_py_probe"] = {"bars": probe_n, "wall_secs": w, "rss_mib": m, **d}
        for variant, task, extra in (
                ("whole", "SmaCross 10/20 (README example: long/short, whole BTC), Backtest.run()", []),
                ("fractional", "same SmaCross in FractionalBacktest (satoshi units), Backtest.run()",
                 ["fractional"])):
            r = repeat([PY, me, "_bt", bars_1m, str(n)] + extra, timeout=BT_CAP * 1.5)
            raw[f"backtesting_py_{variant}"] = [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]
            bc = med([d["compute_secs"] for _, _, d in r])
            bw = med([w for w, _, _ in r])
            brss = max((m for _, m, _ in r if m is not None), default=None)
            note = f"whole process {bw:.1f} s"
            if n != 1_000_000:
                note += (f"; run on {n:,} bars (1M would exceed the {BT_CAP:.0f} s cap): "
                         f"1M extrapolated ~{1_000_000 * bc / n:.0f} s")
            if variant == "whole":
                note += "; buys whole BTC, so it stops trading once equity < 1 BTC"
            row("backtesting.py", task, n, bc, "compute", brss, (n / bc) / base["compute"], note=note,
                checks=f"{r[0][2]['trades']} trades")
    except RunError as e:
        na("backtesting.py", "SmaCross 10/20", 1_000_000, e)

    # e. nanotrader
    log("nanotrader")
    nbin, nerr = nanotrader_bin()
    raw["nanotrader_bin"] = nbin

    def nt_rows(path, bars, label):
        # cache off: CSV -> trades
        try:
            shutil.rmtree(CACHE_DIR, ignore_errors=True)
            r = repeat([nbin, "backtest", "--data", path, "--preset", "seed", "--cache", "off", "--json"])
            raw[f"nanotrader_{label}_cache_off"] = [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]
            nw = med([w for w, _, _ in r])
            nl = med([get(d, "timings", "load_secs") for _, _, d in r])
            nc = med([get(d, "timings", "compute_secs") for _, _, d in r])
            nrss = max((m for _, m, _ in r if m is not None), default=None)
            fills = get(r[0][2], "fills")
            bw = base["wall"] if bars == 1_000_000 else base10_wall
            row("nanotrader", "CSV -> trades, whole process (--cache off)", bars, nw, "wall", nrss,
                (bars / nw) / bw if bw else None, checks=f"{fills} fills" + (
                    "" if bars != 1_000_000 or fills == seed_trades_1m else f" (seed: {seed_trades_1m})"))
            if bars == 1_000_000:
                if nl:
                    row("nanotrader", "load (CSV parse, --cache off)", bars, nl, "load", None,
                        (bars / nl) / base["load"])
            if nc:
                b = base["compute"] if bars == 1_000_000 else base10
                row("nanotrader", "compute (in memory)", bars, nc, "compute", None,
                    (bars / nc) / b if b else None)
        except RunError as e:
            na("nanotrader", "CSV -> trades (--cache off)", bars, e)
        # binary cache: the first run writes it (under the data dir), the next ones read it
        try:
            w1, m1, d1 = measure([nbin, "backtest", "--data", path, "--preset", "seed", "--json"])
            ntb = newest_cache() or ""
            r = repeat([nbin, "backtest", "--data", path, "--preset", "seed", "--json"])
            raw[f"nanotrader_{label}_cache"] = {"first_writes_cache": {"wall_secs": w1, "rss_mib": m1, **d1},
                                                "runs": [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]}
            nw = med([w for w, _, _ in r])
            nrss = max((m for _, m, _ in r if m is not None), default=None)
            row("nanotrader", "bars from .ntbars cache, whole process", bars, nw, "wall", nrss,
                (bars / nw) / (base["wall"] if bars == 1_000_000 else base10_wall) if base10_wall or bars == 1_000_000 else None,
                checks=f"{get(r[0][2], 'fills')} fills; loaded from {get(r[0][2], 'data', 'loaded_from')}",
                note=f"first run (CSV + writing the cache) {w1:.2f} s; cache "
                     f"{os.path.getsize(ntb) / 2**20:.0f} MiB" if os.path.exists(ntb) else
                     f"first run {w1:.2f} s; no cache file found")
        except RunError as e:
            na("nanotrader", "bars from .ntbars cache", bars, e)

    def interleaved_rows(path, what):
        """The headline ratios again, each round timing seed pandas and then nanotrader from the CSV and
        from the cache, so that the VM's speed, which drifts over minutes, is the same for both sides
        of each ratio. The figure is the median of the rounds' ratios."""
        seed_cmd = [PY, seed_script, path]
        nt_cmd = [nbin, "backtest", "--data", path, "--preset", "seed", "--json"]
        try:
            measure(nt_cmd, rss=False)           # makes sure the cache exists
            rounds = []
            for _ in range(ROUNDS):
                seed = measure(seed_cmd, rss=False)[0]
                csv = med([measure(nt_cmd + ["--cache", "off"], rss=False)[0] for _ in range(5)])
                cache = med([measure(nt_cmd, rss=False)[0] for _ in range(5)])
                rounds.append({"seed_wall_secs": seed, "csv_wall_secs": csv, "cache_wall_secs": cache})
            raw["interleaved" + what.replace(", prices with ", "_")] = rounds
            for key, task in (("csv_wall_secs", "CSV -> trades, whole process (--cache off)"),
                              ("cache_wall_secs", "bars from .ntbars cache, whole process")):
                ratios = sorted(r["seed_wall_secs"] / r[key] for r in rounds)
                row("nanotrader", f"{task}{what}, interleaved with seed pandas", 1_000_000,
                    med([r[key] for r in rounds]), "wall", None, med(ratios),
                    note=f"{ROUNDS} rounds (seed pandas once, nanotrader 5 times each); ratios per round "
                         f"{ratios[0]:.0f}x..{ratios[-1]:.0f}x; seed pandas median "
                         f"{med([r['seed_wall_secs'] for r in rounds]):.3f} s")
        except RunError as e:
            na("nanotrader", f"interleaved ratios{what}", 1_000_000, e)

    if nerr:
        for task, bars in (("CSV -> trades, whole process (--cache off)", 1_000_000),
                           ("bars from .ntbars cache, whole process", 1_000_000),
                           ("sweep short 5..50:5 x long 52..250:2, whole process", 1_000_000),
                           ("compute (in memory)", 10_000_000 if with_10m else None)):
            if bars:
                na("nanotrader", task, bars, nerr)
        raw["nanotrader_error"] = nerr
    else:
        log("  nanotrader, 1M bars")
        nt_rows(bars_1m, 1_000_000, "1m")
        # The FTX month has whole-dollar prices; real exchange data mostly has cents, which cost
        # a CSV parser a second number per price. The same comparison on such a file:
        log("  prices with cents: seed pandas and nanotrader, 1M bars")
        try:
            cents = ensure_bars(1_000_000, "bars_1m_cents.csv",
                                os.path.join(SHARED, "data", "btcusd_1m_20180404_20180406.csv"))
            r = repeat([PY, seed_script, cents])
            raw["seed_1m_cents"] = [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]
            c_wall = med([w for w, _, _ in r])
            row("seed pandas", "CSV -> trades, whole process, prices with cents (`bars_1m_cents.csv`)", 1_000_000,
                c_wall, "wall", max((m for _, m, _ in r if m is not None), default=None), 1.0,
                checks=f"{r[0][2]['trades']} trades")
            for args, label, task in (
                (["--cache", "off"], "cache_off", "CSV -> trades, whole process (--cache off), prices with cents"),
                ([], "cache", "bars from .ntbars cache, whole process, prices with cents"),
            ):
                cmd = [nbin, "backtest", "--data", cents, "--preset", "seed", "--json"] + args
                if not args:
                    measure(cmd)                 # writes the cache
                r = repeat(cmd)
                raw[f"nanotrader_1m_cents_{label}"] = [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]
                nw = med([w for w, _, _ in r])
                row("nanotrader", task, 1_000_000, nw, "wall", max((m for _, m, _ in r if m is not None), default=None),
                    c_wall / nw, checks=f"{get(r[0][2], 'fills')} fills")
        except (RunError, subprocess.CalledProcessError, OSError) as e:
            na("nanotrader", "prices with cents", 1_000_000, e)
        log("  nanotrader sweep, 1M bars")
        try:
            r = repeat([nbin, "backtest", "--data", bars_1m, "--short", "5..50:5", "--long", "52..250:2",
                        "--json", "--top", "5"], timeout=900)
            raw["nanotrader_1m_sweep"] = [{"wall_secs": w, "rss_mib": m, **d} for w, m, d in r]
            sw = med([w for w, _, _ in r])
            combos = get(r[0][2], "combinations")
            srss = max((m for _, m, _ in r if m is not None), default=None)
            if combos:
                est_seed = s_load + combos * s_comp   # load once, compute per combination
                row("nanotrader", f"sweep short 5..50:5 x long 52..250:2, whole process", 1_000_000 * combos,
                    sw, "wall", srss, est_seed / sw, checks="loaded from " + str(get(r[0][2], "data", "loaded_from")
                                                    or get(r[0][2], "best", "data", "loaded_from")),
                    note=f"{combos} combinations; bars = 1M x combinations; ratio vs seed pandas estimated "
                         f"as one read_csv + {combos} x its compute = {est_seed:.0f} s")
            else:
                row("nanotrader", "sweep (no \"combinations\" in JSON)", 1_000_000, sw, "wall", srss)
        except RunError as e:
            na("nanotrader", "sweep 5..50:5 x 52..250:2", 1_000_000, e)
        log("  headline ratios, interleaved with seed pandas")
        interleaved_rows(bars_1m, "")
        if os.path.exists(os.path.join(OUT, "bars_1m_cents.csv")):
            interleaved_rows(os.path.join(OUT, "bars_1m_cents.csv"), ", prices with cents")
        if with_10m:
            log("  nanotrader, 10M bars")
            nt_rows(bars_10m, 10_000_000, "10m")
        try:
            info["nanotrader_version"] = subprocess.run([nbin, "--version"], capture_output=True,
                                                        text=True).stdout.strip()
        except OSError:
            pass

    total = time.perf_counter() - started
    info["script_wall_secs"] = round(total, 1)
    try:
        info["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    info["runs_per_figure"] = RUNS
    info["runs_per_short_figure"] = SHORT_RUNS
    info["rss_source"] = "/usr/bin/time -v, in one extra run" if TIME_V else "not measured: no /usr/bin/time"

    # ---- report
    lines = [
        "# Backtest comparison",
        "",
        f"Machine: {info.get('nproc')} CPUs ({info.get('cpu')}), {info.get('mem_gib')} GiB; "
        f"{info['platform']}; Python {info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["packages"].items())
        + (f"; {info['nanotrader_version']}" if info.get("nanotrader_version") else "")
        + f". {info['date']}, load average at start {' '.join(info.get('loadavg_at_start', []))}.",
        "",
        f"Median of {RUNS} runs ({SHORT_RUNS} when a run takes under {SHORT_SECS} s), each in a fresh process (a blocking wait, so the times are not rounded); peak RSS "
        f"from {info['rss_source']}. Bars: real 1-minute bars (`bench/make_bars.py`). "
        "`wall` = the whole process (start-up included), `compute` = in memory, load excluded. "
        "Ratio = bars/s against seed pandas for the same kind of figure (higher is faster).",
        "",
        "| tool | task | bars | seconds | kind | bars/s | peak RSS MiB | vs seed pandas | check | note |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for x in rows:
        lines.append(
            f"| {x['tool']} | {x['task']} | {fmt_int(x['bars'])} | {fmt_secs(x['secs'])} | {x['kind']} | "
            f"{fmt_int(x['bars_per_s'])} | {fmt_int(x['peak_rss_mib'])} | "
            f"{fmt_ratio(x['ratio'])} | "
            f"{x['checks']} | {x['note']} |")
    lines += ["", "Known answers (`bench/seed_pandas_backtest.py` against `../shared/reference/seed_trades.py`, "
              "exact decimals):", ""]
    for v in verification:
        lines.append(f"- {v['case']}: {v['rows']:,} rows, {v['trades']} trades (exact: {v['ref_trades']}), "
                     f"trade lists {'equal' if v['trade_lists_equal'] else 'DIFFER: ' + describe_diff(v['first_diff'])}; "
                     f"final cash {v['cash']!r} vs {v['ref_cash']} (relative {v['cash_rel_diff']:.1e}); "
                     f"position {v['position']!r} vs {v['ref_position']} -> **{'OK' if v['ok'] else 'DIFFERS'}**")
    lines += ["", f"Script wall time: {total:.0f} s; load average at the end "
              f"{' '.join(info.get('loadavg_at_end', []))} (above ~0.5 on 2 CPUs, other work shared the machine)."]
    md = "\n".join(lines) + "\n"
    print(md)
    with open(os.path.join(OUT, "backtest_compare.md"), "w") as f:
        f.write(md)
    with open(os.path.join(OUT, "backtest_compare.json"), "w") as f:
        json.dump({"machine": info, "table": rows, "verification": verification, "raw": raw}, f, indent=1,
                  default=str)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_vbt":
        worker_vbt(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "_bt":
        worker_bt(sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == "fractional")
    else:
        main()
