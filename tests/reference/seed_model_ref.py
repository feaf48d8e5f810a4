#!/usr/bin/python3
"""Independent NumPy reference for loom's seed model; writes tests/reference/seed_model.ref.

    /usr/bin/python3 tests/reference/seed_model_ref.py            (from the repository root)

Written from the spec (/work/shared/spec/keras-semantics.md sections 2, 3, 5, 8), not from loom's
C code. All arithmetic is float64. The model:

    x (8) -> Dense A 6 relu -> Dense B 5 tanh -> { Dense C 3 softmax : categorical_crossentropy, w 0.5
                                                    Dense D 4 linear  : mse,                      w 0.3 }

Kernels are (in, out), y = x.K + b. CCE on the final softmax is computed from the logits
(-sum t*log_softmax(z), the TF-backend fused path); MSE is the mean over the 4 columns; each
per-sample value is multiplied by its sample weight (1 when absent) and the batch reduction is
sum / batch size (Keras "sum_over_batch_size"). total = 0.5*L_C + 0.3*L_D.

Every random input and weight is rounded to float32 before use, so that the C test (which reads
them as float) starts from exactly the numbers this script used.

The script asserts its own backward pass against central differences, and also reruns the
training cases in float32 to measure how far float32 arithmetic drifts from float64 after 9
steps; the C test's tolerances are checked here to sit well above that drift.
"""
import os
import sys

import numpy as np

SEED = 1234
N = 48
BATCH = 16
EPOCHS = 3
LOSS_WEIGHTS = {"C": 0.5, "D": 0.3}
# (layer, fan_in, units), in graph order; the weights of each are kernel then bias
LAYERS = [("A", 8, 6), ("B", 6, 5), ("C", 5, 3), ("D", 5, 4)]
PARAM_NAMES = [f"{l}.{w}" for l, _, _ in LAYERS for w in ("kernel", "bias")]

# tolerances the C test uses (|loom - ref| <= atol + rtol*|ref|); asserted against float32 drift
TOL_ONE_PASS = (1e-5, 1e-4)
TOL_TRAINED = (1e-4, 1e-3)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_data_and_weights():
    rng = np.random.default_rng(SEED)
    x = f32(rng.uniform(-1.0, 1.0, size=(N, 8)))
    classes = rng.integers(0, 3, size=N)
    yC = np.eye(3)[classes]
    yD = f32(rng.standard_normal(size=(N, 4)))
    params = {}
    for layer, fan_in, units in LAYERS:
        params[f"{layer}.kernel"] = f32(rng.uniform(-0.5, 0.5, size=(fan_in, units)))
        params[f"{layer}.bias"] = f32(rng.uniform(-0.5, 0.5, size=(units,)))
    swC = f32(rng.uniform(0.0, 2.0, size=N))
    return x, yC, yD, params, swC


def log_softmax(z):
    zmax = z.max(axis=1, keepdims=True)
    s = z - zmax
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def forward(p, x):
    a1 = x @ p["A.kernel"] + p["A.bias"]
    h1 = np.maximum(a1, 0)
    a2 = h1 @ p["B.kernel"] + p["B.bias"]
    h2 = np.tanh(a2)
    zC = h2 @ p["C.kernel"] + p["C.bias"]  # logits of the softmax output
    zD = h2 @ p["D.kernel"] + p["D.bias"]
    return dict(a1=a1, h1=h1, h2=h2, zC=zC, zD=zD)


def losses(p, x, yC, yD, swC=None, swD=None):
    """Unweighted per-output losses (L_C, L_D) on one batch, Keras reduction."""
    f = forward(p, x)
    n = x.shape[0]
    vC = -(yC * log_softmax(f["zC"])).sum(axis=1)
    vD = ((f["zD"] - yD) ** 2).mean(axis=1)
    if swC is not None:
        vC = vC * swC
    if swD is not None:
        vD = vD * swD
    return vC.sum() / n, vD.sum() / n


def total_of(LC, LD, wC, wD):
    return wC * LC + wD * LD


