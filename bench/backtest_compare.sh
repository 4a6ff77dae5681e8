#!/usr/bin/env bash
# Backtest comparison: the seed's pandas logic, vectorbt, backtesting.py and `nanotrader backtest`
# on 1M (and 10M) real 1-minute bars. Runs in its own venv (bench/.venv-backtest, pinned packages
# from requirements-backtest.txt), so the project's toolchain is untouched.
# Output: bench/out/backtest_compare.md (table) and bench/out/backtest_compare.json (raw figures).
# Env: NANOTRADER_BIN (default target/release/nanotrader; built if missing unless NANOTRADER_BUILD=0),
#      RUNS (3), SHORT_RUNS (15), ROUNDS (7), BT_CAP_SECS (120), SKIP_10M=1.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
if [ ! -x .venv-backtest/bin/python ]; then
  python3 -m venv .venv-backtest
fi
.venv-backtest/bin/python -m pip install -q --only-binary=:all: -r requirements-backtest.txt
mkdir -p out
.venv-backtest/bin/python backtest_compare.py
