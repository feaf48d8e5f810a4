#!/usr/bin/env bash
# Distributed training speed on this machine (docs/scaling.md): allreduce bandwidth and latency
# at 2 ranks, then 1 rank x 1 thread against 2 ranks x 1 thread on the same global batch.
#   bash bench/run_dist.sh [BUILD_DIR] [STEPS]
set -euo pipefail
build=${1:-build}
steps=${2:-20}
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader,tcp
     --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
export LOOM_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"${mpi[@]}" -np 2 "$build/dist_bench" allreduce
for model in mnist-mlp wide cnn; do
  for np in 1 2; do "${mpi[@]}" -np "$np" "$build/dist_bench" fit "$model" "$steps"; done
done
