#!/usr/bin/env bash
# Runs the seed per-tick benchmark in its own venv, so the project's toolchain is untouched.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -r requirements-seed.txt
mkdir -p out
start=$(date +%s)
.venv/bin/python seed_tick_cost.py | tee out/seed_tick_cost.md
echo "benchmark wall time: $(( $(date +%s) - start )) s" | tee -a out/seed_tick_cost.md
