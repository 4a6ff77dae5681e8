#!/usr/bin/env python3
"""Ten bots through simulated 24-hour days on NATS JetStream, their memory sampled (issue 19,
point 6; BENCHMARKS.md section 14).

A stream of its own is made; BOTS `nanotrader run --source nats` bots (different strategies, each
its own data directory, dashboard on a free loopback port unless --no-web) subscribe; then day
after day the `feed_day` example publishes 1,440 one-minute bars and their trades (as `nanotrader
feed` does: each message acknowledged before the next), and the next day starts once every bot
has stored the day (runs.bars_seen in its SQLite store): as fast as the bots take them. VmRSS of
every bot is read from /proc every --sample-secs. Prints and writes a markdown table: RSS of each
bot before the first bar, after day 1, the middle day and the last day, and its maximum.
Every child is stopped on exit (SIGINT, then SIGKILL), and the stream deleted; the bots' data
directories are removed after a complete run (kept, with their logs, when it fails).
"""

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

STRATEGIES = [
    ["--strategy", "sma-cross", "--short", "10", "--long", "20"],
    ["--strategy", "sma-cross", "--short", "5", "--long", "50"],
    ["--strategy", "sma-cross", "--short", "20", "--long", "100"],
    ["--strategy", "sma-cross", "--short", "50", "--long", "200"],
    ["--strategy", "ema-cross", "--fast", "12", "--slow", "26"],
    ["--strategy", "ema-cross", "--fast", "5", "--slow", "35"],
    ["--strategy", "ema-cross", "--fast", "30", "--slow", "120"],
    ["--strategy", "rsi-threshold", "--rsi-period", "14"],
    ["--strategy", "rsi-threshold", "--rsi-period", "7", "--oversold", "20", "--overbought", "80"],
    ["--strategy", "rsi-threshold", "--rsi-period", "28", "--oversold", "40", "--overbought", "60"],
]
BARS_PER_DAY = 1440


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def bars_seen(data_dir):
    path = os.path.join(data_dir, "nanotrader.sqlite")
    if not os.path.exists(path):
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            row = con.execute("SELECT COALESCE(MAX(bars_seen), 0) FROM runs").fetchone()
        finally:
            con.close()
        return row[0]
    except sqlite3.Error:
        return 0


