#!/usr/bin/python3
"""mha_ref.py — writes tests/reference/mha_ref.txt, the fixture of tests/test_attention.c.

    cd /work/main && /usr/bin/python3 tests/reference/mha_ref.py [output]

Forward values of keras.layers.MultiHeadAttention computed in NumPy float64, written from Keras 3's
equations (keras/src/layers/attention/multi_head_attention.py) as einsums over the EinsumDense
weight layouts, and sharing no code with loom:

    query = einsum("abc,cde->abde", q, Wq) + bq        (B, Tq, H, Kd)
    key   = einsum("abc,cde->abde", k, Wk) + bk        (B, Tv, H, Kd)
    value = einsum("abc,cde->abde", v, Wv) + bv        (B, Tv, H, Vd)
    query = query / sqrt(Kd)
    scores = einsum("aecd,abcd->acbe", key, query)     (B, H, Tq, Tv)
    probs = masked softmax (Keras's Softmax layer: scores + (1 - mask) * -1e9, softmax over the
            last axis, then times the mask); mask = causal (row >= col) & query_mask[:, :, None]
            & value_mask[:, None, :] where given
    out = einsum("acbe,aecd->abcd", probs, value)      (B, Tq, H, Vd)
    y = einsum("abcd,cde->abe", out, Wo) + bo          (B, Tq, dq)

Deterministic (numpy.random.default_rng(1234)); inputs and weights are dyadic rationals, exact in
float32, so the C test feeds identical values.

Format (tests/fixture.h): per case <id>, arrays
    <id>.cfg    num_heads key_dim value_dim use_bias causal n_inputs masked
    <id>.shapes Tq dq Tv dv dk
    <id>.q <id>.v [<id>.k]   batch 2 of each input, C order (2-input cases have no .k: key = value)
    <id>.w      the layer's weights in declaration order: query kernel (dq,H,Kd) [query bias (H,Kd)],
                key kernel (dk,H,Kd) [key bias], value kernel (dv,H,Vd) [value bias (H,Vd)],
                output kernel (H,Vd,dq) [output bias (dq)]
    <id>.mask   (masked cases) batch x Tq mask of the query, which is also the value (self-attention)
    <id>.y      the expected outputs (2, Tq, dq)
"""
import sys

import numpy as np

rng = np.random.default_rng(1234)
BATCH = 2


def dyadic(shape, scale):
    """Integers in [-16, 16] / scale: exact in float32."""
    return rng.integers(-16, 17, size=shape).astype(np.float64) / scale


def softmax_keras(scores, mask):
    if mask is not None:
        scores = scores + (1.0 - mask) * -1e9
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    if mask is not None:
        p = p * mask
    return p


def mha(q, v, k, w, H, Kd, Vd, use_bias, causal, qmask=None, vmask=None):
    dq, dv, dk = q.shape[-1], v.shape[-1], k.shape[-1]
    it = iter(w)
    Wq = next(it).reshape(dq, H, Kd)
    bq = next(it).reshape(H, Kd) if use_bias else 0.0
    Wk = next(it).reshape(dk, H, Kd)
    bk = next(it).reshape(H, Kd) if use_bias else 0.0
    Wv = next(it).reshape(dv, H, Vd)
    bv = next(it).reshape(H, Vd) if use_bias else 0.0
    Wo = next(it).reshape(H, Vd, dq)
    bo = next(it) if use_bias else 0.0
    query = np.einsum("abc,cde->abde", q, Wq) + bq
    key = np.einsum("abc,cde->abde", k, Wk) + bk
    value = np.einsum("abc,cde->abde", v, Wv) + bv
    query = query * (1.0 / np.sqrt(Kd))
    scores = np.einsum("aecd,abcd->acbe", key, query)
    Tq, Tv = q.shape[1], v.shape[1]
    mask = None
    if qmask is not None or vmask is not None or causal:
        mask = np.ones((q.shape[0], Tq, Tv))
        if qmask is not None:
            mask = mask * qmask[:, :, None]
        if vmask is not None:
            mask = mask * vmask[:, None, :]
        if causal:
            rows = np.cumsum(np.ones((Tq, Tv)), axis=0)
            cols = np.cumsum(np.ones((Tq, Tv)), axis=1)
            mask = mask * (rows >= cols)[None]
        mask = mask[:, None]  # over heads
    probs = softmax_keras(scores, mask)
    out = np.einsum("acbe,aecd->abcd", probs, value)
    return np.einsum("abcd,cde->abe", out, Wo) + bo


