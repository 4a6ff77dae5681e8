#!/usr/bin/env python3
"""Long-run memory of `nanotrader run --speed max` with the dashboard connected (issue 6, point 7).

For each scenario and run: starts
  nanotrader --data-dir TMP -q run SOURCE... --speed max --listen 127.0.0.1:PORT --stay
connects one dashboard WebSocket client (/ws, reads and parses every frame) for the whole run,
samples VmRSS and VmHWM from /proc/PID/status every SAMPLE_MS, and polls /metrics (keep-alive
HTTP) for the run's progress (nanotrader_bars_closed_total, nanotrader_events_total). RSS at 1 %,
50 % and 100 % of the run is the RSS sample nearest in time to the first /metrics answer showing
at least that share of the run's bars. The process is stopped (SIGINT, then SIGKILL) once the
run has completed, and on any error or exit.

Usage: long_run_memory.py --bin BIN --data-root DIR [--runs 3] [--scenarios day,month,sim]
       [--sim-tick-secs 0.005] [--sample-ms 2] [--out FILE.md] [--json FILE.json]
"""
import argparse
import asyncio
import atexit
import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import shutil

import websockets

CHILDREN = []


def _cleanup():
    for p in CHILDREN:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_cleanup)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, lambda s, f: sys.exit(128 + s))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_status(pid):
    rss = hwm = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


