#!/usr/bin/env bash
# Installs what building loom needs on Debian 12 (run as root); installs nothing already present.
set -euo pipefail
need=()
for pkg in build-essential cmake libopenblas-dev libcjson-dev zlib1g-dev pkg-config python3 \
           openmpi-bin libopenmpi-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
