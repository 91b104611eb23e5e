#!/usr/bin/env bash
# Installs everything kop's tests need and runs all of them. `.ci/run` calls exactly this.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -k fetch   # extra arguments go to pytest
#
# Needs: Rust (cargo with rustfmt + clippy, and a nightly toolchain for fuzz/), Python >= 3.10, Java 17+ and Maven.
# Caches: ~/.cache/kop (Rust target dir, Maven jars for Kafka and Pulsar), ~/.m2, pip's cache.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export KOP_CACHE="${KOP_CACHE:-$HOME/.cache/kop}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KOP_CACHE/target}"
mkdir -p "$KOP_CACHE"

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "toolchains"
for tool in cargo python3 java mvn; do
  command -v "$tool" >/dev/null || { echo "missing $tool: see README (Requirements)" >&2; exit 1; }
done
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
  rustup component add clippy rustfmt
fi
cargo --version; python3 --version; java -version 2>&1 | head -1

step "client tools: kcat and prometheus (Debian), Go (franz-go from the Go module proxy), kafkajs (npm)"
command -v go >/dev/null || { echo "missing go: see README (Requirements)" >&2; exit 1; }
if ! command -v kcat >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq kcat
  else
    echo "missing kcat: apt-get install kcat" >&2; exit 1
  fi
fi
if ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq prometheus
  else
    echo "missing prometheus (tests/e2e/test_e2e_metrics.py): apt-get install prometheus" >&2; exit 1
  fi
fi

# kafkajs (tests/e2e/test_e2e_kafkajs.py) from npm into the cache, as tests/conftest.py does.
command -v node >/dev/null && command -v npm >/dev/null || { echo "missing node/npm: see README (Requirements)" >&2; exit 1; }
kafkajs_version=$(sed -n 's/^KAFKAJS_VERSION = "\(.*\)"/\1/p' tests/conftest.py)
if [ ! -f "$KOP_CACHE/kafkajs-$kafkajs_version/node_modules/kafkajs/package.json" ]; then
  npm install --no-audit --no-fund --no-save --prefix "$KOP_CACHE/kafkajs-$kafkajs_version" "kafkajs@$kafkajs_version"
fi

step "python venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt
py=$root/.venv/bin/python

step "rust: fmt, clippy, unit and integration tests"
cargo fmt --all --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release

step "fuzz: a short run of every cargo-fuzz target (nightly; docs/fuzzing.md)"
scripts/fuzz.sh

step "build the wheel once, install it into the venv"
# The same wheel is what tests/e2e/test_e2e_wheel.py installs into a fresh venv without Rust, so
# one release build serves both (maturin shares cargo test's artifacts; only kop-py is linked).
rm -rf dist
.venv/bin/maturin build --release --quiet --out dist
wheel=$(ls dist/kop-*.whl)
.venv/bin/python -m pip install -q --force-reinstall --no-deps "$wheel"
export KOP_WHEEL="$root/$wheel"
ls -l "$wheel"

step "python: ruff, mypy, stubtest"
.venv/bin/ruff check python tests bench scripts
.venv/bin/ruff format --check python tests bench scripts
.venv/bin/mypy
"$py" -m mypy.stubtest kop._native

step "java: Kafka clients/tools and Pulsar from Maven Central"
scripts/kafka.sh fetch
scripts/pulsar.sh fetch
scripts/pulsar.sh offloaders > /dev/null  # the tiered-storage tests' filesystem offloader

step "pytest"
# Every end-to-end suite runs against kop on the local log (CLI and embedded) and on Pulsar.
export KOP_TEST_TARGETS="${KOP_TEST_TARGETS:-kop-cli,kop-embedded,kop-pulsar}"
# kop-cli (kop serve on the local log) only where the process itself matters: kill -9, restarts,
# signals, log lines; kop-pulsar runs every test through kop serve, kop-embedded on the local log
# (tests/e2e/README.md). KOP_CLI_TESTS=all runs every test on kop-cli too.
export KOP_CLI_TESTS="${KOP_CLI_TESTS:-process}"
"$py" -m pytest -ra --durations=25 "$@"
