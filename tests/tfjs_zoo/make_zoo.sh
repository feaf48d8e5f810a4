#!/bin/sh
# Regenerates tests/tfjs_zoo/: TensorFlow.js 4.22 (npm @tensorflow/tfjs@4.22.0, pure JS, cpu
# backend; not tfjs-node) builds, saves and predicts the models of make_zoo.js.
#   tests/tfjs_zoo/make_zoo.sh
# tfjs is installed into .tfjs/ at the repository root (git ignores it). Optional: skips with a
# message (exit 0) when npm or node is missing or the registry unreachable.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || { echo "tfjs_zoo: npm/node not installed, skipped"; exit 0; }
mkdir -p "$ROOT/.tfjs"
if [ ! -d "$ROOT/.tfjs/node_modules/@tensorflow/tfjs" ]; then
    ( cd "$ROOT/.tfjs" && { [ -f package.json ] || npm init -y >/dev/null 2>&1; } &&
      npm install --no-audit --no-fund @tensorflow/tfjs@4.22.0 >/dev/null 2>&1 ) ||
        { echo "tfjs_zoo: npm install @tensorflow/tfjs@4.22.0 failed (registry unreachable?), skipped"; exit 0; }
fi
NEW=$(mktemp -d)
trap 'rm -rf "$NEW"' EXIT
NODE_PATH="$ROOT/.tfjs/node_modules" node "$HERE/make_zoo.js" "$NEW" >/dev/null 2>"$NEW.err" ||
    { cat "$NEW.err" >&2; rm -f "$NEW.err"; echo "tfjs_zoo: make_zoo.js failed"; exit 1; }
rm -f "$NEW.err"
for d in "$NEW"/*/; do
    name=$(basename "$d")
    rm -rf "${HERE:?}/$name"
    cp -r "$d" "$HERE/$name"
done
cp "$NEW/index.txt" "$HERE/index.txt"
echo "tfjs_zoo: wrote $(grep -vc '^#' "$HERE/index.txt") models into $HERE"