def gradients(p, x, yC, yD, wC, wD, swC=None, swD=None):
    """d(wC*L_C + wD*L_D)/d params, one backward pass; also returns (L_C, L_D)."""
    f = forward(p, x)
    n = x.shape[0]
    sC = np.ones(n, dtype=x.dtype) if swC is None else swC
    sD = np.ones(n, dtype=x.dtype) if swD is None else swD
    # fused softmax + CCE: d(-sum t log_softmax z)/dz = softmax(z)*sum(t) - t = p - t for one-hot t
    prob = np.exp(log_softmax(f["zC"]))
    dzC = (wC / n) * sC[:, None] * (prob * yC.sum(axis=1, keepdims=True) - yC)
    dzD = (wD / n) * sD[:, None] * 2.0 * (f["zD"] - yD) / yD.shape[1]
    g = {}
    g["C.kernel"] = f["h2"].T @ dzC
    g["C.bias"] = dzC.sum(axis=0)
    g["D.kernel"] = f["h2"].T @ dzD
    g["D.bias"] = dzD.sum(axis=0)
    # the fork at h2: both heads' gradients add up
    dh2 = dzC @ p["C.kernel"].T + dzD @ p["D.kernel"].T
    da2 = dh2 * (1.0 - f["h2"] ** 2)
    g["B.kernel"] = f["h1"].T @ da2
    g["B.bias"] = da2.sum(axis=0)
    dh1 = da2 @ p["B.kernel"].T
    da1 = dh1 * (f["a1"] > 0)
    g["A.kernel"] = x.T @ da1
    g["A.bias"] = da1.sum(axis=0)
    LC, LD = losses(p, x, yC, yD, swC, swD)
    return g, LC, LD


def check_gradients(p, x, yC, yD, wC, wD, swC=None):
    """Central differences on every parameter, in float64."""
    g, _, _ = gradients(p, x, yC, yD, wC, wD, swC)
    # relu kinks: a step must not carry a pre-activation across 0
    assert np.abs(forward(p, x)["a1"]).min() > 1e-4, "a relu input lies too near its kink"
    h = 1e-6
    worst = 0.0
    for name in PARAM_NAMES:
        w = p[name]
        num = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            old = w[idx]
            w[idx] = old + h
            lp = total_of(*losses(p, x, yC, yD, swC), wC, wD)
            w[idx] = old - h
            lm = total_of(*losses(p, x, yC, yD, swC), wC, wD)
            w[idx] = old
            num[idx] = (lp - lm) / (2 * h)
        err = np.abs(num - g[name])
        assert np.all(err <= 1e-8 + 1e-6 * np.abs(g[name])), (name, err.max())
        worst = max(worst, err.max())
    return worst


def opt_step(kind, w, g, s1, s2, t, lr, momentum):
    """One Keras 3 update of w in place (spec section 8); s1 = velocity or Adam m, s2 = Adam v,
    t = iterations + 1. Arithmetic stays in w's dtype."""
    one = w.dtype.type(1.0)
    if kind == "sgd":
        w -= lr * g
    elif kind == "nesterov":
        # v <- mu v - lr g; w <- w + mu v - lr g (with the new v)
        s1 *= momentum
        s1 -= lr * g
        w += momentum * s1 - lr * g
    elif kind == "momentum":  # not a fixture case: a wrong rule the tolerances must catch
        s1 *= momentum
        s1 -= lr * g
        w += s1
    elif kind in ("adam", "adam_no_bias_correction"):
        b1, b2, eps = w.dtype.type(0.9), w.dtype.type(0.999), w.dtype.type(1e-7)
        s1 += (one - b1) * (g - s1)
        s2 += (one - b2) * (g * g - s2)
        alpha = lr * np.sqrt(one - b2**t) / (one - b1**t) if kind == "adam" else lr
        w -= alpha * s1 / (np.sqrt(s2) + eps)
    else:
        raise ValueError(kind)


def check_optimizer_vectors():
    """The spec's section 8 test vectors: w=1, g=0.5 three times, lr 0.1 (Adam: its defaults)."""
    cases = [("sgd", 0.1, 0.0, [0.95, 0.90, 0.85]),
             ("nesterov", 0.1, 0.9, [0.905, 0.7695, 0.59755]),
             ("adam", 0.001, 0.0, [0.9990000063, 0.9980000108, 0.9970000145])]
    for kind, lr, mom, expect in cases:
        w, s1, s2 = np.ones(1), np.zeros(1), np.zeros(1)
        got = []
        for t in (1, 2, 3):
            opt_step(kind, w, np.array([0.5]), s1, s2, t, lr, mom)
            got.append(w[0])
        assert np.allclose(got, expect, rtol=0, atol=1e-9), (kind, got)
    # one Adam step from w=0 with g=1e-6: epsilon-hat placement
    w, s1, s2 = np.zeros(1), np.zeros(1), np.zeros(1)
    opt_step("adam", w, np.array([1e-6]), s1, s2, 1, 0.001, 0.0)
    assert abs(w[0] - -2.4025307e-4) < 1e-10, w[0]


