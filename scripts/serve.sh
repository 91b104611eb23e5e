#!/usr/bin/env bash
# Installs kop from this checkout into .venv (builds the Rust core once) and runs `kop serve`.
# Arguments go to `kop serve`, e.g.  ./scripts/serve.sh --listeners PLAINTEXT://0.0.0.0:9092
# Needs Python >= 3.10 and Rust (cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import kop._native" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q .
fi
exec .venv/bin/kop serve "$@"
