#!/usr/bin/env bash
# Distributed training speed on this machine (docs/scaling.md), as the Markdown that page shows:
# allreduce latency and bus bandwidth at 2 ranks (4 KiB .. 64 MiB), then 1 rank x 1 thread against
# 2 ranks x 1 thread on the same global batch for mnist-mlp, wide and cnn (speed-up, the share of
# the step waiting for the gradients after the backward), wide again with 64 MiB buckets, and the
# cost model of docs/scaling.md fed with the measured latency and bandwidth. The load average
# before and after is printed with a warning when the machine was not idle: a speed-up measured
# with fewer idle cores than ranks is not one.
#   bash bench/run_dist.sh [BUILD_DIR] [STEPS]
set -euo pipefail
build=${1:-build}
steps=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader,tcp
     --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
export LOOM_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cores=$(nproc)
load_before=$(cut -d' ' -f1 /proc/loadavg)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"${mpi[@]}" -np 2 "$build/dist_bench" allreduce >"$tmp/allreduce"
for model in mnist-mlp wide cnn; do
  for np in 1 2; do "${mpi[@]}" -np "$np" "$build/dist_bench" fit "$model" "$steps" >>"$tmp/fit"; done
done
"${mpi[@]}" -np 2 "$build/dist_bench" fit wide "$steps" $((64 << 20)) >>"$tmp/fit"
load_after=$(cut -d' ' -f1 /proc/loadavg)

echo "Taken $(date -u '+%Y-%m-%d %H:%M UTC') on $cores cores, load average $load_before before and $load_after after;"
echo "$steps steps per model, \`bash bench/run_dist.sh $build $steps\`."
if awk -v a="$load_before" -v b="$load_after" -v c="$cores" 'BEGIN { exit !(a + 2 > c || b + 2 > c) }'; then
  echo
  echo "**Taken under load: fewer idle cores than the 2 ranks need, so these figures are indicative"
  echo "only and not a measurement of loom's scaling.**"
fi
echo
echo "| allreduce bytes | time µs | bus bandwidth GB/s |"
echo "|---|---|---|"
awk 'NR > 2 { printf "| %s | %s | %s |\n", $1, $2, $4 }' "$tmp/allreduce"
# 4 KiB is latency-bound: at 2 ranks a ring makes 2(N-1) = 2 latency-bound steps
lat=$(awk 'NR == 3 { print $2 / 2 }' "$tmp/allreduce")
bw=$(awk 'END { print $4 }' "$tmp/allreduce")               # 64 MiB: the bandwidth-bound end
echo
echo "Latency per ring step $lat µs (half the 4 KiB allreduce), bus bandwidth $bw GB/s (64 MiB)."
echo
echo "| model | bucket | 1 rank step ms | 2 ranks step ms | speed-up | wait after backward (2 ranks) |"
echo "|---|---|---|---|---|---|"
# fit lines: NAME ranks N threads T global_batch B bucket_bytes S step_ms X wait_ms Y wait_share Z%
awk '{ key = $1; if ($3 == 1) one[key] = $11; else if ($9 == 4194304) { two[key] = $11; share[key] = $15; order[++n] = key }
       else { big = $11; bigshare = $15 } }
     END { for (i = 1; i <= n; i++) { k = order[i]
             printf "| %s | 4 MiB | %.1f | %.1f | %.2fx | %s |\n", k, one[k], two[k], one[k] / two[k], share[k] }
           if (big) printf "| wide | 64 MiB | %.1f | %.1f | %.2fx | %s |\n", one["wide"], big, one["wide"] / big, bigshare }' "$tmp/fit"
echo
echo "The cost model with this machine's figures as a third network:"
echo
python3 "$here/scaling_model.py" --measured "$bw" "$lat"
