#!/bin/sh
# Regenerates tests/tfjs/predictions.json: TensorFlow.js 4.22 (npm @tensorflow/tfjs@4.22.0, pure JS,
# cpu backend; not tfjs-node) loads the model test_keras_io exports in the tfjs layers format and
# predicts on test_keras_io's inputs; test_keras_io then checks loom's predictions against them.
#   tests/tfjs/run.sh [BUILD_DIR, default build]
# Optional: skips with a message (exit 0) when npm or node is missing or the registry unreachable.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
BUILD=${1:-$ROOT/build}
command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || { echo "tfjs: npm/node not installed, skipped"; exit 0; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
( cd "$WORK" && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund @tensorflow/tfjs@4.22.0 >/dev/null 2>&1 ) ||
    { echo "tfjs: npm install @tensorflow/tfjs@4.22.0 failed (registry unreachable?), skipped"; exit 0; }
mkdir -p "$WORK/model"
LOOM_TFJS_OUT="$WORK/model" "$BUILD/test_keras_io" >/dev/null || { echo "tfjs: test_keras_io failed"; exit 1; }
cp "$HERE/check_tfjs.js" "$WORK/"
( cd "$WORK" && node check_tfjs.js "$WORK/model/model.json" 2>/dev/null ) > "$HERE/predictions.json.new" ||
    { rm -f "$HERE/predictions.json.new"; echo "tfjs: TensorFlow.js could not load or run the model"; exit 1; }
mv "$HERE/predictions.json.new" "$HERE/predictions.json"
echo "tfjs: wrote $HERE/predictions.json"
