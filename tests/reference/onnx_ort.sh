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
source "$(dirname "$0")/ort_setup.sh" onnx_ort "$@"
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
