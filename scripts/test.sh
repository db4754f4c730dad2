#!/usr/bin/env bash
# Builds zcio with warnings as errors and runs the whole test suite against the running kernel.
# As root, the namespace and zero-copy-into-the-sink tests run; otherwise they skip and say why.
#   scripts/test.sh            # build/ , RelWithDebInfo
#   SANITIZE=address,undefined scripts/test.sh   # the same suite under ASan + UBSan (clang;
#                                                # -Werror is the gcc build's job)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
if [ -n "${SANITIZE:-}" ]; then
  dir=build-san
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DZCIO_WERROR=OFF -DZCIO_SANITIZE="$SANITIZE" \
        -DCMAKE_CXX_COMPILER=clang++ -DZCIO_BUILD_BENCH=OFF >/dev/null
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  dir=build
  cmake -S . -B "$dir" -G Ninja -DZCIO_WERROR=ON >/dev/null
fi
cmake --build "$dir" -j"$jobs"
cd "$dir"
ctest --output-on-failure -j"$jobs" --timeout 600
