#!/usr/bin/env bash
# Installs what is missing, builds loom three times (with OpenBLAS, with the portable matrix
# product instead, and with AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test in
# each build; the first two are also installed into a temporary prefix and used from there by a C
# and a C++ program (scripts/test_install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs="$(nproc)"

echo "== normal build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure)

echo "== demo smoke run"
./build/loom demo --epochs 2 --quiet >/dev/null

echo "== install into a temporary prefix, build C (pkg-config) and C++ (find_package) programs against it"
bash scripts/test_install.sh build

echo "== portable build (no OpenBLAS: the fallback matrix product)"
cmake -S . -B build-portable -DCMAKE_BUILD_TYPE=Release -DLOOM_USE_OPENBLAS=OFF >/dev/null
cmake --build build-portable -j"$jobs"
(cd build-portable && ctest --output-on-failure)
bash scripts/test_install.sh build-portable # loom.pc and loomConfig.cmake without OpenBLAS

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DLOOM_SANITIZE=ON >/dev/null
cmake --build build-sanitize -j"$jobs"
(cd build-sanitize && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure)
