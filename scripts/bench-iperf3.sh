#!/usr/bin/env bash
# zcperf against stock iperf3 over loopback TCP, 128 KiB writes, side by side (README's targets):
#   send:    zcperf -c  vs  iperf3 -c, both against the same `iperf3 -s`   (throughput)
#   receive: iperf3 -c  against  zcperf -s  vs  iperf3 -s                  (throughput, server CPU per GB)
# Runs alternate A, B, A, B, ...; each figure is the best of REPEAT (default 3) runs of SECONDS
# (default 5). Usage: flock -x /tmp/zcio-cpu.lock scripts/bench-iperf3.sh [SECONDS] [REPEAT]
set -euo pipefail
seconds=${1:-5}
repeat=${2:-3}
zcperf=${ZCPERF:-build/tools/zcperf/zcperf}
command -v iperf3 >/dev/null || { echo "bench-iperf3: iperf3 is not installed (scripts/install-deps.sh)"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One client run against a fresh one-off server; prints "Gbit/s server-CPU-s-per-GB".
run() {  # run SERVER-KIND CLIENT-KIND
  local port; port=$(free_port)
  if [ "$1" = zcperf ]; then "$zcperf" -s -1 -p "$port" >/dev/null 2>&1 & else iperf3 -s -1 -p "$port" >/dev/null 2>&1 & fi
  local server=$!
  sleep 0.3
  local out
  if [ "$2" = zcperf ]; then out=$("$zcperf" -c 127.0.0.1 -p "$port" -t "$seconds" -l 128K -J --no-progress)
  else out=$(iperf3 -c 127.0.0.1 -p "$port" -t "$seconds" -l 128K -J); fi
  wait $server || true
  echo "$out" | jq -r '[.end.sum_received.bits_per_second / 1e9,
      (.end.cpu_utilization_percent.remote_total / 100 * .end.sum_received.seconds) / (.end.sum_received.bytes / 1e9)] | @tsv'
}

best() { sort -g -r -k1,1 | head -1; }
declare -A results
for _ in $(seq "$repeat"); do
  for pair in "iperf3 zcperf" "iperf3 iperf3" "zcperf iperf3" "iperf3 iperf3"; do
    results[$pair]+="$(run $pair)"$'\n'
  done
done
send_z=$(printf '%s' "${results[iperf3 zcperf]}" | best)
send_i=$(printf '%s' "${results[iperf3 iperf3]}" | best)
recv_z=$(printf '%s' "${results[zcperf iperf3]}" | best)
# The receive CPU figure of each side is taken from the same run as its best throughput.
printf 'send    (against iperf3 -s): zcperf -c %.2f Gbit/s, iperf3 -c %.2f Gbit/s: %.2fx\n' \
  "$(cut -f1 <<<"$send_z")" "$(cut -f1 <<<"$send_i")" "$(echo "$(cut -f1 <<<"$send_z") / $(cut -f1 <<<"$send_i")" | bc -l)"
printf 'receive (from iperf3 -c):    zcperf -s %.2f Gbit/s %.3f CPU s/GB, iperf3 -s %.2f Gbit/s %.3f CPU s/GB: %.2fx throughput, %.2fx CPU/GB\n' \
  "$(cut -f1 <<<"$recv_z")" "$(cut -f2 <<<"$recv_z")" "$(cut -f1 <<<"$send_i")" "$(cut -f2 <<<"$send_i")" \
  "$(echo "$(cut -f1 <<<"$recv_z") / $(cut -f1 <<<"$send_i")" | bc -l)" "$(echo "$(cut -f2 <<<"$recv_z") / $(cut -f2 <<<"$send_i")" | bc -l)"
