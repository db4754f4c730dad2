#!/usr/bin/env bash
# Soak: one `zcperf -s`, and for SECONDS (default 90) a stream of short clients with random sizes,
# send strategies, completion models, receive strategies (--recv), stream counts, TCP/UDP and
# direction: connection churn. Every client's JSON is checked (exit 0, no error; TCP: each
# stream's received bytes == sent bytes, payload verified; no engine errors); the server's RSS and fd count are
# sampled while idle between clients and must be flat after the warm-up; the server must still be
# alive at the end. Exits non-zero otherwise. TCP runs use --verify: the receiving end checks every
# byte against a stream-offset pattern (a mismatch is a stream error, so the run fails).
#   scripts/soak.sh            # CI: 90 s
#   scripts/soak.sh 1800       # the long soak (30 min)
# Env: ZCPERF (binary; default build/tools/zcperf/zcperf, built if missing), SOAK_SEED (repeatable
# choices), SOAK_RSS_TOLERANCE_KB (default 16384), SOAK_LOG (default build/soak).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-90}
zcperf=${ZCPERF:-build/tools/zcperf/zcperf}
logdir=${SOAK_LOG:-build/soak}
rss_tol=${SOAK_RSS_TOLERANCE_KB:-16384}
RANDOM=${SOAK_SEED:-$$}

if [ ! -x "$zcperf" ]; then
  cmake -S . -B build -G Ninja >/dev/null
  cmake --build build --target zcperf
fi
command -v jq >/dev/null || { echo "soak: needs jq (scripts/install-deps.sh)"; exit 1; }
mkdir -p "$logdir"
rm -f "$logdir"/fail-*.json

"$zcperf" -s -p 0 --no-progress >"$logdir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/^Server listening on \([0-9]*\)$/\1/p' "$logdir/server.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "soak: the server did not start"; cat "$logdir/server.log"; exit 1; }

rss() { awk '/^VmRSS:/ { print $2 }' /proc/$server/status; }
fds() { ls /proc/$server/fd | wc -l; }
# Idle: the server has finished the last test (the client gets the results before the server has
# joined its threads and closed its ring), so wait until its thread count is back to two (the main
# thread and the front desk, which accepts while tests run).
settle() {
  for _ in $(seq 100); do
    [ "$(awk '/^Threads:/ { print $2 }' /proc/$server/status)" -le 2 ] && return
    sleep 0.02
  done
}

strategies=(plain copy msg-zerocopy zc zc-fixed sendmsg-zc auto)
completions=(two-step storage group)
receivers=(plain multishot bundle zcrx auto)   # zcrx falls back on lo, and says so
check_tcp='(.error == null) and (.end.sum_sent.bytes > 0)
  and (.end.sum_received.bytes == .end.sum_sent.bytes)
  and all(.end.streams[]; .sender.bytes == .receiver.bytes)
  and (.end.sum_zcio.errors == 0)'
check_udp='(.error == null) and (.end.sum_sent.bytes > 0)
  and (.end.sum_received.bytes <= .end.sum_sent.bytes) and (.end.sum_zcio.errors == 0)'

start=$(date +%s)
deadline=$((start + seconds))
warmup_end=$((start + seconds / 4))
runs=0 errors=0 bytes=0 tcp_runs=0 udp_runs=0
peak_rss=0 peak_fds=0 base_rss="" base_fds=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  args=(-c 127.0.0.1 -p "$port" -J --no-progress)
  udp=$((RANDOM % 3 == 0))
  if [ $udp = 1 ]; then
    len=$((16 + RANDOM * 2 % 65491))               # iperf3's datagram header takes 16 bytes
    args+=(-u -l "$len")
    [ $((RANDOM % 2)) = 0 ] && args+=(-b "$((1 + RANDOM % 500))M")
    [ $((RANDOM % 3)) = 0 ] && args+=(--gso 1472)
    udp_runs=$((udp_runs + 1))
  else
    shift_=$((RANDOM % 21))                          # 1 B .. 2 MiB, spread over the octaves
    len=$(( (1 << shift_) + RANDOM % (1 << shift_) ))
    args+=(-l "$len" --verify)   # the receiving end checks every byte against the pattern
    tcp_runs=$((tcp_runs + 1))
  fi
  args+=(--strategy "${strategies[RANDOM % 7]}" --completion "${completions[RANDOM % 3]}" --recv "${receivers[RANDOM % 5]}")
  args+=(-P $((1 + RANDOM % 4)) -t "0.$((2 + RANDOM % 5))")
  case $((RANDOM % 8)) in
    0|1) args+=(-R) ;;
    2) [ $udp = 0 ] && args+=(--bidir) ;;
  esac
  runs=$((runs + 1))
  out="$logdir/last.json"
  rc=0
  timeout 60 "$zcperf" "${args[@]}" >"$out" 2>"$logdir/last.err" || rc=$?
  check=$check_tcp
  [ $udp = 1 ] && check=$check_udp
  if [ $rc != 0 ] || ! jq -e "$check" "$out" >/dev/null 2>&1; then
    errors=$((errors + 1))
    cp "$out" "$logdir/fail-$runs.json"
    echo "soak: run $runs failed (exit $rc): zcperf ${args[*]}"
    { cat "$logdir/last.err"; jq -c '{error, sent: .end.sum_sent.bytes, received: .end.sum_received.bytes, zcio_errors: .end.sum_zcio.errors}' "$out"; } 2>/dev/null | head -5 | sed 's/^/   /'
  else
    bytes=$((bytes + $(jq '.end.sum_sent.bytes' "$out")))
  fi
  if ! kill -0 $server 2>/dev/null; then
    echo "soak: the server died"; tail -20 "$logdir/server.log"; exit 1
  fi
  settle
  r=$(rss) f=$(fds)
  [ "$r" -gt "$peak_rss" ] && peak_rss=$r
  [ "$f" -gt "$peak_fds" ] && peak_fds=$f
  # The baseline is the largest idle figure seen during the warm-up (allocator arenas, the probe
  # cache and the like are set up by then).
  if [ "$(date +%s)" -lt "$warmup_end" ] || [ -z "$base_rss" ]; then
    [ -z "$base_rss" ] || [ "$r" -gt "$base_rss" ] && base_rss=$r
    [ -z "$base_fds" ] || [ "$f" -gt "$base_fds" ] && base_fds=$f
  fi
done
settle
sleep 0.5
end_rss=$(rss) end_fds=$(fds)
hwm=$(awk '/^VmHWM:/ { print $2 }' /proc/$server/status)   # peak RSS, during tests too
elapsed=$(( $(date +%s) - start ))
status=ok
if [ "$end_fds" -gt "$base_fds" ]; then status=FAIL; echo "soak: fds grew: $base_fds after warm-up, $end_fds at the end"; fi
if [ "$end_rss" -gt $((base_rss + rss_tol)) ]; then status=FAIL; echo "soak: RSS grew: ${base_rss} kB after warm-up, ${end_rss} kB at the end (tolerance ${rss_tol} kB)"; fi
[ $errors = 0 ] || status=FAIL
echo "== soak: $status: ${elapsed}s, $runs runs ($tcp_runs TCP, $udp_runs UDP), $((bytes / 1048576)) MiB sent, errors $errors," \
     "server RSS ${base_rss} kB after warm-up -> ${end_rss} kB at the end (peak idle ${peak_rss} kB, peak ${hwm} kB), fds ${base_fds} -> ${end_fds} (peak idle ${peak_fds})"
[ $status = ok ]