def train(p0, x, yC, yD, kind, lr, momentum=0.0, dtype=np.float64):
    """EPOCHS epochs, batches of BATCH in order. Returns (final params, history dict).

    History values are batch-size-weighted means of per-batch values computed with the weights
    before that batch's update (spec section 5). dtype=float32 reruns the same arithmetic in
    float32, only to measure rounding drift."""
    cast = lambda a: np.asarray(a, dtype=dtype)
    p = {k: cast(v).copy() for k, v in p0.items()}
    x, yC, yD = cast(x), cast(yC), cast(yD)
    wC, wD = dtype(LOSS_WEIGHTS["C"]), dtype(LOSS_WEIGHTS["D"])
    lr, momentum = dtype(lr), dtype(momentum)
    slot1 = {k: np.zeros_like(v) for k, v in p.items()}  # SGD velocity / Adam m
    slot2 = {k: np.zeros_like(v) for k, v in p.items()}  # Adam v
    hist = {"loss": [], "C_loss": [], "D_loss": []}
    iterations = 0
    for _ in range(EPOCHS):
        acc = {"loss": 0.0, "C_loss": 0.0, "D_loss": 0.0}
        seen = 0
        for start in range(0, N, BATCH):
            sl = slice(start, min(start + BATCH, N))
            nb = sl.stop - sl.start
            g, LC, LD = gradients(p, x[sl], yC[sl], yD[sl], wC, wD)
            acc["loss"] += nb * float(total_of(LC, LD, wC, wD))
            acc["C_loss"] += nb * float(LC)
            acc["D_loss"] += nb * float(LD)
            seen += nb
            t = iterations + 1
            for k in p:
                opt_step(kind, p[k], g[k], slot1[k], slot2[k], t, lr, momentum)
            iterations += 1
        for key in hist:
            hist[key].append(acc[key] / seen)
    return p, hist


def close(a, b, tol):
    atol, rtol = tol
    return np.all(np.abs(np.asarray(a) - np.asarray(b)) <= atol + rtol * np.abs(np.asarray(b)))


def drift_check(label, p0, x, yC, yD, kind, lr, momentum, ref_p, ref_h):
    """The float32 rerun must sit well inside the C test's trained tolerance (a tenth of it)."""
    p32, h32 = train(p0, x, yC, yD, kind, lr, momentum, dtype=np.float32)
    atol, rtol = TOL_TRAINED
    margin = (atol / 10, rtol / 10)
    worst = 0.0
    for k in PARAM_NAMES:
        assert close(p32[k], ref_p[k], margin), (label, k, np.abs(p32[k] - ref_p[k]).max())
        worst = max(worst, np.abs(p32[k] - ref_p[k]).max())
    for key in ref_h:
        assert close(h32[key], ref_h[key], margin), (label, key)
    return worst


