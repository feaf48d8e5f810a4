"""torch_bench.py — the same training step as loom_bench.c, in PyTorch (CPU).

    python3 torch_bench.py MODEL sgd|adam STEPS REPEATS THREADS

Prints: model opt threads median_ms min_ms peak_rss_kb. The caller pins OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS (Debian's PyTorch calls the system OpenBLAS, which ignores set_num_threads)."""
import os
import resource
import sys
import time

import torch

MODELS = {  # name: (in, a, b, classes, batch) — keep in step with models.h
    "tiny": (32, 64, 64, 10, 32),
    "mnist-mlp": (784, 512, 512, 10, 128),
    "wide": (1024, 4096, 4096, 10, 256),
    "cnn": (784, 0, 128, 10, 64),
    "lstm": (32, 0, 128, 10, 64),
    "towers": (32, 64, 64, 10, 64),
}
LSTM_STEPS = 40  # models.h: (steps, in) -> LSTM b -> heads


class LstmModel(torch.nn.Module):
    """(40, 32) -> LSTM 128 (last state) -> the heads."""

    def __init__(self, n_in, b, classes):
        super().__init__()
        self.lstm = torch.nn.LSTM(n_in, b, batch_first=True)
        self.C = torch.nn.Linear(b, classes)
        self.D = torch.nn.Linear(b, 1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        h = h[-1]
        return self.C(h), self.D(h)


class TowersModel(torch.nn.Module):
    """(40, 32) -> LSTM 64 and, beside it over the same input, LSTM 64; last states concatenated -> the heads."""

    def __init__(self, n_in, a, b, classes):
        super().__init__()
        self.lstm = torch.nn.LSTM(n_in, b, batch_first=True)
        self.lstm_a = torch.nn.LSTM(n_in, a, batch_first=True)
        self.C = torch.nn.Linear(a + b, classes)
        self.D = torch.nn.Linear(a + b, 1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        _, (ha, _) = self.lstm_a(x)
        h = torch.cat([h[-1], ha[-1]], dim=1)
        return self.C(h), self.D(h)


class ConvModel(torch.nn.Module):
    """(1,28,28) -> Conv 32 3x3 relu -> MaxPool 2 -> Conv 64 3x3 relu -> MaxPool 2 -> Dense 128 relu."""

    def __init__(self, b, classes):
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(1600, b), torch.nn.ReLU())
        self.C = torch.nn.Linear(b, classes)
        self.D = torch.nn.Linear(b, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.C(h), self.D(h)


class SeedModel(torch.nn.Module):
    def __init__(self, n_in, a, b, classes):
        super().__init__()
        self.A = torch.nn.Linear(n_in, a)
        self.B = torch.nn.Linear(a, b)
        self.C = torch.nn.Linear(b, classes)
        self.D = torch.nn.Linear(b, 1)

    def forward(self, x):
        h = torch.relu(self.B(torch.relu(self.A(x))))
        return self.C(h), self.D(h)


def main():
    name, opt_name, steps, repeats, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    n_in, a, b, classes, batch = MODELS[name]
    torch.manual_seed(3)
    model = (ConvModel(b, classes) if name == "cnn" else LstmModel(n_in, b, classes) if name == "lstm"
             else TowersModel(n_in, a, b, classes) if name == "towers" else SeedModel(n_in, a, b, classes))
    # foreach: the multi-tensor update, PyTorch's fastest on CPU here (Adam 2-5 % faster, SGD about the same)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7, foreach=True) if opt_name == "adam"
           else torch.optim.SGD(model.parameters(), lr=1e-3, foreach=True))
    n = batch * steps
    xs = torch.rand(n, LSTM_STEPS, n_in) * 2 - 1 if name in ("lstm", "towers") else torch.rand(n, n_in) * 2 - 1
    if name == "cnn":
        xs = xs.reshape(n, 1, 28, 28)
    yc = torch.randint(0, classes, (n,))
    yd = torch.rand(n, 1)
    ce = torch.nn.CrossEntropyLoss()
    mse = torch.nn.MSELoss()
    # LOOM_BENCH_POLICY=mixed_bfloat16 (as loom_bench): PyTorch's own bfloat16 path, autocast on
    # the forward (its matrix products in bfloat16 through oneDNN), the losses in float32
    policy = os.environ.get("LOOM_BENCH_POLICY", "float32")
    if policy not in ("float32", "mixed_bfloat16"):
        sys.exit("torch_bench: LOOM_BENCH_POLICY must be float32 or mixed_bfloat16")
    autocast = policy == "mixed_bfloat16"

    def epoch():
        perm = torch.randperm(n)
        for s in range(steps):
            idx = perm[s * batch:(s + 1) * batch]
            x, c, d = xs[idx], yc[idx], yd[idx]
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits, pred = model(x)
            total = 0.5 * ce(logits.float(), c) + 0.3 * mse(pred.float(), d)
            total.backward()
            opt.step()

    if os.environ.get("LOOM_BENCH_PREDICT"):
        model.eval()
        best = []
        with torch.no_grad():
            for _ in range(repeats):
                t0 = time.perf_counter()
                for i in range(1000):
                    model(xs[i % n:i % n + 1])
                best.append((time.perf_counter() - t0) / 1000 * 1e6)
        best.sort()
        print(f"{name} predict-batch-1 {threads} {best[len(best) // 2]:.3f} us")
        return
    epoch()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        epoch()
        times.append((time.perf_counter() - t0) / steps * 1e3)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{name} {opt_name} {threads} {times[len(times) // 2]:.6f} {times[0]:.6f} {rss}")


if __name__ == "__main__":
    main()
