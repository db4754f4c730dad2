#!/usr/bin/env bash
# zcperf against stock iperf3 over loopback TCP, 128 KiB writes, side by side (README's targets):
#   send:    zcperf -c  vs  iperf3 -c, both against the same `iperf3 -s`   (throughput)
#   receive: iperf3 -c  against  zcperf -s  vs  iperf3 -s                  (throughput, server CPU per GB)
# Rounds alternate the four kinds of run; each figure is the best of REPEAT (default 3) runs of
# SECONDS (default 5), one per round, and every run is listed last.
# Usage: flock -x /tmp/zcio-cpu.lock scripts/bench-iperf3.sh [SECONDS] [REPEAT]
set -euo pipefail
seconds=${1:-5}
repeat=${2:-3}
zcperf=${ZCPERF:-build/tools/zcperf/zcperf}
command -v iperf3 >/dev/null || { echo "bench-iperf3: iperf3 is not installed (scripts/install-deps.sh)"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One client run against a fresh one-off server; prints "Gbit/s server-CPU-s-per-GB".
run() {  # run SERVER-KIND CLIENT-KIND
  local port; port=$(free_port)
  if [ "$1" = zcperf ]; then "$zcperf" -s -1 -p "$port" >/dev/null 2>&1 &
  else iperf3 -s -1 -p "$port" >/dev/null 2>&1 & fi
  local server=$!
  sleep 0.3
  local out
  if [ "$2" = zcperf ]; then out=$("$zcperf" -c 127.0.0.1 -p "$port" -t "$seconds" -l 128K -J --no-progress)
  else out=$(iperf3 -c 127.0.0.1 -p "$port" -t "$seconds" -l 128K -J); fi
  wait $server || true
  echo "$out" | jq -r '.end as $e | [$e.sum_received.bits_per_second / 1e9,
      ($e.cpu_utilization_percent.remote_total / 100 * $e.sum_received.seconds) / ($e.sum_received.bytes / 1e9)]
      | @tsv'
}

best() { sort -g -r -k1,1 | head -1; }
# Each zcperf figure has its own baseline run right after it in every round (the same server
# and client kinds for both baselines), so each side is the best of REPEAT runs: one baseline
# for both, picked from twice as many runs, would be the best of 2 x REPEAT and flatter iperf3.
declare -A results
for _ in $(seq "$repeat"); do
  results[send_z]+="$(run iperf3 zcperf)"$'\n'
  results[send_i]+="$(run iperf3 iperf3)"$'\n'
  results[recv_z]+="$(run zcperf iperf3)"$'\n'
  results[recv_i]+="$(run iperf3 iperf3)"$'\n'
done
send_z=$(printf '%s' "${results[send_z]}" | best)
send_i=$(printf '%s' "${results[send_i]}" | best)
recv_z=$(printf '%s' "${results[recv_z]}" | best)
recv_i=$(printf '%s' "${results[recv_i]}" | best)
# The receive CPU figure of each side is taken from the same run as its best throughput.
field() { cut -f"$2" <<<"$1"; }                                    # field RUN N
ratio() { echo "$(field "$1" "$3") / $(field "$2" "$3")" | bc -l; }  # ratio RUN-A RUN-B N
printf 'send    (against iperf3 -s): zcperf -c %.2f Gbit/s, iperf3 -c %.2f Gbit/s: %.2fx\n' \
  "$(field "$send_z" 1)" "$(field "$send_i" 1)" "$(ratio "$send_z" "$send_i" 1)"
printf 'receive (from iperf3 -c):    zcperf -s %.2f Gbit/s %.3f CPU s/GB, iperf3 -s %.2f Gbit/s %.3f CPU s/GB' \
  "$(field "$recv_z" 1)" "$(field "$recv_z" 2)" "$(field "$recv_i" 1)" "$(field "$recv_i" 2)"
printf ': %.2fx throughput, %.2fx CPU/GB\n' "$(ratio "$recv_z" "$recv_i" 1)" "$(ratio "$recv_z" "$recv_i" 2)"
for k in send_z send_i recv_z recv_i; do  # every run, in order: how far the best stands from the rest
  printf '  %s Gbit/s: %s\n' "$k" "$(printf '%s' "${results[$k]}" | cut -f1 | xargs printf '%.2f ')"
done
