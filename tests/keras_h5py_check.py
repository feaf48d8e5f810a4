#!/usr/bin/env python3
"""Reads .keras files loom wrote with h5py (Debian python3-h5py) and checks Keras 3's layout.

    keras_h5py_check.py ORIGINAL.keras REEXPORTED.keras [MORE.keras ...]

ORIGINAL is a real Keras 3 file and REEXPORTED loom's import -> export of it: every dataset of the
original's layers/ tree must be in the re-export at the same path with the same shape, dtype and
bits (the optimizer's variables are not carried over). Every file named (the re-export and the
rest) must have Keras 3's layout: the three members, config.json a Functional with a build_config
and a layer list whose weighted layers each have layers/<path>/vars datasets 0..n-1 of float32,
and each vars group a "name" attribute. Exits non-zero with a message on the first problem.
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
    if "compile_config" in cfg:
        cc = cfg["compile_config"]
        if "optimizer" not in cc or "loss" not in cc:
            fail(f"{path}: compile_config lacks optimizer or loss")
    return n_groups


def main():
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
