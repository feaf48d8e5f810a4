#!/usr/bin/python3
"""bench/run.py — loom against PyTorch (CPU) in one run, interleaved, with sgemm as the ceiling.

    /usr/bin/python3 bench/run.py [--build build] [--repeats 9] [--models tiny,mnist-mlp,wide]
                                  [--threads 1,2] [--opts sgd,adam] [--markdown BENCHMARKS.md]
                                  [--baseline OTHER_BUILD]

For every (threads, optimizer, model) it starts loom_bench, torch_bench.py and sgemm_bench in turn,
each `repeats` times in its own process (so peak resident memory is per framework), and reports the
median over processes of each process's median ms per step. Threads are pinned for both:
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS (Debian's PyTorch calls the system OpenBLAS, which
ignores torch.set_num_threads), torch.set_num_threads, LOOM_NUM_THREADS; at 2 threads PyTorch
also gets OMP_WAIT_POLICY=PASSIVE so its OpenMP pool does not fight OpenBLAS's. Both frameworks
run OpenBLAS's best kernel for the CPU: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (which this
workplace sets to an older core type) are removed from the environment of every process.

With --baseline, the loom_bench of another build (an earlier commit's, say) runs in the same
rotation, and each cell also reports this build's step time over the baseline's: the way to show
that a change does not slow loom down, within the same noise.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STEPS = {"tiny": 200, "mnist-mlp": 20, "wide": 3, "cnn": 10, "lstm": 10}
BATCH = {"tiny": 32, "mnist-mlp": 128, "wide": 256, "cnn": 64, "lstm": 64}
FLOPS = {}  # filled from models.h's formula below


def step_flops(name):
    """As bench_step_flops in models.h."""
    if name == "cnn":
        c1, c2, d, heads = 2.0 * 26 * 26 * 32 * 9, 2.0 * 11 * 11 * 64 * 288, 2.0 * 1600 * 128, 2.0 * 128 * 11
        return 64 * (2 * c1 + 3 * c2 + 3 * d + 3 * heads)
    if name == "lstm":  # (40, 32) -> LSTM 128, batch 64
        return 40 * 2 * 64 * 4 * 128 * (2 * 32 + 3 * 128) + 3 * 2 * 64 * 128 * 11
    n_in, a, b, classes, batch = {"tiny": (32, 64, 64, 10, 32), "mnist-mlp": (784, 512, 512, 10, 128),
                                  "wide": (1024, 4096, 4096, 10, 256)}[name]
    return 2 * 2 * batch * n_in * a + 3 * 2 * batch * a * b + 3 * 2 * batch * b * (classes + 1)


def fmt(v, spec, suffix=""):
    """A table cell: n/a where there is no value (the cnn model has no sgemm ceiling)."""
    return "n/a" if v != v else format(v, spec) + suffix


def env_for(threads, torch, policy="float32"):
    env = dict(os.environ)
    env["LOOM_BENCH_POLICY"] = policy  # mixed_bfloat16: loom's policy, PyTorch's autocast
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    env["LOOM_NUM_THREADS"] = str(threads)
    if torch and threads > 1:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def run(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    f = out.stdout.split()
    return float(f[3]), int(f[5])  # median ms/step, peak RSS kB


def kernel_name():
    env = env_for(1, False)
    env["OPENBLAS_VERBOSE"] = "2"
    out = subprocess.run(["/usr/bin/python3", "-c", "import numpy"], env=env, capture_output=True, text=True)
    for line in out.stdout.splitlines() + out.stderr.splitlines():
        if line.startswith("Core:"):
            return line.split(":", 1)[1].strip()
    return "?"


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--models", default="tiny,mnist-mlp,wide,cnn,lstm")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--opts", default="sgd,adam")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--baseline", default=None, help="another build folder whose loom_bench runs interleaved")
    ap.add_argument("--bf16", action="store_true",
                    help="also run loom under mixed_bfloat16 and PyTorch under autocast(bfloat16), interleaved")
    args = ap.parse_args()
    loom = os.path.join(args.build, "loom_bench")
    sgemm = os.path.join(args.build, "sgemm_bench")
    torch_script = os.path.join(HERE, "torch_bench.py")
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for opt in args.opts.split(","):
            for model in args.models.split(","):
                steps = STEPS[model]
                lt, tt, lr, tr, st, bt, lb, tb, lbr = [], [], [], [], [], [], [], [], []
                for _ in range(args.repeats):  # interleaved: loom, torch, sgemm, loom, torch, sgemm, ...
                    ms, rss = run([loom, model, opt, str(steps), "3"], env_for(threads, False))
                    lt.append(ms), lr.append(rss)
                    if args.baseline:
                        bt.append(run([os.path.join(args.baseline, "loom_bench"), model, opt, str(steps), "3"],
                                      env_for(threads, False))[0])
                    ms, rss = run(["/usr/bin/python3", torch_script, model, opt, str(steps), "3", str(threads)],
                                  env_for(threads, True))
                    tt.append(ms), tr.append(rss)
                    if args.bf16:
                        ms, rss = run([loom, model, opt, str(steps), "3"], env_for(threads, False, "mixed_bfloat16"))
                        lb.append(ms), lbr.append(rss)
                        tb.append(run(["/usr/bin/python3", torch_script, model, opt, str(steps), "3", str(threads)],
                                      env_for(threads, True, "mixed_bfloat16"))[0])
                    if model not in ("cnn", "lstm"):  # these have no sgemm-only counterpart here
                        g = subprocess.run([sgemm, model, "7"], env=env_for(threads, False), capture_output=True,
                                           text=True)
                        st.append(float(g.stdout.split()[2]) if g.returncode == 0 else float("nan"))
                sg_ms = statistics.median(st) if st else float("nan")
                l_ms, t_ms = statistics.median(lt), statistics.median(tt)
                fl = step_flops(model)
                batch = BATCH[model]
                row = dict(threads=threads, opt=opt, model=model, loom_ms=l_ms, torch_ms=t_ms,
                           loom_sps=batch / l_ms * 1e3, torch_sps=batch / t_ms * 1e3,
                           loom_gf=fl / l_ms / 1e6, torch_gf=fl / t_ms / 1e6, sgemm_gf=fl / sg_ms / 1e6,
                           speedup=t_ms / l_ms, loom_rss=max(lr) / 1024, torch_rss=max(tr) / 1024)
                row["baseline_ms"] = statistics.median(bt) if bt else float("nan")
                if lb:
                    row.update(loom_bf16_ms=statistics.median(lb), torch_bf16_ms=statistics.median(tb),
                               loom_bf16_rss=max(lbr) / 1024)
                    print(f"{threads} thr {opt:4s} {model:9s}  mixed_bfloat16: loom {row['loom_bf16_ms']:9.3f} ms "
                          f"(x{l_ms / row['loom_bf16_ms']:.2f} of loom float32)  torch autocast "
                          f"{row['torch_bf16_ms']:9.3f} ms  RSS {row['loom_bf16_rss']:.0f} MiB", flush=True)
                rows.append(row)
                if bt:
                    print(f"{threads} thr {opt:4s} {model:9s}  baseline {row['baseline_ms']:9.3f} ms  "
                          f"this build / baseline {l_ms / row['baseline_ms']:.3f}", flush=True)
                print(f"{threads} thr {opt:4s} {model:9s}  loom {l_ms:9.3f} ms  torch {t_ms:9.3f} ms  "
                      f"x{row['speedup']:.2f}  loom {row['loom_gf']:.1f} GF/s (sgemm {row['sgemm_gf']:.1f})  "
                      f"RSS {row['loom_rss']:.0f} / {row['torch_rss']:.0f} MiB", flush=True)
    header = ("| threads | optimizer | model | loom ms/step | PyTorch ms/step | loom samples/s | PyTorch samples/s | "
              "speed-up (PyTorch time / loom time) | loom GFLOP/s | PyTorch GFLOP/s | sgemm GFLOP/s | loom / sgemm | "
              "loom peak RSS MiB | PyTorch peak RSS MiB | memory ratio |")
    lines = [header, "|" + "---|" * 15]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['opt']} | {r['model']} | {r['loom_ms']:.3f} | {r['torch_ms']:.3f} | "
                     f"{r['loom_sps']:.0f} | {r['torch_sps']:.0f} | {r['speedup']:.2f} | {r['loom_gf']:.1f} | {r['torch_gf']:.1f} | "
                     f"{fmt(r['sgemm_gf'], '.1f')} | {fmt(r['loom_gf'] / r['sgemm_gf'] * 100, '.0f', ' %')} | "
                     f"{r['loom_rss']:.0f} | {r['torch_rss']:.0f} | 1/{r['torch_rss'] / r['loom_rss']:.1f} |")
    bf16_lines = []
    if args.bf16:
        bf16_lines = ["| threads | optimizer | model | loom float32 ms | loom mixed_bfloat16 ms | loom bf16 speed-up | "
                      "PyTorch float32 ms | PyTorch autocast bf16 ms | loom bf16 vs PyTorch float32 | "
                      "loom bf16 vs PyTorch bf16 | loom bf16 GFLOP/s | loom bf16 peak RSS MiB |", "|" + "---|" * 12]
        for r in rows:
            bf16_lines.append(
                f"| {r['threads']} | {r['opt']} | {r['model']} | {r['loom_ms']:.3f} | {r['loom_bf16_ms']:.3f} | "
                f"{r['loom_ms'] / r['loom_bf16_ms']:.2f} | {r['torch_ms']:.3f} | {r['torch_bf16_ms']:.3f} | "
                f"{r['torch_ms'] / r['loom_bf16_ms']:.2f} | {r['torch_bf16_ms'] / r['loom_bf16_ms']:.2f} | "
                f"{step_flops(r['model']) / r['loom_bf16_ms'] / 1e6:.1f} | {r['loom_bf16_rss']:.0f} |")
    scaling = []
    for opt in args.opts.split(","):
        for model in args.models.split(","):
            one = [r for r in rows if r["threads"] == 1 and r["opt"] == opt and r["model"] == model]
            two = [r for r in rows if r["threads"] == 2 and r["opt"] == opt and r["model"] == model]
            if one and two:
                scaling.append(f"| {opt} | {model} | {one[0]['loom_ms'] / two[0]['loom_ms']:.2f} | "
                               f"{one[0]['torch_ms'] / two[0]['torch_ms']:.2f} |")
    # embedded use: predict on mnist-mlp one sample per call, 1 thread, interleaved
    pl, pt = [], []
    for _ in range(args.repeats):
        env = env_for(1, False)
        env["LOOM_BENCH_PREDICT"] = "1"
        out = subprocess.run([loom, "mnist-mlp", "sgd", "4", "5"], env=env, capture_output=True, text=True)
        pl.append(float(out.stdout.split()[3]))
        env = env_for(1, True)
        env["LOOM_BENCH_PREDICT"] = "1"
        out = subprocess.run(["/usr/bin/python3", torch_script, "mnist-mlp", "sgd", "4", "5", "1"], env=env,
                             capture_output=True, text=True)
        pt.append(float(out.stdout.split()[3]))
    predict_line = (f"predict on mnist-mlp, batch 1, 1 thread: loom {statistics.median(pl):.1f} us per call, "
                    f"PyTorch {statistics.median(pt):.1f} us per call (no_grad, eval)")
    print(predict_line)
    table = "\n".join(lines)
    print("\n" + table)
    if bf16_lines:
        print("\n" + "\n".join(bf16_lines))
    if args.markdown:
        meta = (f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()} ({os.cpu_count()} cores), OpenBLAS kernel "
                f"{kernel_name()} for both frameworks, PyTorch from Debian (python3-torch), {args.repeats} interleaved "
                f"processes per framework and cell, medians.")
        with open(args.markdown, "w") as f:
            f.write("# Benchmarks\n\n")
            f.write("Command (from the repository root, after `bash scripts/test.sh` or a Release build in build/):\n\n")
            f.write("    /usr/bin/python3 bench/run.py --markdown BENCHMARKS.md\n\n")
            f.write(meta + "\n\n")
            f.write("Models (bench/models.h, bench/torch_bench.py): trunk A -> B (relu), heads C (10, softmax + "
                    "categorical crossentropy, weight 0.5) and D (1, linear + mse, weight 0.3); cnn: (28,28,1) -> "
                    "Conv 32 3x3 relu -> MaxPool 2 -> Conv 64 3x3 relu -> MaxPool 2 -> Flatten -> Dense 128 relu -> "
                    "the same heads; lstm: (40 steps, 32 features) -> LSTM 128 (last state) -> the same heads, "
                    "batch 64; synthetic data; one epoch of `steps` batches per timing, shuffled. The sgemm "
                    "column times OpenBLAS alone on the same products as loom issues them (MLPs only), in the same "
                    "rotation of processes.\n\n")
            f.write(table + "\n\n")
            f.write(predict_line + "\n\n")
            if bf16_lines:
                f.write("mixed_bfloat16 (loom's policy; PyTorch's torch.autocast('cpu', dtype=torch.bfloat16)), "
                        "interleaved with the runs above:\n\n" + "\n".join(bf16_lines) + "\n\n")
            if scaling:
                f.write("Speed-up from 1 to 2 threads (time at 1 / time at 2):\n\n| optimizer | model | loom | PyTorch |\n|---|---|---|---|\n")
                f.write("\n".join(scaling) + "\n")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
