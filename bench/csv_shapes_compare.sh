#!/usr/bin/env bash
# Issue 16, point 3: CSV -> trades on a 2M-bar file off the minute with missing minutes, against
# the seed's pandas logic (interleaved rounds), and bars/s per file shape. Runs in its own venv
# (bench/.venv, pinned pandas from requirements-seed.txt).
# Output: bench/out/csv_shapes_compare.md and .json.
# Env: NANOTRADER_BIN (default target/release/nanotrader), ROUNDS (7), RUNS_PER_ROUND (5), RUNS (5).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --only-binary=:all: -r requirements-seed.txt
mkdir -p out
.venv/bin/python csv_shapes_compare.py
