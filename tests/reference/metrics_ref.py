#!/usr/bin/python3
"""metrics_ref.py — writes tests/reference/metrics_ref.txt, the fixture of tests/test_metrics_ref.c.

    cd /work/main && /usr/bin/python3 tests/reference/metrics_ref.py [output]

Reference values for loom's confusion-matrix metrics and class weights, from scikit-learn
(Debian python3-sklearn) and NumPy; shares no code with loom. Deterministic
(numpy.random.default_rng(2024)); every input is rounded to float32 first, so the C test feeds
exactly the same numbers.

* ROC AUC and PR AUC as Keras 3 computes them (keras/src/metrics/confusion_metrics.py AUC with
  num_thresholds, summation_method 'interpolation' / 'minoring' / 'majoring'), written here in
  NumPy from Keras's published formulas: thresholds i/(n-1) for i = 1..n-2 between -1e-7 and
  1 + 1e-7, predictions counted by bucket ceil(p (n-1)) - 1 (float32 product) as
  metrics_utils._update_confusion_matrix_variables_optimized does; ROC by trapezoids over
  (FPR, TPR); PR with interpolation is interpolate_pr_auc (Davis & Goadrich). sklearn's
  roc_auc_score is the exact ROC area: the script asserts that Keras's discretised value is within
  2e-3 of it (200 thresholds; a discretisation error, not a bug), and the fixture holds both.
  sklearn's average_precision_score is a step sum, not Keras's PR AUC, so it is not used.
* Precision and Recall (thresholds, top_k, class_id, per-row sample weights): sklearn
  precision_score / recall_score over the flattened entries (Keras's metrics count every entry of
  every row), with top_k done in NumPy (a stable sort: ties go to the lower index, as top_k).
* F1Score / FBetaScore (average None, micro, macro, weighted; threshold None = the row's argmax,
  or a threshold): sklearn f1_score / fbeta_score on indicator arrays.
* MeanIoU: sklearn jaccard_score per class (average=None); the mean over the classes that occur
  in the targets or the predictions, as Keras (a class with a zero denominator is left out).
* class_weight: a Dense softmax layer with categorical crossentropy, weights per row
  sw * class_weight[argmax y]; the loss (sum / batch) and the gradient of kernel and bias in
  NumPy float64, and the same for sparse labels and for binary crossentropy on a sigmoid unit.

Format: tests/fixture.h ("name count" then the numbers).
"""
import sys

import numpy as np
import sklearn
from sklearn.metrics import (f1_score, fbeta_score, jaccard_score, precision_score, recall_score,
                             roc_auc_score)

rng = np.random.default_rng(2024)
out = []


def emit(name, v):
    vals = np.asarray(v, dtype=np.float64).reshape(-1)
    out.append("%s %d\n" % (name, vals.size))
    out.append(" ".join("%.12e" % x for x in vals) + "\n")


def f32(a):
    return np.asarray(a, dtype=np.float32)


# ---------------------------------------------------------------- Keras's AUC in NumPy

EPS = 1e-7


def keras_auc_counts(y, p, w, n):
    """tp, fp, fn, tn per threshold: the optimized (evenly spaced) path."""
    p = f32(p).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    w = np.asarray(w, np.float64).reshape(-1)
    b = np.ceil(p * np.float32(n - 1)).astype(np.float32) - np.float32(1)
    b = np.maximum(b, 0).astype(np.int64)
    b = np.minimum(b, n - 1)
    tpb = np.bincount(b, weights=y * w, minlength=n)
    fpb = np.bincount(b, weights=(1 - y) * w, minlength=n)
    tp = np.cumsum(tpb[::-1])[::-1]
    fp = np.cumsum(fpb[::-1])[::-1]
    fn = (y * w).sum() - tp
    tn = ((1 - y) * w).sum() - fp
    return tp, fp, fn, tn


def keras_auc_counts_thresholds(y, p, w, thresholds):
    """The general path: thresholds given, label = y != 0, pred > threshold."""
    p = f32(p).reshape(-1)
    lab = np.asarray(y).reshape(-1) != 0
    w = np.asarray(w, np.float64).reshape(-1)
    th = np.array([0.0 - EPS] + sorted(thresholds) + [1.0 + EPS], dtype=np.float32)
    pos = p[None, :] > th[:, None]
    tp = (pos & lab[None, :]) @ w
    fp = (pos & ~lab[None, :]) @ w
    fn = (~pos & lab[None, :]) @ w
    tn = (~pos & ~lab[None, :]) @ w
    return tp, fp, fn, tn