class Writer:
    def __init__(self, path):
        self.f = open(path, "w", newline="\n")

    def comment(self, text):
        for line in text.splitlines():
            self.f.write(f"# {line}\n")

    def array(self, name, values):
        v = np.asarray(values, dtype=np.float64).ravel()
        self.f.write(f"{name} {v.size}\n")
        for i in range(0, v.size, 6):
            self.f.write(" ".join(f"{e:.9e}" for e in v[i : i + 6]) + "\n")

    def close(self):
        self.f.close()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "seed_model.ref")

    check_optimizer_vectors()
    x, yC, yD, params, swC = make_data_and_weights()
    wC, wD = LOSS_WEIGHTS["C"], LOSS_WEIGHTS["D"]

    # --- one pass on all 48: losses and gradients
    g_total, LC, LD = gradients(params, x, yC, yD, wC, wD)
    g_C, _, _ = gradients(params, x, yC, yD, 1.0, 0.0)
    g_D, _, _ = gradients(params, x, yC, yD, 0.0, 1.0)
    for k in PARAM_NAMES:  # linearity: total = 0.5 grad_C + 0.3 grad_D
        assert np.allclose(g_total[k], wC * g_C[k] + wD * g_D[k], rtol=1e-12, atol=1e-15)
    fd_worst = check_gradients(params, x, yC, yD, wC, wD)
    fd_worst = max(fd_worst, check_gradients(params, x, yC, yD, 1.0, 0.0))
    fd_worst = max(fd_worst, check_gradients(params, x, yC, yD, 0.0, 1.0))

    # --- sample weights on C only
    sw_g, sw_LC, sw_LD = gradients(params, x, yC, yD, wC, wD, swC=swC)
    fd_worst = max(fd_worst, check_gradients(params, x, yC, yD, wC, wD, swC=swC))
    assert np.isclose(sw_LD, LD)

    # float32 rerun of the one-pass gradient: must sit well inside the C test's tolerance
    c32 = lambda a: np.asarray(a, dtype=np.float32)
    p32 = {k: c32(v) for k, v in params.items()}
    for sw in (None, swC):
        g32, LC32, LD32 = gradients(p32, c32(x), c32(yC), c32(yD), np.float32(wC), np.float32(wD),
                                    swC=None if sw is None else c32(sw))
        g64 = g_total if sw is None else sw_g
        margin = (TOL_ONE_PASS[0] / 10, TOL_ONE_PASS[1] / 10)
        for k in PARAM_NAMES:
            assert g32[k].dtype == np.float32
            assert close(g32[k], g64[k], margin), (k, np.abs(g32[k] - g64[k]).max())
        assert close(LC32, LC if sw is None else sw_LC, margin)

    # --- training
    runs = {
        "sgd": ("sgd", 0.1, 0.0),
        "adam": ("adam", 0.01, 0.0),
        "nesterov": ("nesterov", 0.1, 0.9),
    }
    results = {}
    drift = {}
    for label, (kind, lr, mom) in runs.items():
        p_end, hist = train(params, x, yC, yD, kind, lr, mom)
        results[label] = (p_end, hist)
        drift[label] = drift_check(label, params, x, yC, yD, kind, lr, mom, p_end, hist)
        moved = max(np.abs(p_end[k] - params[k]).max() for k in PARAM_NAMES)
        assert moved > 1e-2, f"{label}: weights barely moved ({moved})"

    # the tolerances must still tell apart rules a C implementation could plausibly get wrong
    mutants = [("nesterov", "momentum", 0.1, 0.9), ("adam", "adam_no_bias_correction", 0.01, 0.0)]
    for label, kind, lr, mom in mutants:
        p_bad, _ = train(params, x, yC, yD, kind, lr, mom)
        assert not all(close(p_bad[k], results[label][0][k], TOL_TRAINED) for k in PARAM_NAMES), kind
    for label in runs:  # history taken after each update instead of before
        p_end, hist = results[label]
        LC_end, LD_end = losses(p_end, x, yC, yD)
        assert not close(total_of(LC_end, LD_end, wC, wD), hist["loss"][-1], TOL_TRAINED), label
    assert not close(wC * LC, total_of(LC, LD, wC, wD), TOL_ONE_PASS)  # D's share is visible

    w = Writer(out)
    w.comment(
        "loom seed-model reference, generated by tests/reference/seed_model_ref.py (do not edit).\n"
        "Blocks: a line 'name count', then count values. Kernels are (in, out) row-major.\n"
        f"seed {SEED}, N {N}; losses C: categorical_crossentropy (from logits) w {wC}, "
        f"D: mse w {wD}; fits: batch {BATCH}, no shuffle, {EPOCHS} epochs."
    )
    w.array("x", x)
    w.array("yC", yC)
    w.array("yD", yD)
    w.array("swC", swC)
    for k in PARAM_NAMES:
        w.array(k, params[k])
    w.array("init.loss", [total_of(LC, LD, wC, wD)])
    w.array("init.C_loss", [LC])
    w.array("init.D_loss", [LD])
    for prefix, g in (("grad_total", g_total), ("grad_C", g_C), ("grad_D", g_D)):
        for k in PARAM_NAMES:
            w.array(f"{prefix}.{k}", g[k])
    for label in runs:
        p_end, hist = results[label]
        for k in PARAM_NAMES:
            w.array(f"{label}.{k}", p_end[k])
        for key in ("loss", "C_loss", "D_loss"):
            w.array(f"{label}.hist.{key}", hist[key])
    w.array("sw.init.loss", [total_of(sw_LC, sw_LD, wC, wD)])
    w.array("sw.init.C_loss", [sw_LC])
    w.array("sw.init.D_loss", [sw_LD])
    for k in PARAM_NAMES:
        w.array(f"sw.grad_total.{k}", sw_g[k])
    w.close()

    print(f"wrote {out}")
    print(f"init: loss {total_of(LC, LD, wC, wD):.6f}  C_loss {LC:.6f}  D_loss {LD:.6f}")
    print(f"sample-weighted: loss {total_of(sw_LC, sw_LD, wC, wD):.6f}  C_loss {sw_LC:.6f}")
    print(f"finite differences: worst |analytic - numeric| = {fd_worst:.2e}")
    for label in runs:
        h = results[label][1]
        print(f"{label}: loss per epoch {np.round(h['loss'], 6).tolist()}; "
              f"float32 rerun drift on weights {drift[label]:.2e}")


if __name__ == "__main__":
    main()
