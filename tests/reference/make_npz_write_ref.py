#!/usr/bin/python3
"""The .npy bytes numpy itself writes for the arrays of tests/test_npz_write.c, as the reference
for loom_npz_save: each member loom writes must be byte-identical to numpy.save's file.

    /usr/bin/python3 tests/reference/make_npz_write_ref.py     (needs python3-numpy)
"""
import os

import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
scalar = np.array(2.5, dtype=np.float32)
vector = np.array([0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan], dtype=np.float32)
cube = (np.arange(24, dtype=np.float32) * 0.25 - 1.0).reshape(2, 3, 4)
np.save(os.path.join(out, "npzw_scalar.npy"), scalar)
np.save(os.path.join(out, "npzw_vector.npy"), vector)
np.save(os.path.join(out, "npzw_cube.npy"), cube)
