#!/usr/bin/env bash
# Makes tests/reference/onnx_real/<model>/ort_output_<k>.npy: exports the real Keras files of
# ../shared/keras-models to ONNX (test_onnx_real --write), runs them in ONNX Runtime (npm
# onnxruntime-node, CPU binary inside the package) on their reference inputs and records ONNX
# Runtime's outputs. With --check, writes them to a temporary folder instead and runs
# test_onnx_real against it, so that the files loom exports NOW are run by ONNX Runtime (the
# committed fixture checks loom's predictions). Skips with a message (exit 0) when npm cannot
# install the package or when ../shared is absent (test_onnx_real says so).
#   tests/reference/onnx_real_ort.sh [--check] [BUILD_DIR]    (default build/; ORT_NODE_DIR as in
#   onnx_ort.sh reuses a folder that already holds node_modules/onnxruntime-node)
set -euo pipefail
source "$(dirname "$0")/ort_setup.sh" onnx_real_ort "$@"
mkdir -p "$work/models"
"$build/test_onnx_real" --write "$work/models"
if [ ! -f "$work/models/manifest.txt" ]; then exit 0; fi  # no ../shared: test_onnx_real said SKIP
out="$here/onnx_real"
[ $check = 1 ] && out="$work/ort"
NODE_PATH="$ort/node_modules" node "$here/onnx_real_ort.js" "$work/models" "$out"
if [ $check = 1 ]; then
  "$build/test_onnx_real" --fixture "$out"
else
  echo "onnx_real_ort: wrote $out"
fi
