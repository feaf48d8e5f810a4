#!/usr/bin/python3
"""bench/run.py — loom against PyTorch (CPU) in one run, interleaved, with sgemm as the ceiling.

    /usr/bin/python3 bench/run.py [--build build] [--repeats 9] [--epochs 3] [--models tiny,mnist-mlp,wide]
                                  [--threads 1,2] [--opts sgd,adam] [--markdown BENCHMARKS.md]
                                  [--baseline OTHER_BUILD] [--no-bf16] [--note TEXT]

For every (threads, optimizer, model) it starts loom_bench, torch_bench.py and sgemm_bench in turn,
each `repeats` times in its own process (so peak resident memory is per framework), and reports the
median over processes of each process's median ms per step. Threads are pinned for both:
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS (Debian's PyTorch calls the system OpenBLAS, which
ignores torch.set_num_threads), torch.set_num_threads, LOOM_NUM_THREADS; at 2 threads PyTorch
also gets OMP_WAIT_POLICY=PASSIVE so its OpenMP pool does not fight OpenBLAS's. Both frameworks
run OpenBLAS's best kernel for the CPU: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (which this
workplace sets to an older core type) are removed from the environment of every process.

Unless --no-bf16, loom under mixed_bfloat16 and PyTorch under torch.autocast("cpu", bfloat16)
run in the same rotation, and a second table gives both frameworks' bfloat16 steps, the ratios the
targets of issue 18 name, and GFLOP/s against the core's peak (peak_bench: a VFMADD231PS and a
VDPBF16PS loop, times the thread count); a third table assesses every target of the run.

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
STEPS = {"tiny": 200, "mnist-mlp": 20, "wide": 3, "cnn": 10, "lstm": 10, "towers": 10}
BATCH = {"tiny": 32, "mnist-mlp": 128, "wide": 256, "cnn": 64, "lstm": 64, "towers": 64}
FLOPS = {}  # filled from models.h's formula below


def step_flops(name):
    """As bench_step_flops in models.h."""
    if name == "cnn":
        c1, c2, d, heads = 2.0 * 26 * 26 * 32 * 9, 2.0 * 11 * 11 * 64 * 288, 2.0 * 1600 * 128, 2.0 * 128 * 11
        return 64 * (2 * c1 + 3 * c2 + 3 * d + 3 * heads)
    if name == "lstm":  # (40, 32) -> LSTM 128, batch 64
        return 40 * 2 * 64 * 4 * 128 * (2 * 32 + 3 * 128) + 3 * 2 * 64 * 128 * 11
    if name == "towers":  # (40, 32) -> LSTM 64 beside LSTM 64, batch 64
        return 2 * 40 * 2 * 64 * 4 * 64 * (2 * 32 + 3 * 64) + 3 * 2 * 64 * 128 * 11
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


def measure_peak(path):
    """The core's float32 and bfloat16 GFLOP/s (peak_bench.c); nan where it cannot run."""
    out = subprocess.run([path, "5"], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{path}: {out.stderr.strip()} (no peak column)", file=sys.stderr)
        return float("nan"), float("nan")
    f = out.stdout.split()
    return float(f[0]), float(f[1])


def bf16_table(rows, peak_f32, peak_bf16):
    """loom float32 / mixed_bfloat16 and PyTorch float32 / autocast bfloat16, cell by cell."""
    lines = ["| threads | optimizer | model | loom float32 ms | loom mixed_bfloat16 ms | PyTorch float32 ms | "
             "PyTorch autocast bf16 ms | vs loom float32 | vs PyTorch float32 | vs PyTorch autocast | "
             "loom float32 GFLOP/s (% f32 peak) | loom bf16 GFLOP/s (% bf16 peak) | PyTorch autocast GFLOP/s "
             "(% bf16 peak) | peak RSS MiB: loom f32 / loom bf16 / PyTorch autocast |", "|" + "---|" * 14]
    for r in rows:
        fl, t = step_flops(r["model"]), r["threads"]
        lb, tb = r["loom_bf16_ms"], r["torch_bf16_ms"]
        gf_l32, gf_lb, gf_tb = fl / r["loom_ms"] / 1e6, fl / lb / 1e6, fl / tb / 1e6
        lines.append(
            f"| {t} | {r['opt']} | {r['model']} | {r['loom_ms']:.3f} | {lb:.3f} | {r['torch_ms']:.3f} | {tb:.3f} | "
            f"{r['loom_ms'] / lb:.2f} | {r['torch_ms'] / lb:.2f} | {tb / lb:.2f} | "
            f"{gf_l32:.1f} ({fmt(gf_l32 / (peak_f32 * t) * 100, '.0f', ' %')}) | "
            f"{gf_lb:.1f} ({fmt(gf_lb / (peak_bf16 * t) * 100, '.0f', ' %')}) | "
            f"{gf_tb:.1f} ({fmt(gf_tb / (peak_bf16 * t) * 100, '.0f', ' %')}) | "
            f"{r['loom_rss']:.0f} / {r['loom_bf16_rss']:.0f} / {r['torch_bf16_rss']:.0f} |")
    return lines


def targets_table(rows, bf16):
    """Each target of issue 18 (and the two float32 targets it restates) against this run's medians."""
    lines = ["| target | cell (threads, optimizer) | measured | met |", "|---|---|---|---|"]

    def add(target, where, value, ok):
        lines.append(f"| {target} | {where} | {value} | {'yes' if ok else '**no**'} |")

    for r in rows:
        where = f"{r['threads']}, {r['opt']}"
        if bf16 and r["model"] in ("mnist-mlp", "wide"):
            lb = r["loom_bf16_ms"]
            add(f"{r['model']} mixed_bfloat16 ≥ 1.7× loom float32", where, f"{r['loom_ms'] / lb:.2f}×",
                r["loom_ms"] / lb >= 1.7)
            add(f"{r['model']} mixed_bfloat16 ≥ 2.5× PyTorch float32", where, f"{r['torch_ms'] / lb:.2f}×",
                r["torch_ms"] / lb >= 2.5)
            add(f"{r['model']} mixed_bfloat16 ≥ 2× PyTorch autocast bfloat16", where,
                f"{r['torch_bf16_ms'] / lb:.2f}×", r["torch_bf16_ms"] / lb >= 2)
        if bf16 and r["model"] in ("cnn", "lstm"):
            need = 1.5 if r["model"] == "cnn" else 1.3
            x = r["loom_ms"] / r["loom_bf16_ms"]
            add(f"{r['model']} mixed_bfloat16 ≥ {need}× loom float32", where, f"{x:.2f}×", x >= need)
        if bf16 and r["model"] == "wide":
            add("wide peak memory, mixed_bfloat16 ≤ loom float32", where,
                f"{r['loom_bf16_rss']:.0f} MiB against {r['loom_rss']:.0f} MiB", r["loom_bf16_rss"] <= r["loom_rss"])
        if r["model"] == "mnist-mlp" and r["threads"] == 1:
            pct = r["loom_gf"] / r["sgemm_gf"] * 100
            add("mnist-mlp float32 at 1 thread ≥ 95 % of sgemm alone", where, f"{pct:.0f} %", pct >= 95)
        if r["model"] == "wide":
            bound = 4 if r["opt"] == "sgd" else 2
            add(f"wide float32 peak memory ≤ 1/{bound} of PyTorch's", where,
                f"{r['loom_rss']:.0f} / {r['torch_rss']:.0f} MiB = 1/{r['torch_rss'] / r['loom_rss']:.1f}",
                r["loom_rss"] * bound <= r["torch_rss"])
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs in each process (its median), after one warm-up")
    ap.add_argument("--models", default="tiny,mnist-mlp,wide,cnn,lstm,towers")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--opts", default="sgd,adam")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--baseline", default=None, help="another build folder whose loom_bench runs interleaved")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false",
                    help="leave out loom under mixed_bfloat16 and PyTorch under autocast(bfloat16)")
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)  # the default; kept for old command lines
    ap.add_argument("--note", default=None, help="a line written under the date in the markdown (the conditions)")
    args = ap.parse_args()
    loom = os.path.join(args.build, "loom_bench")
    sgemm = os.path.join(args.build, "sgemm_bench")
    torch_script = os.path.join(HERE, "torch_bench.py")
    peak_f32, peak_bf16 = measure_peak(os.path.join(args.build, "peak_bench"))
    print(f"core peak (peak_bench, 1 thread): float32 {peak_f32:.1f} GFLOP/s, bfloat16 {peak_bf16:.1f} GFLOP/s",
          flush=True)
    epochs = str(args.epochs)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for opt in args.opts.split(","):
            for model in args.models.split(","):
                steps = STEPS[model]
                lt, tt, lr, tr, st, bt, lb, tb, lbr, tbr = [], [], [], [], [], [], [], [], [], []
                for _ in range(args.repeats):  # interleaved: loom, torch, sgemm, loom, torch, sgemm, ...
                    ms, rss = run([loom, model, opt, str(steps), epochs], env_for(threads, False))
                    lt.append(ms), lr.append(rss)
                    if args.baseline:
                        bt.append(run([os.path.join(args.baseline, "loom_bench"), model, opt, str(steps), epochs],
                                      env_for(threads, False))[0])
                    ms, rss = run(["/usr/bin/python3", torch_script, model, opt, str(steps), epochs, str(threads)],
                                  env_for(threads, True))
                    tt.append(ms), tr.append(rss)
                    if args.bf16:
                        ms, rss = run([loom, model, opt, str(steps), epochs], env_for(threads, False, "mixed_bfloat16"))
                        lb.append(ms), lbr.append(rss)
                        ms, rss = run(["/usr/bin/python3", torch_script, model, opt, str(steps), epochs, str(threads)],
                                      env_for(threads, True, "mixed_bfloat16"))
                        tb.append(ms), tbr.append(rss)
                    if model not in ("cnn", "lstm", "towers"):  # these have no sgemm-only counterpart here
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
                               loom_bf16_rss=max(lbr) / 1024, torch_bf16_rss=max(tbr) / 1024)
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
    bf16_lines = bf16_table(rows, peak_f32, peak_bf16) if args.bf16 else []
    target_lines = targets_table(rows, args.bf16)
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
    print("\n" + "\n".join(target_lines))
    if args.markdown:
        meta = (f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()} ({os.cpu_count()} cores), OpenBLAS kernel "
                f"{kernel_name()} for both frameworks, PyTorch from Debian (python3-torch), {args.repeats} interleaved "
                f"processes per framework and cell ({args.epochs} timed epochs each), medians. Core peak "
                f"(bench/peak_bench.c, one thread): float32 "
                f"{peak_f32:.1f} GFLOP/s (VFMADD231PS), bfloat16 {peak_bf16:.1f} GFLOP/s (VDPBF16PS).")
        if args.note:
            meta += "\n\n" + args.note
        with open(args.markdown, "w") as f:
            f.write("# Benchmarks\n\n")
            f.write("Command (from the repository root, after `bash scripts/test.sh` or a Release build in build/):\n\n")
            f.write("    /usr/bin/python3 " + " ".join(["bench/run.py"] + sys.argv[1:]) + "\n\n")
            f.write(meta + "\n\n")
            f.write("Models (bench/models.h, bench/torch_bench.py): trunk A -> B (relu), heads C (10, softmax + "
                    "categorical crossentropy, weight 0.5) and D (1, linear + mse, weight 0.3); cnn: (28,28,1) -> "
                    "Conv 32 3x3 relu -> MaxPool 2 -> Conv 64 3x3 relu -> MaxPool 2 -> Flatten -> Dense 128 relu -> "
                    "the same heads; lstm: (40 steps, 32 features) -> LSTM 128 (last state) -> the same heads, "
                    "batch 64; towers: the same input -> LSTM 64 beside LSTM 64, last states concatenated -> the same "
                    "heads, batch 64 (two independent branches); synthetic data; one epoch of `steps` batches per timing, shuffled. The sgemm "
                    "column times OpenBLAS alone on the same products as loom issues them (MLPs only), in the same "
                    "rotation of processes.\n\n")
            f.write(table + "\n\n")
            f.write(predict_line + "\n\n")
            if bf16_lines:
                f.write("mixed_bfloat16 (loom's policy; PyTorch's torch.autocast('cpu', dtype=torch.bfloat16) on the "
                        "forward, its own best bfloat16 path), interleaved with the runs above. Speed-ups are time over "
                        "loom mixed_bfloat16's time; \"% peak\" is GFLOP/s over the core's peak times the threads "
                        "(loom float32 against the float32 peak, the bfloat16 columns against the bfloat16 peak):\n\n"
                        + "\n".join(bf16_lines) + "\n\n")
            f.write("Targets (issue 18, and the float32 targets it restates), from the tables above:\n\n"
                    + "\n".join(target_lines) + "\n\n")
            if scaling:
                f.write("Speed-up from 1 to 2 threads (time at 1 / time at 2):\n\n| optimizer | model | loom | PyTorch |\n|---|---|---|---|\n")
                f.write("\n".join(scaling) + "\n")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
