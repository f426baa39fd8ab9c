#!/usr/bin/env bash
# Installs what is missing, builds with -Werror and runs the whole test suite:
# - every ctest test (unit, process, the slow kill/rescale tests, and the
#   out-of-tree example built against a fresh install of this build);
# - the non-slow suite again under AddressSanitizer + UBSan;
# - the exchange, recovery and fault-injection tests under ThreadSanitizer;
# - clang-format over every source file;
# - the benchmark harness once at a tiny size (a smoke run: no timing is asserted).
# To keep the whole run near 20 minutes on 2 cores: the main build has no
# debug info and compiles the test executables at -O1 (the engine, its
# libraries and apps at -O2); the sanitizer builds use -O1 -g1, put UBSan on
# the engine's own targets only and leave the slow tests out.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
./scripts/setup.sh
start=$SECONDS
step() { echo "== $1 ($((SECONDS - start)) s so far)"; }

step "clang-format"
find engine operators connectors cli apps bench tests examples -name '*.cpp' -o -name '*.hpp' |
  xargs clang-format --dry-run --Werror

step "build (warnings are errors)"
cmake -S . -B build-ci -DENGINE_WERROR=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DENGINE_TEST_CXX_FLAGS=-O1 >/dev/null
cmake --build build-ci -j"$jobs"

step "ctest"
ctest --test-dir build-ci --output-on-failure -j"$jobs" --timeout 900

step "AddressSanitizer + UBSan: build"
# The process tests' own code needs no sanitizer: build-ci's test executables
# run the sanitized engine binary instead (ENGINE_TEST_BIN).
cmake -S . -B build-asan -DENGINE_WERROR=ON -DENGINE_ASAN=ON -DENGINE_SLOW_TESTS=OFF -DENGINE_PROCESS_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" >/dev/null
cmake --build build-asan -j"$jobs"
step "AddressSanitizer + UBSan: the non-slow suite"
# Peak memory is not what it measures under ASan (shadow memory): ManyFiles is left out.
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900 -LE slow
ENGINE_TEST_BIN="$PWD/build-asan/engine" \
  ctest --test-dir build-ci --output-on-failure -j"$jobs" --timeout 900 -L process -LE slow -E 'ManyFiles'
unset UBSAN_OPTIONS

step "ThreadSanitizer: build"
cmake -S . -B build-tsan -DENGINE_WERROR=ON -DENGINE_TSAN=ON -DENGINE_SLOW_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" >/dev/null
cmake --build build-tsan -j"$jobs" --target exchange_test recovery_test fault_injection_test
step "ThreadSanitizer: exchange, recovery and fault injection"
for t in exchange_test recovery_test fault_injection_test; do
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" ./build-tsan/tests/"$t"
done

step "benchmark harness, tiny smoke run"
python3 bench/harness.py --tiny --build-dir build-ci --strict

step "all tests passed"
