#!/usr/bin/env bash
# Runs every fuzz target for a while on a copy of its seed corpus and says
# what each found. Used by `make fuzz`.
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]
#
# The committed corpus (tests/fuzz/corpus/NAME) is copied to
# BUILD_DIR/corpus-work/NAME and the fuzzer grows the copy; crash, leak and
# timeout inputs go to BUILD_DIR/artifacts/NAME/ and the log to
# BUILD_DIR/logs/NAME.log. Each input in tests/fuzz/regressions/NAME is
# replayed first. Exits 1 when any target found something or a regression
# input fails.
set -euo pipefail

build=${1:?usage: run.sh BUILD_DIR [SECONDS] [TARGET...]}
seconds=${2:-60}
shift $(($# < 2 ? $# : 2))
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then # every built target that has a corpus
  for bin in "$build"/bin/fuzz_*; do
    name=${bin##*/fuzz_}
    [ -x "$bin" ] && [ -d "$here/corpus/$name" ] && targets+=("$name")
  done
fi
[ ${#targets[@]} -gt 0 ] || { echo "run.sh: no fuzz targets built in $build/bin" >&2; exit 2; }

# Leaks are findings; so is any UBSan report (the build does not recover).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
printf '%-10s %12s %10s %8s %8s  %s\n' target executions exec/s cov ft result
for name in "${targets[@]}"; do
  bin="$build/bin/fuzz_$name"
  work="$build/corpus-work/$name"
  artifacts="$build/artifacts/$name"
  log="$build/logs/$name.log"
  rm -rf "$work" "$log.regressions"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  cp -a "$here/corpus/$name/." "$work/"
  opts=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/")
  [ -f "$here/$name.dict" ] && opts+=(-dict="$here/$name.dict")
  # A token may be up to 8 KiB (auth.c's MAX_TOKEN): let the fuzzer pass it.
  [ "$name" = jwt ] && opts+=(-max_len=9000)
  # Inputs that once found a bug must not find it again.
  regressed=""
  for input in "$here/regressions/$name"/*; do
    [ -f "$input" ] || continue
    "$bin" "$input" >>"$log.regressions" 2>&1 || regressed+=" ${input##*/}"
  done
  touch "$log.start"
  rc=0
  "$bin" "${opts[@]}" "$work" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then
    result="nothing found"
  else
    failed=1
    found=$(find "$artifacts" -type f -newer "$log.start" | head -1)
    result="FOUND (exit $rc): ${found:+$found, }see $log"
  fi
  if [ -n "$regressed" ]; then
    failed=1
    result+="; REGRESSIONS FAIL:$regressed (see $log.regressions)"
  fi
  printf '%-10s %12s %10s %8s %8s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $failed
