#!/usr/bin/env bash
# Profiles kop under the produce and the fetch workloads: starts `kop serve` through the bench
# harness (bench/run.py --perf record), drives it with Java ProducerPerformance, librdkafka
# produce, Java ConsumerPerformance and librdkafka consume, with `perf record` attached to the
# server for the length of each test, then writes per test:
#   <out>/perf/<test>.data         the perf data (not committed)
#   <out>/perf/<test>.top.txt      perf report --no-children: the self-time top list
#   <out>/perf/<test>.svg          a flame graph (when inferno is installed: cargo install inferno)
# and <out>/perf/summary.txt: the top entries of every test side by side.
# `bench/profile.sh --report DIR/perf` redoes the reports from existing .data files.
#
#   bench/profile.sh                              # 1KB-8p-acks1, 300k records per produce test
#   PROFILE_WORKLOADS=1KB-1p-acks1 PROFILE_RECORDS=200000 bench/profile.sh bench/results/prof-x
#   KOP_BIN=/other/venv/bin/kop bench/profile.sh  # profile another kop build
#   PROFILE_SYSTEM=kop-pulsar bench/profile.sh    # kop on Pulsar storage (the kop process only)
#
# Needs perf (Debian linux-perf). The VM has no hardware counters, so the software clock
# (cpu-clock) is sampled; call graphs use DWARF unwinding because the release build has no frame
# pointers (it has line tables: `debug = "line-tables-only"` in Cargo.toml). If perf cannot
# record here, fall back to valgrind: see bench/README.md ("Profiling kop").
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/results/profile-$(date +%Y%m%d-%H%M%S)}"
workloads="${PROFILE_WORKLOADS:-1KB-8p-acks1}"
records="${PROFILE_RECORDS:-300000}"
system="${PROFILE_SYSTEM:-kop}"
freq="${PROFILE_FREQ:-1999}"
py=.venv/bin/python

command -v perf >/dev/null || { echo "profile.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
perf record -e cpu-clock -o /dev/null -- true 2>/dev/null \
  || { echo "profile.sh: perf record does not work here; use valgrind (bench/README.md)" >&2; exit 1; }

report() {
  # Per test: self time per symbol (where the CPU went), a flame graph, and summary.txt.
  local dir="$1" data name
  cd "$dir"
  : >summary.txt
  for data in *.data; do
    name="${data%.data}"
    perf report -i "$data" --no-children --stdio -g none -F overhead,dso,sym --percent-limit 0.5 \
      2>/dev/null | grep -v '^$' | sed 's/ *$//' >"$name.top.txt" || true
    {
      echo "== $name ($(grep -m1 '^# Samples' "$name.top.txt" | sed 's/^# //'))"
      grep -E '^ +[0-9.]+%' "$name.top.txt" | head -25 || true
      echo
    } >>summary.txt
    if command -v inferno-collapse-perf >/dev/null; then
      perf script -i "$data" 2>/dev/null | inferno-collapse-perf >"$name.folded" || true
      inferno-flamegraph --title "kop: $name" <"$name.folded" >"$name.svg" || true
    fi
  done
  echo "profile.sh: results in $dir (summary.txt, *.top.txt, *.svg)"
}

if [[ "${1:-}" == --report ]]; then
  report "$2"
  exit 0
fi

"$py" bench/run.py --systems "$system" --workloads "$workloads" \
  --tests java-produce,rdkafka-produce,java-consume,rdkafka-consume \
  --repeat 1 --records-1kb "$records" --records-100b "$((records * 5))" --warmup-records 20000 \
  --perf record --perf-args="-e cpu-clock -F $freq --call-graph dwarf,16384" \
  --out "$out" --note "profile: bench/profile.sh"
report "$out/perf"