def dnn(a, b):
    return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


def keras_auc(counts, curve="ROC", summation="interpolation"):
    tp, fp, fn, tn = counts
    if curve == "PR" and summation == "interpolation":
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = dnn(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0), dnn(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return dnn(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0)).sum()
    recall = dnn(tp, tp + fn)
    if curve == "ROC":
        x, y = dnn(fp, fp + tn), recall
    else:
        x, y = recall, dnn(tp, tp + fp)
    if summation == "interpolation":
        h = (y[:-1] + y[1:]) / 2
    elif summation == "minoring":
        h = np.minimum(y[:-1], y[1:])
    else:
        h = np.maximum(y[:-1], y[1:])
    return ((x[:-1] - x[1:]) * h).sum()


# Keras's own test vectors (confusion_metrics_test.py AUCTest): num_thresholds 3
ky, kp, kw = np.array([0, 0, 1, 1]), f32([0, 0.5, 0.3, 0.9]), np.array([1, 2, 3, 4.0])
assert abs(keras_auc(keras_auc_counts(ky, kp, np.ones(4), 3)) - 0.75) < 1e-12
assert abs(keras_auc(keras_auc_counts(ky, kp, kw, 3)) - (1 + 4 / 7) / 2) < 1e-6
pr = keras_auc(keras_auc_counts(ky, kp, kw, 3), "PR")
assert abs(pr - (0.5 * (3 + 2 * np.log(2.5)) / 7 + 4 / 7)) < 1e-9, pr

# ---------------------------------------------------------------- AUC cases

N = 200
auc_y = (rng.random(N) < 0.4).astype(np.float32)
# scores that carry signal, so the curves are not trivial
auc_p = f32(np.clip(0.35 * auc_y + 0.65 * rng.random(N), 0, 1))
auc_w = f32(rng.uniform(0.1, 2.0, N))
auc_logits = f32(rng.normal(0, 2, N) + 1.5 * auc_y)
emit("auc.y", auc_y)
emit("auc.p", auc_p)
emit("auc.w", auc_w)
emit("auc.logits", auc_logits)
ones = np.ones(N)
cases = {
    "roc": keras_auc(keras_auc_counts(auc_y, auc_p, ones, 200)),
    "roc_w": keras_auc(keras_auc_counts(auc_y, auc_p, auc_w, 200)),
    "pr": keras_auc(keras_auc_counts(auc_y, auc_p, ones, 200), "PR"),
    "pr_w": keras_auc(keras_auc_counts(auc_y, auc_p, auc_w, 200), "PR"),
    "roc_min50": keras_auc(keras_auc_counts(auc_y, auc_p, ones, 50), "ROC", "minoring"),
    "roc_maj50": keras_auc(keras_auc_counts(auc_y, auc_p, ones, 50), "ROC", "majoring"),
    "pr_min50": keras_auc(keras_auc_counts(auc_y, auc_p, ones, 50), "PR", "minoring"),
    "pr_maj50": keras_auc(keras_auc_counts(auc_y, auc_p, ones, 50), "PR", "majoring"),
    "roc_thr": keras_auc(keras_auc_counts_thresholds(auc_y, auc_p, ones, [0.8, 0.1, 0.35])),
    "pr_thr": keras_auc(keras_auc_counts_thresholds(auc_y, auc_p, ones, [0.8, 0.1, 0.35]), "PR"),
    "roc_logits": keras_auc(keras_auc_counts(auc_y, 1 / (1 + np.exp(-auc_logits.astype(np.float32))), ones, 200)),
}
for k, v in cases.items():
    emit("auc.keras." + k, [v])
sk_roc = roc_auc_score(auc_y, auc_p)
sk_roc_w = roc_auc_score(auc_y, auc_p, sample_weight=auc_w)
assert abs(sk_roc - cases["roc"]) < 2e-3 and abs(sk_roc_w - cases["roc_w"]) < 2e-3, (sk_roc, cases["roc"])
emit("auc.sklearn.roc", [sk_roc])
emit("auc.sklearn.roc_w", [sk_roc_w])
emit("auc.sklearn.roc_logits", [roc_auc_score(auc_y, auc_logits)])

