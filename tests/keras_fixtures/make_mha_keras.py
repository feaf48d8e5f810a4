#!/usr/bin/python3
"""make_mha_keras.py — writes tests/keras_fixtures/mha.keras and its reference predictions.

    /usr/bin/python3 tests/keras_fixtures/make_mha_keras.py   (Debian python3-numpy, python3-h5py)

Keras itself cannot run here (Debian 12 has no Keras package and there is no PyPI), so the file is
written by hand in the layout Keras 3.7's saving_lib writes, and its predictions come from a NumPy
float64 forward pass of Keras 3's MultiHeadAttention equations (keras/src/layers/attention/
multi_head_attention.py, the same formulas as tests/reference/mha_ref.py), sharing no code with
loom. The model (functional, two inputs):

    q  (4, 6), kv (5, 3)
    a = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2)(q, kv)          positional args
    b = MultiHeadAttention(num_heads=2, key_dim=2, use_bias=False)(query=a, value=a,
                                                   use_causal_mask=True)        keyword args
    y = Dense(2)(b)

model.weights.h5: layers/multi_head_attention/{query_dense,key_dense,value_dense,output_dense}/
vars/{0: kernel, 1: bias} (and empty _softmax/vars, _dropout_layer/vars), layers/multi_head_attention_1/... (kernels only), layers/dense/vars,
each EinsumDense kernel (d_in, heads, head_dim) for query/key/value and (heads, head_dim, d_out)
for the output. Weights and inputs are dyadic rationals (exact in float32).

Outputs: mha.keras, mha_input_0.npy, mha_input_1.npy (3 samples), mha_output_0.npy (float32 of the
float64 forward).
"""
import io
import json
import os
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(515)


def dyadic(*shape, scale=1.0):
    return (rng.integers(-64, 65, size=shape) / 64.0 * scale).astype(np.float32)


def policy(name="float32"):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def tensor(layer, node=0, idx=0, shape=None):
    return {"class_name": "__keras_tensor__", "config": {"shape": shape, "dtype": "float32", "keras_history": [layer, node, idx]}}


def init(cls, seed=None):
    return {"module": "keras.initializers", "class_name": cls, "config": {"seed": seed} if cls != "Zeros" else {}, "registered_name": None}


def mha_config(name, heads, key_dim, value_dim, use_bias):
    return {"name": name, "trainable": True, "dtype": policy(), "num_heads": heads, "key_dim": key_dim,
            "value_dim": value_dim, "dropout": 0.0, "use_bias": use_bias, "output_shape": None, "attention_axes": None,
            "kernel_initializer": init("GlorotUniform"), "bias_initializer": init("Zeros"), "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
            "seed": None}


B, TQ, DQ, TV, DV = 3, 4, 6, 5, 3
W = {
    "a": dict(qk=dyadic(DQ, 2, 3, scale=0.5), qb=dyadic(2, 3, scale=0.25), kk=dyadic(DV, 2, 3, scale=0.5),
              kb=dyadic(2, 3, scale=0.25), vk=dyadic(DV, 2, 2, scale=0.5), vb=dyadic(2, 2, scale=0.25),
              ok=dyadic(2, 2, DQ, scale=0.5), ob=dyadic(DQ, scale=0.25)),
    "b": dict(qk=dyadic(DQ, 2, 2, scale=0.5), kk=dyadic(DQ, 2, 2, scale=0.5), vk=dyadic(DQ, 2, 2, scale=0.5),
              ok=dyadic(2, 2, DQ, scale=0.5)),
}
dense_k, dense_b = dyadic(DQ, 2, scale=0.5), dyadic(2, scale=0.25)


def mha(q, v, w, key_dim, causal):
    f = lambda a: a.astype(np.float64)
    k = v
    query = np.einsum("abc,cde->abde", f(q), f(w["qk"])) + (f(w["qb"]) if "qb" in w else 0)
    key = np.einsum("abc,cde->abde", f(k), f(w["kk"])) + (f(w["kb"]) if "kb" in w else 0)
    value = np.einsum("abc,cde->abde", f(v), f(w["vk"])) + (f(w["vb"]) if "vb" in w else 0)
    query = query / np.sqrt(key_dim)
    scores = np.einsum("aecd,abcd->acbe", key, query)  # (B, H, Tq, Tv)
    if causal:
        mask = np.tril(np.ones((q.shape[1], v.shape[1]), dtype=bool))
        scores = np.where(mask, scores, -1e9)
    scores = scores - scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p = p / p.sum(axis=-1, keepdims=True)
    out = np.einsum("acbe,aecd->abcd", p, value)
    return np.einsum("abcd,cde->abe", out, f(w["ok"])) + (f(w["ob"]) if "ob" in w else 0)


