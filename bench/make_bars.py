#!/usr/bin/env python3
"""Writes N one-minute bars of real data: the FTX BTC-PERP month from ../shared/data repeated,
each copy shifted forward in time so timestamps stay unique and ascending (no gaps inside a copy).
With --offset-secs the times sit that many seconds past the minute; with --drop a seeded random
share of the minutes is left out (missing minutes, as real exports have).

Usage: make_bars.py N OUT.csv [--source FILE] [--offset-secs S] [--drop FRACTION] [--seed N]
"""
import argparse
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_NAME = os.path.join("shared", "data", "btcperp_ftx_1m_20211231_20220201.csv")


def default_source():
    """`shared/data` beside the checkout, or beside any folder above it (a worktree in wt/NAME)."""
    folder = os.path.dirname(HERE)
    while True:
        candidate = os.path.join(os.path.dirname(folder), SOURCE_NAME)
        if os.path.exists(candidate) or os.path.dirname(folder) == folder:
            return candidate
        folder = os.path.dirname(folder)


DEFAULT_SOURCE = default_source()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--source", default=DEFAULT_SOURCE)
    ap.add_argument("--offset-secs", type=int, default=0)
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    with open(a.source) as f:
        header = f.readline()
        rows = [line.rstrip("\n").split(",", 1) for line in f if line.strip()]
    first, last = int(rows[0][0]), int(rows[-1][0])
    span = last - first + 60
    written = 0
    with open(a.out, "w") as out:
        out.write(header)
        copy = 0
        while written < a.n:
            shift = copy * span
            for ts, rest in rows:
                if written == a.n:
                    break
                if a.drop and rng.random() < a.drop:
                    continue
                out.write(f"{int(ts) + shift + a.offset_secs},{rest}\n")
                written += 1
            copy += 1
    print(f"{a.out}: {written} bars")


if __name__ == "__main__":
    main()
