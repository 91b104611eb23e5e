#!/usr/bin/env bash
# Builds kop's cargo-fuzz targets (fuzz/, nightly Rust) once and runs each for a bounded time,
# one at a time. Any crash, panic, abort, leak, timeout or out-of-memory fails the script, with
# the input saved under $KOP_CACHE/fuzz-artifacts/<target>/ (docs/fuzzing.md: reproducing).
#
#   scripts/fuzz.sh                       # every target, FUZZ_SECONDS (default 15) each
#   scripts/fuzz.sh request frame         # only these targets
#   FUZZ_SECONDS=3600 nice -n 19 scripts/fuzz.sh record_batch   # a long run
#
# Env: FUZZ_SECONDS (per target), FUZZ_RUNS (stop a target after this many executions),
#      FUZZ_SANITIZER (none (default) or address; docs/fuzzing.md), KOP_CACHE (~/.cache/kop),
#      FUZZ_LOG_DIR (libFuzzer logs, default $KOP_CACHE/fuzz-logs).
# The corpus of each target grows in $KOP_CACHE/fuzz-corpus/<target> (seeded by the target
# itself, see fuzz/src/lib.rs), so short runs build on the previous ones.
set -euo pipefail
cd "$(dirname "$0")/.."
export KOP_CACHE="${KOP_CACHE:-$HOME/.cache/kop}"
# Never the stable build's target dir: nightly + sanitizer flags cannot share it.
export CARGO_TARGET_DIR="$KOP_CACHE/target-fuzz"
# 15 s each: eight targets in the ~2 minutes six took at 20 s (CI time kept flat).
seconds="${FUZZ_SECONDS:-15}"
runs="${FUZZ_RUNS:--1}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

# -O: release without debug assertions, as kop ships (an overflow wraps instead of panicking),
# so a reported crash is one production would have too.
(cd fuzz && cargo +nightly fuzz build -O --sanitizer "$sanitizer")
bin="$CARGO_TARGET_DIR/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

# Memory (docs/fuzzing.md): allocations >= 1 GiB go to kop's GuardedAlloc (lazy mmap, as in
# production) and are not counted; memory really used above 2 GiB for one input is a failure.
limits=(-rss_limit_mb=2048 -timeout=30)
summary=()
for t in "${targets[@]}"; do
  corpus="$KOP_CACHE/fuzz-corpus/$t"
  artifacts="$KOP_CACHE/fuzz-artifacts/$t"
  log="${FUZZ_LOG_DIR:-$KOP_CACHE/fuzz-logs}/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  printf '=== fuzz %s (%ss)\n' "$t" "$seconds"
  if ! KOP_FUZZ_SEEDS="$corpus" "$bin/$t" "$corpus" "${limits[@]}" \
      -max_total_time="$seconds" -runs="$runs" -print_final_stats=1 \
      -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t FAILED; input saved in $artifacts/ (log: $log)" >&2
    echo "reproduce: $bin/$t $artifacts/<file>" >&2
    exit 1
  fi
  done_line=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  edges=$(sed -n 's/^INFO: Loaded 1 modules *(\([0-9]*\) inline 8-bit counters.*/\1/p' "$log" | head -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1\/'"$edges"' edges, ft \2, corpus \3/p' <<<"$done_line")
  summary+=("$(printf '%-14s %12s execs %8s/s  %s  rss %s MB' "$t" "$execs" "$rate" "$cov" "$rss")")
done
printf '%s\n' "${summary[@]}"
