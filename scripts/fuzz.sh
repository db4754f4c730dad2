#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ (clang, -fsanitize=fuzzer,address,undefined) and runs each
# for SECONDS (default 60) on a copy of its seed corpus. A crash, a sanitizer report or a broken
# invariant stops that target, leaves the reproducer in build-fuzz/artifacts/ and fails the script.
#   scripts/fuzz.sh            # every target, 60 s each (CI)
#   scripts/fuzz.sh 600 fuzz_control          # one target, longer
#   build-fuzz/fuzz/fuzz_control build-fuzz/artifacts/fuzz_control-crash-...   # replay a crash
# New inputs the fuzzer finds stay in build-fuzz/corpus/<target>/; copy the interesting ones to
# fuzz/corpus/<target>/ to keep them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_control fuzz_options fuzz_completions)
dir=build-fuzz

cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
      -DZCIO_SANITIZE=fuzzer-no-link,address,undefined -DZCIO_BUILD_FUZZ=ON \
      -DZCIO_BUILD_TESTS=OFF -DZCIO_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$dir/artifacts"
failed=()
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  work="$dir/corpus/$t"
  mkdir -p "$work"
  cp -n fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true
  dict=()
  [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
  echo "== $t: ${seconds}s on $(ls "$work" | wc -l) inputs"
  log="$dir/$t.log"
  # -close_fd_mask=3: the targets' own stdout/stderr (zcperf's usage errors) would drown the log;
  # libFuzzer and the sanitizers still report on a duplicate of stderr.
  if "$dir/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
       -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" "${dict[@]}" "$work" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$log" | tail -2 | sed "s/^/   /"
  else
    failed+=("$t")
    grep -E 'ERROR|fuzz_[a-z]+:|SUMMARY|Test unit written|artifact_prefix' "$log" | head -20 | sed "s/^/   /"
    echo "   full log: $log"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz: FAILED: ${failed[*]} (reproducers in $dir/artifacts/)"
  exit 1
fi
echo "== fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
