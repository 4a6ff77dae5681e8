#!/usr/bin/env bash
# Crash safety at full count: tests/crash_safety.rs with 50 SIGKILLs per case (paced bar replay,
# full-speed bar replay over 2M bars, paced trades replay), release build. The counts CI uses are
# the test's defaults. Output: the test's progress lines (bars/fills stored at each kill).
# Env: KILLS (50), BARS (2000000: length of the full-speed replay).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
NANOTRADER_CRASH_KILLS="${KILLS:-50}" NANOTRADER_CRASH_BARS="${BARS:-2000000}" \
  cargo test --release --test crash_safety -- --nocapture --test-threads 1 2>&1 \
  | grep -E "kills, progress|^test |test result"
