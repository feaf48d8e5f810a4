#!/usr/bin/env python3
"""Reads .keras files loom wrote with h5py (Debian python3-h5py) and checks Keras 3's layout.

    keras_h5py_check.py ORIGINAL.keras REEXPORTED.keras [MORE.keras ...]
    keras_h5py_check.py --policies FILE.keras:SPEC [FILE.keras:SPEC ...]

ORIGINAL is a real Keras 3 file and REEXPORTED loom's import -> export of it: every dataset of the
original's layers/ tree must be in the re-export at the same path with the same shape, dtype and
bits (the optimizer's variables are not carried over). Every file named (the re-export and the
rest) must have Keras 3's layout: the three members, config.json a Functional with a build_config
and a layer list whose weighted layers each have layers/<path>/vars datasets 0..n-1 of float32,
and each vars group a "name" attribute. A MultiHeadAttention layer must have Keras 3's four
EinsumDense groups (query_dense, key_dense, value_dense, output_dense, each vars/0 the kernel of
shape (d_in, heads, key_dim or value_dim) or, for the output, (heads, value_dim, d_out), and vars/1
its bias when use_bias), a build_config with shapes_dict, and calls with its tensors as separate
arguments. A layer's "dtype" is "float32" or Keras 3's DTypePolicy object. With --policies, SPEC
names the policy every non-input layer must carry ("mixed_bfloat16") or the layers that carry one
("h1=mixed_bfloat16,h2=mixed_bfloat16"; the others float32), as DTypePolicy objects.
Exits non-zero with a message on the first problem.
"""
import io
import json
import sys
import zipfile

import h5py
import numpy as np


def fail(msg):
    print("keras_h5py_check: " + msg, file=sys.stderr)
    sys.exit(1)


def weights_of(path):
    z = zipfile.ZipFile(path)
    names = set(z.namelist())
    for member in ("config.json", "metadata.json", "model.weights.h5"):
        if member not in names:
            fail(f"{path}: member {member} missing")
    h = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
    return z, h


def datasets(h, root="layers"):
    out = {}
    h[root].visititems(lambda n, o: out.__setitem__(root + "/" + n, o) if isinstance(o, h5py.Dataset) else None)
    return out


def check_layout(path):
    z, h = weights_of(path)
    cfg = json.loads(z.read("config.json"))
    meta = json.loads(z.read("metadata.json"))
    if not str(meta.get("keras_version", "")).startswith("3."):
        fail(f"{path}: metadata.json keras_version is {meta.get('keras_version')!r}")
    if cfg.get("class_name") != "Functional" or "build_config" not in cfg:
        fail(f"{path}: config.json is not a Functional model with a build_config")
    for key in ("layers", "input_layers", "output_layers"):
        if key not in cfg["config"]:
            fail(f"{path}: config.json lacks config.{key}")
    for lj in cfg["config"]["layers"]:
        for key in ("module", "class_name", "config", "registered_name", "name", "inbound_nodes"):
            if key not in lj:
                fail(f"{path}: layer {lj.get('name')} lacks {key}")
        if any(k.startswith("loom_") for k in lj) or any(k.startswith("loom_") for k in cfg["config"]):
            fail(f"{path}: loom's own keys left in config.json")
    if "layers" not in h or "vars" not in h:
        fail(f"{path}: model.weights.h5 lacks the layers or vars group")
    n_groups = 0
    for name, grp in h["layers"].items():
        if "vars" not in grp:
            fail(f"{path}: layers/{name} has no vars group")

        def visit(n, o):
            nonlocal n_groups
            if isinstance(o, h5py.Group) and n.split("/")[-1] == "vars":
                n_groups += 1
                keys = sorted(o.keys(), key=int)
                if keys != [str(i) for i in range(len(keys))]:
                    fail(f"{path}: layers/{name}/{n} holds {keys}, not 0..n-1")
                for k in keys:
                    d = o[k]
                    if d.dtype != np.float32:
                        fail(f"{path}: layers/{name}/{n}/{k} is {d.dtype}, not float32")

        visit("vars", grp["vars"])
        grp.visititems(visit)
        if "name" not in grp["vars"].attrs:
            fail(f"{path}: layers/{name}/vars has no name attribute")
    check_mha(path, cfg, h)
    for lj in cfg["config"]["layers"]:
        policy_of(path, lj)
    if "compile_config" in cfg:
        cc = cfg["compile_config"]
        if "optimizer" not in cc or "loss" not in cc:
            fail(f"{path}: compile_config lacks optimizer or loss")
    return n_groups


def snake(cls):
    """keras.src.utils.naming.to_snake_case for the class names loom writes."""
    import re
    out = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", out).lower()


