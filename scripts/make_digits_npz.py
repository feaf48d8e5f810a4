#!/usr/bin/python3
"""Writes the digits of data/digits.csv in the seed model's terms — "pixels" (n, 64) scaled to
[0, 1], "C" (n, 10) one-hot labels, "D" (n, 64) the pixels again (the reconstruction target):

  data/digits.npz       all 1797 samples, for `loom fit` (the file's order mixes the writers;
                        --validation-split takes the last 20 %)
  data/digits_diag.npz  the first 256, for `loom diagnose MODEL data/digits_diag.npz`

    /usr/bin/python3 scripts/make_digits_npz.py      (needs python3-numpy)
"""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "data")
rows = np.loadtxt(os.path.join(data, "digits.csv"), delimiter=",", dtype=np.int64)
# a fixed permutation, so that the last 20 % (Keras's validation split) holds every writer
order = np.random.default_rng(20240501).permutation(len(rows))
for name, sel in (("digits.npz", rows[order]), ("digits_diag.npz", rows[:256])):
    pixels = (sel[:, :64] / 16.0).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[sel[:, 64]]
    np.savez_compressed(os.path.join(data, name), pixels=pixels, C=onehot, D=pixels)
