#!/usr/bin/env bash
# One command on a fresh machine: install dependencies, build, and run zcperf's default sweep
# (every send strategy side by side on the local targets this machine allows; < 1 minute).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j"$(nproc)"
exec build/tools/zcperf/zcperf "$@"