def weight_paths(cfg):
    """Each layer's group: layers/<snake class>[_k], k counting per class in the layer list."""
    seen, out = {}, {}
    for lj in cfg["config"]["layers"]:
        s = snake(lj["class_name"])
        k = seen.get(s, -1) + 1
        seen[s] = k
        out[lj["name"]] = f"layers/{s}" if k == 0 else f"layers/{s}_{k}"
    return out


def check_mha(path, cfg, h):
    paths = weight_paths(cfg)
    shapes = {}
    for lj in cfg["config"]["layers"]:
        if lj["class_name"] != "MultiHeadAttention":
            continue
        c, name = lj["config"], lj["name"]
        heads, kd = c["num_heads"], c["key_dim"]
        vd = c.get("value_dim") or kd
        sd = lj.get("build_config", {}).get("shapes_dict")
        if not sd or "query_shape" not in sd or "value_shape" not in sd:
            fail(f"{path}: MultiHeadAttention {name} has no build_config.shapes_dict with query_shape and value_shape")
        dq, dv = sd["query_shape"][-1], sd["value_shape"][-1]
        dk = sd["key_shape"][-1] if sd.get("key_shape") else dv
        for node in lj["inbound_nodes"]:
            if any(isinstance(a, list) for a in node["args"]):
                fail(f"{path}: MultiHeadAttention {name} is called with a list, not (query, value[, key])")
        if "use_causal_mask" in c:
            fail(f"{path}: MultiHeadAttention {name}: use_causal_mask is a call argument in Keras 3, not a config key")
        want = {"query_dense": (dq, heads, kd), "key_dense": (dk, heads, kd), "value_dense": (dv, heads, vd),
                "output_dense": (heads, vd, dq)}
        bias = {"query_dense": (heads, kd), "key_dense": (heads, kd), "value_dense": (heads, vd), "output_dense": (dq,)}
        g = paths[name]
        for part, shape in want.items():
            vars_ = f"{g}/{part}/vars"
            if vars_ not in h:
                fail(f"{path}: MultiHeadAttention {name}: {vars_} missing")
            keys = sorted(h[vars_].keys())
            expect = ["0", "1"] if c.get("use_bias", True) else ["0"]
            if keys != expect:
                fail(f"{path}: {vars_} holds {keys}, expected {expect}")
            if h[vars_ + "/0"].shape != shape:
                fail(f"{path}: {vars_}/0 has shape {h[vars_ + '/0'].shape}, Keras's EinsumDense kernel is {shape}")
            if "1" in keys and h[vars_ + "/1"].shape != bias[part]:
                fail(f"{path}: {vars_}/1 has shape {h[vars_ + '/1'].shape}, the bias is {bias[part]}")
        shapes[name] = want
    return shapes


def policy_of(path, lj):
    d = lj["config"].get("dtype")
    if d is None or d == "float32":
        return "float32"
    if not isinstance(d, dict) or d.get("class_name") != "DTypePolicy" or d.get("module") != "keras" or \
            "registered_name" not in d or not isinstance(d.get("config", {}).get("name"), str):
        fail(f"{path}: layer {lj['name']}: dtype {d!r} is neither \"float32\" nor Keras 3's DTypePolicy object")
    return d["config"]["name"]


def check_policies(arg):
    path, spec = arg.rsplit(":", 1)
    z, _ = weights_of(path)
    check_layout(path)
    cfg = json.loads(z.read("config.json"))
    own = dict(kv.split("=") for kv in spec.split(",")) if "=" in spec else None
    n = 0
    for lj in cfg["config"]["layers"]:
        got = policy_of(path, lj)
        if lj["class_name"] == "InputLayer":
            want = "float32"
        else:
            want = own.get(lj["name"], "float32") if own is not None else spec
        if got != want:
            fail(f"{path}: layer {lj['name']} carries the policy {got}, expected {want}")
        n += got != "float32"
    print(f"keras_h5py_check: {path}: {n} layers carry their DTypePolicy as Keras 3 writes it")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--policies":
        for a in sys.argv[2:]:
            check_policies(a)
        return
    if len(sys.argv) < 3:
        fail(__doc__)
    _, orig = weights_of(sys.argv[1])
    _, again = weights_of(sys.argv[2])
    a, b = datasets(orig), datasets(again)
    if set(a) != set(b):
        fail(f"datasets differ: only in the original {sorted(set(a) - set(b))}, only in the re-export {sorted(set(b) - set(a))}")
    for k in a:
        x, y = a[k][()], b[k][()]
        if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
            fail(f"{k}: shape, dtype or bits differ ({x.shape} {x.dtype} vs {y.shape} {y.dtype})")
    total = 0
    for p in sys.argv[2:]:
        total += check_layout(p)
    print(f"keras_h5py_check: {len(a)} datasets identical to the original; {total} vars groups in Keras 3's layout")


if __name__ == "__main__":
    main()
