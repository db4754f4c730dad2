#!/usr/bin/env bash
# Installs what zcio needs to build, test and benchmark, from Debian 12's packages only.
# Safe to run again. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  liburing-dev                        # io_uring (2.3: zcio's src/uring_compat.hpp adds the newer ABI)
  libgtest-dev libgmock-dev           # tests
  libbenchmark-dev                    # bench/
  libcli11-dev nlohmann-json3-dev libfmt-dev   # zcperf
  gnuplot-nox                         # zcperf --plot
  iproute2                            # the sink namespace (ip, tc)
  clang libclang-rt-14-dev            # sanitizer and fuzzing builds
  jq                                  # scripts/soak.sh reads zcperf's JSON
  iperf3                              # interop tests: zcperf against Debian's stock iperf3 (3.12)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
