#!/usr/bin/env bash
# Installs what building loom needs on Debian 12 (run as root); installs nothing already present.
#   --optional   also what some tests use when present and skip (with a message) without:
#                chromium, to render the training report of `loom fit --report` (tests/cli_e2e.sh)
set -euo pipefail
need=()
# ONNX export: protobuf-c and its compiler, onnx.proto (libonnx-dev), ONNX's checker (python3-onnx)
# libgraphviz-dev: `loom plot` and the report's model picture (gvc + cgraph); graphviz: its `dot`,
# with which the tests parse the DOT files loom writes
# Keras files: HDF5 (.h5, .weights.h5), libzip (.keras), h5py (the tests read loom's files back)
# MPI: data-parallel training (src/dist/) and its mpirun tests
# oneDNN: the second float32 and the bfloat16 matrix-product backend (optional, LOOM_USE_DNNL)
for pkg in build-essential cmake libopenblas-dev libcjson-dev zlib1g-dev pkg-config python3 \
    libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-onnx libgraphviz-dev graphviz \
    libhdf5-dev libzip-dev python3-h5py openmpi-bin libopenmpi-dev libdnnl-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# ---- optional: chromium (a large package; a failure to install it only skips the report rendering)
if [ "${1:-}" = "--optional" ]; then
  if dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    :
  elif apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; then
    echo "deps: installed chromium (the tests render the fit report in it)"
  else
    echo "deps: SKIP: chromium could not be installed; tests/cli_e2e.sh will not render the report"
  fi
fi