# id: (H, Kd, Vd (0 = Kd), use_bias, causal, n_inputs, masked, Tq, dq, Tv, dv, dk)
# Two-input self-attention cases use one array for query and value (Tq = Tv, dq = dv = dk).
CASES = [
    ("self_h1_bias", (1, 3, 0, 1, 0, 2, 0, 4, 5, 4, 5, 5)),
    ("self_h3_bias", (3, 2, 0, 1, 0, 2, 0, 4, 6, 4, 6, 6)),
    ("cross_h3_bias", (3, 2, 3, 1, 0, 2, 0, 3, 4, 5, 6, 6)),
    ("cross_h1_nobias", (1, 4, 2, 0, 0, 2, 0, 5, 3, 2, 4, 4)),
    ("key_h2_nobias", (2, 3, 0, 0, 0, 3, 0, 4, 4, 3, 5, 2)),
    ("key_h3_bias", (3, 2, 4, 1, 0, 3, 0, 2, 3, 4, 2, 5)),
    ("causal_h3_bias", (3, 2, 0, 1, 1, 2, 0, 5, 4, 5, 4, 4)),
    ("causal_h1_nobias", (1, 3, 0, 0, 1, 2, 0, 4, 3, 4, 3, 3)),
    ("causal_cross_h2", (2, 2, 3, 1, 1, 3, 0, 5, 3, 3, 4, 2)),
    ("masked_self_h2", (2, 3, 0, 1, 0, 2, 1, 5, 4, 5, 4, 4)),
    ("masked_causal_h2", (2, 2, 0, 1, 1, 2, 1, 5, 4, 5, 4, 4)),
]


def fmt(name, values):
    values = np.asarray(values, dtype=np.float64).ravel()
    lines = [f"{name} {values.size}"]
    for i in range(0, values.size, 8):
        lines.append(" ".join(f"{x:.9e}" for x in values[i:i + 8]))
    return "\n".join(lines)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/reference/mha_ref.txt"
    blocks = [
        "# loom MultiHeadAttention reference, generated by tests/reference/mha_ref.py (do not edit).",
        f"# NumPy {np.__version__}, float64, seed 1234, batch {BATCH}.",
    ]
    for cid, cfg in CASES:
        H, Kd, Vd0, use_bias, causal, n_in, masked, Tq, dq, Tv, dv, dk = cfg
        Vd = Vd0 or Kd
        self_attn = n_in == 2 and Tq == Tv and dq == dv
        q = dyadic((BATCH, Tq, dq), 8)
        if self_attn:
            v = q
        else:
            v = dyadic((BATCH, Tv, dv), 8)
        k = dyadic((BATCH, Tv, dk), 8) if n_in == 3 else v
        shapes = [(dq, H, Kd), (H, Kd), (dk, H, Kd), (H, Kd), (dv, H, Vd), (H, Vd), (H, Vd, dq), (dq,)]
        if not use_bias:
            shapes = shapes[0::2]
        w = [dyadic(s, 16) for s in shapes]
        qmask = vmask = None
        if masked:
            assert self_attn
            qmask = np.ones((BATCH, Tq))
            qmask[0, 3:] = 0  # trailing padding
            qmask[1, 0] = 0  # leading padding: with causal, row 0 sees nothing
            qmask[1, 2] = 0
            vmask = qmask
        y = mha(q, v, k, w, H, Kd, Vd, use_bias, causal, qmask, vmask)
        blocks.append(fmt(f"{cid}.cfg", [H, Kd, Vd0, use_bias, causal, n_in, masked]))
        blocks.append(fmt(f"{cid}.shapes", [Tq, dq, Tv, dv, dk]))
        blocks.append(fmt(f"{cid}.q", q))
        blocks.append(fmt(f"{cid}.v", v))
        if n_in == 3:
            blocks.append(fmt(f"{cid}.k", k))
        blocks.append(fmt(f"{cid}.w", np.concatenate([a.ravel() for a in w])))
        if masked:
            blocks.append(fmt(f"{cid}.mask", qmask))
        blocks.append(fmt(f"{cid}.y", y))
    with open(out_path, "w") as f:
        f.write("\n".join(blocks) + "\n")


if __name__ == "__main__":
    main()
