# Sourced by onnx_ort.sh and onnx_real_ort.sh: the arguments ([--check] [BUILD_DIR]), a temporary
# folder, and onnxruntime-node installed with npm into it (or the folder ORT_NODE_DIR names, when
# it already holds node_modules/onnxruntime-node). Exits the calling script with 0 and a message
# naming it ($1) when npm cannot install the package. Sets: here, check, build, work, ort.
ort_tool="$1"; shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
build="$(cd "${1:-$here/../../build}" && pwd)"
version=1.20.1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ort="${ORT_NODE_DIR:-$work/npm}"
if [ ! -d "$ort/node_modules/onnxruntime-node" ]; then
  if ! command -v npm > /dev/null || ! command -v node > /dev/null; then
    echo "$ort_tool: npm/node not found; skipped"; exit 0
  fi
  mkdir -p "$ort"
  # --ignore-scripts: the package's install script only fetches optional GPU libraries
  if ! (cd "$ort" && npm install --silent --no-audit --no-fund --ignore-scripts "onnxruntime-node@$version" > "$work/npm.log" 2>&1); then
    echo "$ort_tool: npm could not install onnxruntime-node@$version (offline?); skipped"
    tail -3 "$work/npm.log"; exit 0
  fi
fi