# multi-class predictions with multi_label=False: one curve over every entry
M, D = 60, 3
mc_y = np.eye(D, dtype=np.float32)[rng.integers(0, D, M)]
mc_p = f32(rng.dirichlet(np.ones(D), M) * 0.6 + 0.4 * mc_y)
emit("auc_mc.y", mc_y)
emit("auc_mc.p", mc_p)
emit("auc_mc.keras.roc", [keras_auc(keras_auc_counts(mc_y, mc_p, np.ones(M * D), 200))])
emit("auc_mc.sklearn.roc", [roc_auc_score(mc_y.reshape(-1), mc_p.reshape(-1))])

# ---------------------------------------------------------------- Precision / Recall

PN, PD = 60, 5
pr_y = (rng.random((PN, PD)) < 0.4).astype(np.float32)
pr_p = f32(np.round(rng.random((PN, PD)) * 64) / 64)  # ties on purpose (top_k's tie rule)
pr_w = f32(rng.uniform(0.0, 2.0, PN))
emit("pr.y", pr_y)
emit("pr.p", pr_p)
emit("pr.w", pr_w)
wflat = np.repeat(pr_w, PD).astype(np.float64)


def top_k_mask(p, k):
    m = np.zeros_like(p, dtype=bool)
    for r in range(p.shape[0]):
        m[r, np.argsort(-p[r], kind="stable")[:k]] = True
    return m


def prec_rec(y, pos, w=None):
    kw = {} if w is None else {"sample_weight": w}
    return (precision_score(y.reshape(-1), pos.reshape(-1), zero_division=0, **kw),
            recall_score(y.reshape(-1), pos.reshape(-1), zero_division=0, **kw))


for t in (0.5, 0.3, 0.7):
    p_, r_ = prec_rec(pr_y, pr_p > np.float32(t))
    emit("pr.precision.t%g" % t, [p_])
    emit("pr.recall.t%g" % t, [r_])
p_, r_ = prec_rec(pr_y, pr_p > np.float32(0.5), wflat)
emit("pr.precision.w", [p_])
emit("pr.recall.w", [r_])
p_, r_ = prec_rec(pr_y, top_k_mask(pr_p, 2))
emit("pr.precision.top2", [p_])
emit("pr.recall.top2", [r_])
p_, r_ = prec_rec(pr_y, top_k_mask(pr_p, 2) & (pr_p > np.float32(0.5)))
emit("pr.precision.top2_t0.5", [p_])
emit("pr.recall.top2_t0.5", [r_])
p_, r_ = prec_rec(pr_y[:, 3], pr_p[:, 3] > np.float32(0.5), pr_w)
emit("pr.precision.class3_w", [p_])
emit("pr.recall.class3_w", [r_])
p_, r_ = prec_rec(pr_y[:, 1], top_k_mask(pr_p, 2)[:, 1])
emit("pr.precision.class1_top2", [p_])
emit("pr.recall.class1_top2", [r_])

# ---------------------------------------------------------------- F-scores

FN_, FD = 80, 4
f_cls = rng.integers(0, FD - 1, FN_)  # class 3 never a target: its F-score is 0
f_y = np.eye(FD, dtype=np.float32)[f_cls]
f_p = f32(rng.dirichlet(np.ones(FD), FN_) * 0.5 + 0.5 * f_y * (rng.random((FN_, 1)) < 0.7))
f_w = f32(rng.uniform(0.0, 2.0, FN_))
f_ml_y = (rng.random((FN_, FD)) < 0.45).astype(np.float32)
emit("f.y", f_y)
emit("f.p", f_p)
emit("f.w", f_w)
emit("f.ml_y", f_ml_y)
argmax_pos = np.eye(FD, dtype=np.int64)[np.argmax(f_p, axis=1)]
assert ((f_p >= f_p.max(axis=1, keepdims=True)).sum(axis=1) == 1).all()  # no ties: argmax == Keras's rule
for avg in (None, "micro", "macro", "weighted"):
    tag = avg or "none"
    yi = f_y.astype(np.int64)
    emit("f.f1.argmax." + tag, np.atleast_1d(f1_score(yi, argmax_pos, average=avg, zero_division=0)))
    emit("f.f1.argmax_w." + tag,
         np.atleast_1d(f1_score(yi, argmax_pos, average=avg, sample_weight=f_w, zero_division=0)))
    emit("f.f2.t0.3." + tag,
         np.atleast_1d(fbeta_score(f_ml_y.astype(np.int64), (f_p > np.float32(0.3)).astype(np.int64), beta=2.0,
                                   average=avg, zero_division=0)))
    emit("f.f05.t0.3_w." + tag,
         np.atleast_1d(fbeta_score(f_ml_y.astype(np.int64), (f_p > np.float32(0.3)).astype(np.int64), beta=0.5,
                                   average=avg, sample_weight=f_w, zero_division=0)))