class Run:
    def __init__(self, args, name, cmd_tail):
        self.args, self.name, self.cmd_tail = args, name, cmd_tail
        self.rss = []        # (t, rss_kib, hwm_kib)
        self.progress = []   # (t, bars, events)
        self.stdout = []
        self.done = threading.Event()      # run completed (summary printed or status completed)
        self.stop = threading.Event()      # stop sampling
        self.ws = dict(frames=0, snapshots=0, deltas=0, bytes=0, seq_gaps=0, connected_at=None,
                       first_bars=None, last_bars=None, completed=False, error=None,
                       closed_bars_events=0)
        self.summary_bars = None
        self.engine_secs = None

    # --- threads -------------------------------------------------------------------------
    def sample_rss(self, pid):
        period = self.args.sample_ms / 1e3
        while not self.stop.is_set():
            try:
                rss, hwm = read_status(pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            self.rss.append((time.monotonic(), rss, hwm))
            time.sleep(period)

    def poll_metrics(self, port):
        conn = None
        pat_b = re.compile(r"^nanotrader_bars_closed_total\{[^}]*\} (\S+)$", re.M)
        pat_e = re.compile(r"^nanotrader_events_total\{[^}]*\} (\S+)$", re.M)
        period = self.args.poll_ms / 1e3
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/metrics")
                body = conn.getresponse().read().decode()
                t = time.monotonic()
                b, e = pat_b.search(body), pat_e.search(body)
                if b and e:
                    self.progress.append((t, int(float(b.group(1))), int(float(e.group(1)))))
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.001)
                continue
            time.sleep(period)

    def read_stdout(self, proc):
        for line in proc.stdout:
            self.stdout.append((time.monotonic(), line.rstrip("\n")))
            m = re.search(r"this session\s+(\d+) bars in ([0-9.]+) s", line)
            if m:
                self.summary_bars, self.engine_secs = int(m.group(1)), float(m.group(2))
                self.done.set()

    def ws_client(self, port):
        async def main():
            url = f"ws://127.0.0.1:{port}/ws"
            ws = None
            while ws is None and not self.stop.is_set():
                try:
                    ws = await websockets.connect(url, subprotocols=["nanotrader.v1"],
                                                  max_size=None, ping_interval=None)
                except (OSError, websockets.exceptions.WebSocketException):
                    await asyncio.sleep(0.001)
            if ws is None:
                return
            self.ws["connected_at"] = time.monotonic()
            seq = None
            try:
                while not self.stop.is_set():
                    try:
                        msg = await asyncio.wait_for(ws.recv(), timeout=0.2)
                    except asyncio.TimeoutError:
                        continue
                    self.ws["frames"] += 1
                    self.ws["bytes"] += len(msg)
                    frame = json.loads(msg)
                    status = None
                    if frame["type"] == "snapshot":
                        self.ws["snapshots"] += 1
                        status = frame.get("status")
                    else:
                        self.ws["deltas"] += 1
                        if seq is not None and frame["seq"] != seq + 1:
                            self.ws["seq_gaps"] += 1
                        for ev in frame.get("events", []):
                            if ev.get("k") == "status":
                                status = ev["status"]
                            elif ev.get("k") == "bar" and ev.get("closed"):
                                self.ws["closed_bars_events"] += 1
                    seq = frame["seq"]
                    if status is not None:
                        if self.ws["first_bars"] is None:
                            self.ws["first_bars"] = status.get("bars")
                        self.ws["last_bars"] = status.get("bars")
                        if status.get("run") == "completed":
                            self.ws["completed"] = True
                            self.done.set()
            except websockets.exceptions.ConnectionClosed:
                pass
            finally:
                await ws.close()

        try:
            asyncio.run(main())
        except Exception as e:  # reported, never silent
            self.ws["error"] = repr(e)

    # --- the run --------------------------------------------------------------------------
    def execute(self):
        tmp = tempfile.mkdtemp(prefix="nt-mem-")
        port = free_port()
        cmd = [self.args.bin, "--data-dir", os.path.join(tmp, "store"), "-q", "run", *self.cmd_tail,
               "--speed", "max", "--listen", f"127.0.0.1:{port}", "--stay"]
        self.cmd = cmd
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        CHILDREN.append(proc)
        threads = [threading.Thread(target=f, args=(a,), daemon=True) for f, a in (
            (self.sample_rss, proc.pid), (self.poll_metrics, port), (self.read_stdout, proc),
            (self.ws_client, port))]
        for th in threads:
            th.start()
        try:
            if not self.done.wait(self.args.timeout):
                raise RuntimeError(f"{self.name}: no completion within {self.args.timeout} s; "
                                   f"stderr: {proc.stderr.read() if proc.poll() is not None else ''}")
            self.t_done = time.monotonic()
            # Let the samplers, the poller and the client see the final state (--stay keeps it up).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                    self.ws["completed"] and self.summary_bars is not None and self.progress
                    and self.progress[-1][1] >= self.summary_bars):
                time.sleep(0.01)
            time.sleep(0.3)
        finally:
            self.stop.set()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for th in threads:
                th.join(5)
            self.stderr = proc.stderr.read()
            shutil.rmtree(tmp, ignore_errors=True)
        self.t0 = t0
        return self.analyse()

    def analyse(self):
        total = self.summary_bars or (self.progress[-1][1] if self.progress else 0)
        # end of the run: first /metrics answer with every bar, else the summary line
        t_end = next((t for t, b, _ in self.progress if b >= total), self.t_done)
        out = dict(name=self.name, bars=total, events=max((e for *_, e in self.progress), default=0),
                   wall_s=t_end - self.t0, engine_s=self.engine_secs,
                   rss_samples=len(self.rss), progress_samples=len(self.progress),
                   peak_kib=max(h for *_, h in self.rss), ws=dict(self.ws), points={})
        if self.ws["connected_at"] is not None:
            out["ws"]["connected_after_s"] = self.ws["connected_at"] - self.t0
            del out["ws"]["connected_at"]
        for pct in (1, 50, 100):
            need = max(1, math.ceil(total * pct / 100))
            hit = next(((t, b, e) for t, b, e in self.progress if b >= need), None)
            if hit is None:
                out["points"][pct] = None
                continue
            t, b, e = hit
            rss = min(self.rss, key=lambda s: abs(s[0] - t))
            out["points"][pct] = dict(rss_kib=rss[1], hwm_kib=rss[2], bars=b, events=e,
                                      at_s=t - self.t0, sample_gap_ms=(rss[0] - t) * 1e3)
        vals = [p["rss_kib"] for p in out["points"].values() if p]
        out["spread"] = (max(vals) - min(vals)) / min(vals) if len(vals) == 3 else None
        # RSS over the run by tenths of progress (growth check), from the samples themselves
        curve = []
        for tenth in range(0, 11):
            need = max(1, math.ceil(total * tenth / 10))
            hit = next((t for t, b, _ in self.progress if b >= need), None)
            if hit is not None:
                curve.append((tenth * 10, min(self.rss, key=lambda s: abs(s[0] - hit))[1]))
        out["curve"] = curve
        in_run = [r for t, r, _ in self.rss if out["points"].get(1) and
                  self.t0 + out["points"][1]["at_s"] <= t <= t_end]
        out["rss_in_run_min_max_kib"] = (min(in_run), max(in_run)) if in_run else None
        out["rss_before_start_kib"] = self.rss[0][1] if self.rss else None
        return out


