#!/usr/bin/env bash
# Installs what is missing, builds loom, and runs `loom demo` on the digits that ship in data/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/loom demo "$@"
