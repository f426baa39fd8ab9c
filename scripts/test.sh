#!/usr/bin/env bash
# Installs what is missing, builds with -Werror and runs the whole test suite:
# every ctest test (unit, process, slow kill/rescale tests), the exchange test
# again under ThreadSanitizer, and the benchmark harness once at a tiny size
# (a smoke run: no timing is asserted).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
./scripts/setup.sh

echo "== build (warnings are errors)"
cmake -S . -B build-ci -DENGINE_WERROR=ON >/dev/null
cmake --build build-ci -j"$jobs"

echo "== ctest"
ctest --test-dir build-ci --output-on-failure -j"$jobs" --timeout 900

echo "== exchange test under ThreadSanitizer"
cmake -S . -B build-tsan -DENGINE_WERROR=ON -DENGINE_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target exchange_test
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build-tsan/tests/exchange_test

echo "== benchmark harness, tiny smoke run"
python3 bench/harness.py --tiny --build-dir build-ci --strict

echo "== all tests passed"