def mib(kib):
    return f"{kib / 1024:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scenarios", default="day,month,sim")
    ap.add_argument("--sim-tick-secs", default="0.005")
    ap.add_argument("--sample-ms", type=float, default=2.0)
    ap.add_argument("--poll-ms", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out")
    ap.add_argument("--json")
    args = ap.parse_args()
    d = args.data_root
    scenarios = {
        "day": ("one real day of 1-minute bars: Coinbase BTC-USD 2017-12-17 00:00..23:59 UTC "
                "(btcusd_1m_20171217.csv, 1,440 bars)",
                ["--source", "replay", "--data", os.path.join(d, "btcusd_1m_20171217.csv")]),
        "month": ("31 back-to-back real days of 1-minute bars: FTX BTC-PERP 2021-12-31 23:01 .. "
                  "2022-02-01 05:31 UTC (btcperp_ftx_1m_20211231_20220201.csv, 45,031 bars)",
                  ["--source", "replay", "--data",
                   os.path.join(d, "btcperp_ftx_1m_20211231_20220201.csv")]),
        "sim": (f"24 h of seeded simulated trades (--source sim --sim-duration 24h --sim-seed 1 "
                f"--sim-tick-secs {args.sim_tick_secs})",
                ["--source", "sim", "--sim-duration", "24h", "--sim-seed", "1",
                 "--sim-tick-secs", args.sim_tick_secs]),
    }
    results = []
    for key in args.scenarios.split(","):
        desc, tail = scenarios[key]
        for i in range(1, args.runs + 1):
            r = Run(args, key, tail).execute()
            r["run"], r["desc"] = i, desc
            p = r["points"]
            fmt = lambda x: mib(x["rss_kib"]) if x else "-"
            sp = f"{r['spread'] * 100:.1f}%" if r["spread"] is not None else "-"
            print(f"{key} run {i}: bars {r['bars']} events {r['events']} wall {r['wall_s']:.3f} s "
                  f"(engine {r['engine_s']} s) RSS MiB 1%/50%/100% {fmt(p[1])}/{fmt(p[50])}/"
                  f"{fmt(p[100])} spread {sp} peak {mib(r['peak_kib'])} frames {r['ws']['frames']} "
                  f"samples {r['rss_samples']}/{r['progress_samples']}", flush=True)
            results.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    lines = []
    for key in args.scenarios.split(","):
        rs = [r for r in results if r["name"] == key]
        lines.append(f"\n### {key}: {rs[0]['desc']}\n")
        lines.append("| run | bars | events (bars or trades) | wall s (engine s) | RSS MiB at 1 % | at 50 % | at 100 % | spread | peak (VmHWM) MiB | frames (snapshots / deltas) | client connected at bar | RSS samples / progress samples |")
        lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rs:
            p = r["points"]
            cell = lambda x: f"{mib(x['rss_kib'])} (bar {x['bars']})" if x else "-"
            sp = f"{r['spread'] * 100:.1f} %" if r["spread"] is not None else "-"
            w = r["ws"]
            lines.append(f"| {r['run']} | {r['bars']:,} | {r['events']:,} | {r['wall_s']:.3f} ({r['engine_s']}) | "
                         f"{cell(p[1])} | {cell(p[50])} | {cell(p[100])} | {sp} | {mib(r['peak_kib'])} | "
                         f"{w['frames']} ({w['snapshots']} / {w['deltas']}) | {w['first_bars']} | "
                         f"{r['rss_samples']} / {r['progress_samples']} |")
        for r in rs:
            lines.append(f"\nrun {r['run']} RSS MiB by progress %: " + ", ".join(
                f"{pc}: {mib(v)}" for pc, v in r["curve"]) +
                f"; before the first bar {mib(r['rss_before_start_kib'])}; seq gaps {r['ws']['seq_gaps']}; "
                f"client error {r['ws']['error']}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