# ---------------------------------------------------------------- MeanIoU

IN, IC = 100, 5
iou_y = rng.integers(0, IC - 1, IN)  # class 4 never a target ...
iou_p = f32(rng.dirichlet(np.ones(IC - 1), IN) * 0.6 + 0.4 * np.eye(IC - 1)[iou_y])
iou_p = np.concatenate([iou_p, np.zeros((IN, 1), np.float32)], axis=1)  # ... nor predicted: left out
iou_w = f32(rng.uniform(0.0, 2.0, IN))
emit("iou.y", iou_y.astype(np.float32))
emit("iou.p", iou_p)
emit("iou.w", iou_w)
iou_pred = np.argmax(iou_p, axis=1)


def keras_mean_iou(y, p, w=None, ignore=None):
    if ignore is not None:
        keep = y != ignore
        y, p, w = y[keep], p[keep], (None if w is None else w[keep])
    per = jaccard_score(y, p, labels=list(range(IC)), average=None, sample_weight=w, zero_division=0)
    present = np.isin(np.arange(IC), np.concatenate([y, p]))
    return per[present].mean()


emit("iou.mean", [keras_mean_iou(iou_y, iou_pred)])
emit("iou.mean_w", [keras_mean_iou(iou_y, iou_pred, iou_w)])
emit("iou.mean_ignore0", [keras_mean_iou(iou_y, iou_pred, None, 0)])

# ---------------------------------------------------------------- class weights

CN, CI, CK = 12, 4, 3
cw_x = f32(rng.uniform(-1, 1, (CN, CI)))
cw_K = f32(rng.uniform(-0.5, 0.5, (CI, CK)))
cw_b = f32(rng.uniform(-0.2, 0.2, CK))
cw_cls = rng.integers(0, CK, CN)
cw_y = np.eye(CK, dtype=np.float32)[cw_cls]
cw_sw = f32(rng.uniform(0.5, 1.5, CN))
cw_map = f32([2.0, 0.5, 3.0])
for name, v in (("x", cw_x), ("K", cw_K), ("b", cw_b), ("y", cw_y), ("cls", cw_cls), ("sw", cw_sw),
                ("map", cw_map)):
    emit("cw." + name, v)


def softmax_ce(x, K, b, y, w):
    z = x.astype(np.float64) @ K + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = (w * -(y * np.log(p)).sum(axis=1)).sum() / len(x)
    dz = (p - y) * w[:, None] / len(x)
    return loss, x.T.astype(np.float64) @ dz, dz.sum(axis=0)


w_rows = cw_map.astype(np.float64)[cw_cls]
for tag, w in (("cce", w_rows), ("cce_sw", w_rows * cw_sw)):
    loss, gK, gb = softmax_ce(cw_x, cw_K, cw_b, cw_y, w)
    emit("cw.%s.loss" % tag, [loss])
    emit("cw.%s.gK" % tag, gK)
    emit("cw.%s.gb" % tag, gb)

# binary: one sigmoid unit, labels 0/1, class_weight {0: 0.25, 1: 4}
cw_by = (rng.random(CN) < 0.3).astype(np.float32)
cw_bK = f32(rng.uniform(-0.5, 0.5, (CI, 1)))
emit("cw.by", cw_by)
emit("cw.bK", cw_bK)
bmap = np.array([0.25, 4.0])
z = (cw_x.astype(np.float64) @ cw_bK).reshape(-1)
p = 1 / (1 + np.exp(-z))
wb = bmap[cw_by.astype(np.int64)]
emit("cw.bce.loss", [(wb * -(cw_by * np.log(p) + (1 - cw_by) * np.log(1 - p))).sum() / CN])
emit("cw.bce.gK", cw_x.T.astype(np.float64) @ ((p - cw_by) * wb / CN))

path = sys.argv[1] if len(sys.argv) > 1 else "tests/reference/metrics_ref.txt"
with open(path, "w") as f:
    f.write("# loom metrics and class-weight reference, generated by tests/reference/metrics_ref.py (do not edit).\n")
    f.write("# scikit-learn %s, NumPy %s, seed 2024\n" % (sklearn.__version__, np.__version__))
    f.writelines(out)
