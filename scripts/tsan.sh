#!/usr/bin/env bash
# Builds the concurrency tests (CTest label `concurrency`: the test binaries that run threads, and
# zcperf, which test_zcperf drives with -P and a server) with clang's ThreadSanitizer and runs them.
# Any data race fails the test (halt_on_error); tests/tsan.supp lists only what TSan cannot see,
# each with the reason.
#   scripts/tsan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-tsan
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZCIO_WERROR=OFF -DZCIO_SANITIZE=thread \
      -DCMAKE_CXX_COMPILER=clang++ -DZCIO_BUILD_BENCH=OFF >/dev/null
targets=$(sed -n 's/^set(ZCIO_CONCURRENCY_TESTS \([^)]*\)).*$/\1/p' tests/CMakeLists.txt)
[ -n "$targets" ] || { echo "tsan.sh: no ZCIO_CONCURRENCY_TESTS in tests/CMakeLists.txt"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$dir" -j"$(nproc)" --target zcperf $targets
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4 suppressions=$PWD/tests/tsan.supp"
cd "$dir"
ctest --output-on-failure -j"$(nproc)" --timeout 600 -L concurrency