def main():
    x_q, x_kv = dyadic(B, TQ, DQ), dyadic(B, TV, DV)
    a = mha(x_q, x_kv, W["a"], 3, False)
    b = mha(a, a, W["b"], 2, True)
    y = b @ dense_k.astype(np.float64) + dense_b
    layers = [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, TQ, DQ], "dtype": "float32",
         "sparse": False, "name": "q"}, "registered_name": None, "name": "q", "inbound_nodes": []},
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, TV, DV], "dtype": "float32",
         "sparse": False, "name": "kv"}, "registered_name": None, "name": "kv", "inbound_nodes": []},
        {"module": "keras.layers", "class_name": "MultiHeadAttention", "config": mha_config("cross", 2, 3, 2, True),
         "registered_name": None, "build_config": {"shapes_dict": {"query_shape": [None, TQ, DQ], "value_shape": [None, TV, DV]}},
         "name": "cross", "inbound_nodes": [{"args": [tensor("q", shape=[None, TQ, DQ]), tensor("kv", shape=[None, TV, DV])],
                                             "kwargs": {}}]},
        {"module": "keras.layers", "class_name": "MultiHeadAttention", "config": mha_config("self_causal", 2, 2, 2, False),
         "registered_name": None, "build_config": {"shapes_dict": {"query_shape": [None, TQ, DQ], "value_shape": [None, TQ, DQ]}},
         "name": "self_causal", "inbound_nodes": [{"args": [], "kwargs": {"query": tensor("cross", shape=[None, TQ, DQ]),
                                                   "value": tensor("cross", shape=[None, TQ, DQ]), "use_causal_mask": True}}]},
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "head", "trainable": True, "dtype": policy(),
         "units": 2, "activation": "linear", "use_bias": True, "kernel_initializer": init("GlorotUniform"),
         "bias_initializer": init("Zeros"), "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
         "bias_constraint": None}, "registered_name": None, "build_config": {"input_shape": [None, TQ, DQ]}, "name": "head",
         "inbound_nodes": [{"args": [tensor("self_causal", shape=[None, TQ, DQ])], "kwargs": {}}]},
    ]
    config = {"module": "keras.src.models.functional", "class_name": "Functional",
              "config": {"name": "mha_model", "trainable": True, "layers": layers,
                         "input_layers": [["q", 0, 0], ["kv", 0, 0]], "output_layers": [["head", 0, 0]]},
              "registered_name": "Functional", "build_config": {"input_shape": None}}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h:
        for path, name, w in (("layers/multi_head_attention", "cross", W["a"]), ("layers/multi_head_attention_1", "self_causal", W["b"])):
            h.create_group(path + "/vars").attrs["name"] = name
            for part, kern, bias in (("query_dense", "qk", "qb"), ("key_dense", "kk", "kb"), ("value_dense", "vk", "vb"),
                                     ("output_dense", "ok", "ob")):
                g = h.create_group(f"{path}/{part}/vars")
                g.create_dataset("0", data=w[kern])
                if bias in w:
                    g.create_dataset("1", data=w[bias])
            # the private Softmax and Dropout sub-layers: walked after the public ones, no variables
            h.create_group(f"{path}/_softmax/vars")
            h.create_group(f"{path}/_dropout_layer/vars")
        g = h.create_group("layers/dense/vars")
        g.attrs["name"] = "head"
        g.create_dataset("0", data=dense_k)
        g.create_dataset("1", data=dense_b)
        h.create_group("layers/input_layer/vars")
        h.create_group("layers/input_layer_1/vars")
        h.create_group("vars")
    meta = {"keras_version": "3.7.0", "date_saved": "2026-12-04@00:00:00"}
    with zipfile.ZipFile(os.path.join(HERE, "mha.keras"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps(meta))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", buf.getvalue())
    np.save(os.path.join(HERE, "mha_input_0.npy"), x_q)
    np.save(os.path.join(HERE, "mha_input_1.npy"), x_kv)
    np.save(os.path.join(HERE, "mha_output_0.npy"), y.astype(np.float32))
    print("wrote mha.keras and its references; output range", float(np.abs(y).max()))


if __name__ == "__main__":
    main()
