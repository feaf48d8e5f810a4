#!/usr/bin/env python3
"""The ring-allreduce model of docs/scaling.md: projects step time and efficiency of data-parallel
training from a measured one-rank step time and the gradient size.

  t_comm(N) = 2 (N-1)/N * bytes / bandwidth + k * 2 (N-1) * latency
             (k = ceil(bytes / bucket): loom reduces k buckets, each a ring that pays the latency)
  t_compute(N, G) = t1 * (G / B1) / N           (t1: measured step at batch B1 on one rank)
  step = t_compute + max(0, t_comm - overlap * t_compute)   (overlap: the backward's share that
                                                              the reductions can hide, ~2/3)
  efficiency = t_compute / step;  the global batch stops scaling where t_comm = overlap *
  t_compute, i.e. G* = N * B1 * t_comm / (overlap * t1).

  scaling_model.py [--measured BUSBW_GBps LATENCY_us]   adds a network with measured figures
  (bench/run_dist.sh passes this machine's allreduce bus bandwidth and small-message latency).
"""
import sys

MODELS = {
    # name: (gradient floats, one-rank step seconds at batch B1, B1) — BENCHMARKS.md, SGD, 1 thread
    "wide": (1024 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 10 + 10 + 4097, 0.132339, 256),
    # examples/fashion_multitask.c: conv 32, conv 64, dense 128, heads 10, 4, 784; step time taken
    # from the cnn benchmark (same trunk) at batch 64
    "fashion": (320 + 18496 + 1600 * 128 + 128 + 1290 + 516 + 128 * 784 + 784, 0.007374, 64),
}
NETWORKS = {"10 Gb/s (25 us)": (10e9 / 8, 25e-6), "100 Gb/s (5 us)": (100e9 / 8, 5e-6)}
OVERLAP = 2.0 / 3.0


def project(floats, t1, b1, n, g, bw, lat, bucket):
    k = -(-floats * 4 // bucket)
    comm = 2 * (n - 1) / n * floats * 4 / bw + k * 2 * (n - 1) * lat
    compute = t1 * (g / b1) / n
    step = compute + max(0.0, comm - OVERLAP * compute)
    g_star = n * b1 * comm / (OVERLAP * t1)
    return comm, compute, step, compute / step, g_star


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "--measured":
        bw, lat = float(args[1]), float(args[2])
        if bw > 0 and lat > 0:
            NETWORKS[f"measured ({bw:.3g} GB/s, {lat:.3g} us)"] = (bw * 1e9, lat * 1e-6)
    elif args:
        print("usage: scaling_model.py [--measured BUSBW_GBps LATENCY_us]", file=sys.stderr)
        return 2
    print("| model | network | bucket | ranks | global batch | t_comm ms | t_compute ms | step ms | efficiency | stops scaling below global batch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (floats, t1, b1) in MODELS.items():
        for net, (bw, lat) in NETWORKS.items():
            for bucket in (4 << 20, 64 << 20):
                for n in (8, 64, 512):
                    g = b1 * n  # the per-rank batch of the benchmark on every rank
                    comm, compute, step, eff, g_star = project(floats, t1, b1, n, g, bw, lat, bucket)
                    print(f"| {name} ({floats * 4 / 1e6:.1f} MB) | {net} | {bucket >> 20} MiB | {n} | {g} | {comm * 1e3:.2f} | "
                          f"{compute * 1e3:.2f} | {step * 1e3:.2f} | {eff * 100:.0f} % | {g_star:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
