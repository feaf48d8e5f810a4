#!/usr/bin/python3
"""Writes data/digits_diag.npz from data/digits.csv: the first 256 samples in the seed model's
terms — "pixels" (256, 64) scaled to [0, 1], "C" (256, 10) one-hot labels, "D" (256, 64) the
pixels again (the reconstruction target) — for `loom diagnose MODEL data/digits_diag.npz`.

    /usr/bin/python3 scripts/make_digits_npz.py      (needs python3-numpy)
"""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rows = np.loadtxt(os.path.join(here, "..", "data", "digits.csv"), delimiter=",", dtype=np.int64)[:256]
pixels = (rows[:, :64] / 16.0).astype(np.float32)
onehot = np.eye(10, dtype=np.float32)[rows[:, 64]]
np.savez_compressed(os.path.join(here, "..", "data", "digits_diag.npz"), pixels=pixels, C=onehot, D=pixels)
