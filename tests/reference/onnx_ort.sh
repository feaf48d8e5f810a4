#!/usr/bin/env bash
# Makes tests/reference/onnx_ort.txt: exports test_onnx_export's models (--write), runs them in
# ONNX Runtime (npm onnxruntime-node, CPU binary inside the package) and records the inputs and
# ONNX Runtime's outputs. With --check, writes to a temporary file instead and runs
# test_onnx_export against it, so that the ONNX files loom exports NOW are checked by ONNX Runtime
# (the committed fixture only checks loom's predictions). Skips with a message (exit 0) when npm
# cannot install the package.
#   tests/reference/onnx_ort.sh [--check] [BUILD_DIR]    (default build/; set ORT_NODE_DIR to reuse
#   a folder that already holds node_modules/onnxruntime-node)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
build="$(cd "${1:-$here/../../build}" && pwd)"
version=1.20.1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ort="${ORT_NODE_DIR:-$work/npm}"
if [ ! -d "$ort/node_modules/onnxruntime-node" ]; then
  if ! command -v npm > /dev/null || ! command -v node > /dev/null; then
    echo "onnx_ort: npm/node not found; skipped"; exit 0
  fi
  mkdir -p "$ort"
  # --ignore-scripts: the package's install script only fetches optional GPU libraries
  if ! (cd "$ort" && npm install --silent --no-audit --no-fund --ignore-scripts "onnxruntime-node@$version" > "$work/npm.log" 2>&1); then
    echo "onnx_ort: npm could not install onnxruntime-node@$version (offline?); skipped"
    tail -3 "$work/npm.log"; exit 0
  fi
fi
"$build/test_onnx_export" --write "$work/models" > /dev/null
out="$here/onnx_ort.txt"
[ $check = 1 ] && out="$work/onnx_ort.txt"
NODE_PATH="$ort/node_modules" node "$here/onnx_ort.js" "$work/models" > "$out.tmp"
mv "$out.tmp" "$out"
if [ $check = 1 ]; then
  "$build/test_onnx_export" --fixture "$out"
else
  echo "onnx_ort: wrote $out"
fi