def pg_progress(url, bots):
    """The fewest bars any bot's run has stored, 0 until every bot has its run."""
    out = subprocess.run(["psql", "-X", "-A", "-t", "-d", url, "-c",
                          "SELECT count(*), COALESCE(min(bars_seen), 0) FROM runs"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return 0
    runs, least = (int(x) for x in out.stdout.strip().split("|"))
    return least if runs >= bots else 0


def label(args):
    words = args[1:]
    return words[0] + " " + "/".join(words[i] for i in range(2, len(words), 2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the nanotrader binary")
    ap.add_argument("--feed-day", required=True, help="the feed_day example binary")
    ap.add_argument("--bots", type=int, default=10)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--trades-per-bar", type=int, default=10)
    ap.add_argument("--sample-secs", type=float, default=2.0)
    ap.add_argument("--day-timeout", type=float, default=900.0)
    ap.add_argument("--no-web", action="store_true")
    ap.add_argument("--db-url", help="a fresh PostgreSQL database for every bot's runs (else a data directory each)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 1 <= args.bots <= len(STRATEGIES):
        sys.exit(f"--bots must be 1..{len(STRATEGIES)}")
    if args.days < 2:
        sys.exit("--days must be at least 2 (growth shows between days)")

    tag = f"soak{os.getpid()}{int(time.time())}"
    stream, prefix = tag.upper(), tag
    work = tempfile.mkdtemp(prefix="feed_soak_")
    load_start = open("/proc/loadavg").read().split()[:3]
    started = time.time()
    feed = [args.feed_day, stream, prefix]
    subprocess.run(feed + ["0", "0"], check=True, stdout=subprocess.DEVNULL)

    bots = []
    stop = threading.Event()
    samples = []  # (seconds since start, days done, [rss KiB per bot])
    days_done = [0]

    def sampler():
        while not stop.is_set():
            samples.append((time.time() - started, days_done[0], [rss_kib(b["proc"].pid) for b in bots]))
            stop.wait(args.sample_secs)

    try:
        for i in range(args.bots):
            data_dir = os.path.join(work, f"bot{i}")
            log = open(os.path.join(work, f"bot{i}.log"), "w")
            web = ["--no-web"] if args.no_web else ["--listen", "127.0.0.1:0"]
            store = ["--db-url", args.db_url] if args.db_url else []
            cmd = [args.bin, "--data-dir", data_dir] + store + ["run", "--source", "nats",
                   "--nats-stream", stream, "--nats-subject-prefix", prefix] + web + STRATEGIES[i]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            bots.append({"proc": proc, "dir": data_dir, "log": log.name, "name": label(STRATEGIES[i])})
        time.sleep(3)  # every bot subscribed and idle
        for b in bots:
            if b["proc"].poll() is not None:
                sys.exit(f"bot {b['name']} stopped at start:\n" + open(b["log"]).read())
        before = [rss_kib(b["proc"].pid) for b in bots]
        threading.Thread(target=sampler, daemon=True).start()
        after_day = []
        day_secs = []
        for day in range(args.days):
            t0 = time.time()
            subprocess.run(feed + [str(day), "1", str(args.trades_per_bar)], check=True, stdout=subprocess.DEVNULL)
            want = (day + 1) * BARS_PER_DAY
            deadline = time.time() + args.day_timeout
            while True:
                if args.db_url:
                    seen = [pg_progress(args.db_url, len(bots))]
                else:
                    seen = [bars_seen(b["dir"]) for b in bots]
                if min(seen) >= want:
                    break
                for b in bots:
                    if b["proc"].poll() is not None:
                        sys.exit(f"bot {b['name']} stopped on day {day + 1}:\n" + open(b["log"]).read()[-4000:])
                if time.time() > deadline:
                    sys.exit(f"day {day + 1}: bars stored per bot {seen} after {args.day_timeout} s (want {want})")
                time.sleep(0.2)
            days_done[0] = day + 1
            after_day.append([rss_kib(b["proc"].pid) for b in bots])
            day_secs.append(time.time() - t0)
            print(f"day {day + 1}/{args.days}: {time.time() - t0:.1f} s, RSS MiB "
                  + " ".join(f"{r / 1024:.1f}" for r in after_day[-1]), flush=True)
    finally:
        stop.set()
        for b in bots:
            if b["proc"].poll() is None:
                b["proc"].send_signal(signal.SIGINT)
        for b in bots:
            try:
                b["proc"].wait(timeout=30)
            except subprocess.TimeoutExpired:
                b["proc"].kill()
                b["proc"].wait()
        subprocess.run(feed + ["0", "-1"], stdout=subprocess.DEVNULL)

    load_end = open("/proc/loadavg").read().split()[:3]
    fills = ["-"] * len(bots)
    for i, b in enumerate(bots if not args.db_url else []):
        con = sqlite3.connect(f"file:{os.path.join(b['dir'], 'nanotrader.sqlite')}?mode=ro", uri=True)
        fills[i] = con.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        con.close()
    mid = (args.days - 1) // 2
    mib = lambda kib: f"{kib / 1024:.1f}"
    lines = [
        f"{args.bots} bots, {args.days} simulated days ({args.days * BARS_PER_DAY:,} one-minute bars, "
        f"{args.trades_per_bar} trades a bar), {'no dashboard' if args.no_web else 'dashboard on'}, "
        f"{'one PostgreSQL database' if args.db_url else 'a SQLite data directory each'}; "
        f"load average {' '.join(load_start)} at start, {' '.join(load_end)} at end; "
        f"{time.time() - started:.0f} s in all, a day took {min(day_secs):.1f}-{max(day_secs):.1f} s; "
        f"{len(samples)} samples every {args.sample_secs} s.",
        "",
        f"| bot | fills | RSS before the first bar MiB | after day 1 | after day {mid + 1} | after day {args.days} "
        f"| max sampled | end - day 1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, b in enumerate(bots):
        peak = max([(s[2][i] or 0) for s in samples] + [d[i] for d in after_day])
        growth = after_day[-1][i] - after_day[0][i]
        lines.append(f"| {b['name']} | {fills[i]} | {mib(before[i])} | {mib(after_day[0][i])} | "
                     f"{mib(after_day[mid][i])} | {mib(after_day[-1][i])} | {mib(peak)} | {growth / 1024:+.1f} |")
    text = "\n".join(lines)
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    with open(args.out.replace(".md", ".csv"), "w") as f:
        f.write("secs,days_done," + ",".join(f"bot{i}_rss_kib" for i in range(len(bots))) + "\n")
        for t, d, r in samples:
            f.write(f"{t:.1f},{d}," + ",".join(str(x or "") for x in r) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
