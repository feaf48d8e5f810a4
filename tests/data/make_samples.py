#!/usr/bin/python3
"""Regenerates the sample files of tests/test_loaders.c. Run with Debian's python (it has numpy):
    /usr/bin/python3 tests/data/make_samples.py
The contents are fixed formulas that tests/test_loaders.c repeats; change both together."""
import io, os, struct, zipfile
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

def path(name):
    return os.path.join(HERE, name)

def save_npy(name, arr, version=None):
    with open(path(name), "wb") as f:
        np.lib.format.write_array(f, arr, version=version, allow_pickle=True)

FLOATS = [-1.5, -0.25, 0.0, 0.5, 3.0, 1000.0]

def int_values(dt):
    info = np.iinfo(dt)
    if info.min < 0:
        return [info.min, -1, 0, 1, 42, info.max]
    return [0, 1, 42, 200, info.max - 1, info.max]

# every dtype, both byte orders, shape (2, 3)
for kind, sizes in (("f", (4, 8)), ("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8))):
    for size in sizes:
        orders = ("|",) if size == 1 else ("<", ">")
        for order in orders:
            dt = np.dtype(f"{order}{kind}{size}")
            vals = FLOATS if kind == "f" else int_values(dt)
            tag = {"<": "le", ">": "be", "|": "na"}[order]
            save_npy(f"{kind}{size}_{tag}.npy", np.array(vals, dtype=dt).reshape(2, 3))
save_npy("b1.npy", np.array([True, False, True, True, False, False]).reshape(2, 3))

# header versions 2.0 and 3.0 of the same float32 array
save_npy("f4_v2.npy", np.array(FLOATS, dtype="<f4").reshape(2, 3), version=(2, 0))
save_npy("f4_v3.npy", np.array(FLOATS, dtype="<f4").reshape(2, 3), version=(3, 0))

# shapes: scalar, 3-D, zero-size
save_npy("scalar.npy", np.array(3.25, dtype="<f8"))
save_npy("cube.npy", np.arange(24, dtype="<f4").reshape(2, 3, 4))
save_npy("empty.npy", np.zeros((0, 3), dtype="<f4"))

# refused: Fortran order, object arrays, float16
save_npy("fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
save_npy("object.npy", np.array([1, "a", None], dtype=object))
save_npy("f2.npy", np.arange(3, dtype="<f2"))

# npz: stored, deflated, positional names, and a bzip2 member (refused)
X = np.arange(6, dtype="<f4").reshape(2, 3)
Y = np.array([1, 2, 3], dtype="<i8")
Z = (np.arange(1000) % 7).astype("<f8")
np.savez(path("stored.npz"), x=X, y=Y)
np.savez_compressed(path("deflated.npz"), x=X, y=Y, z=Z)
np.savez(path("positional.npz"), np.arange(3, dtype="<i4"))
buf = io.BytesIO()
np.lib.format.write_array(buf, X)
with zipfile.ZipFile(path("bzip2.npz"), "w", compression=zipfile.ZIP_BZIP2) as z:
    z.writestr("x.npy", buf.getvalue())

# IDX: magic 00 00 type rank, big-endian dims, big-endian data
def save_idx(name, code, arr):
    with open(path(name), "wb") as f:
        f.write(bytes([0, 0, code, arr.ndim]))
        for d in arr.shape:
            f.write(struct.pack(">I", d))
        f.write(arr.tobytes())

save_idx("u8.idx", 0x08, (np.arange(12) * 23 % 256).astype(">u1").reshape(2, 2, 3))
save_idx("i8.idx", 0x09, np.array([-128, -1, 0, 1, 42, 127], dtype=">i1").reshape(2, 3))
save_idx("i16.idx", 0x0B, np.array([-32768, -1, 0, 1, 42, 32767], dtype=">i2").reshape(2, 3))
save_idx("i32.idx", 0x0C, np.array([-2**31, -1, 0, 1, 42, 2**31 - 1], dtype=">i4").reshape(2, 3))
save_idx("f32.idx", 0x0D, np.array(FLOATS, dtype=">f4").reshape(2, 3))
save_idx("f64.idx", 0x0E, np.array(FLOATS, dtype=">f8").reshape(6))

# CSV with a header, a quoted header name, CRLF line ends, a missing value and no final newline
with open(path("sample.csv"), "wb") as f:
    f.write(b'a,"b ""quoted""",c\r\n1,2,3\r\n4.5,-5e-1,NA\r\n\r\n7,"8",9')

# gzip-compressed IDX, as the MNIST family is distributed (mtime 0, so the bytes are reproducible)
import gzip
with open(path("u8.idx"), "rb") as f:
    raw = f.read()
with open(path("u8.idx.gz"), "wb") as f:
    f.write(gzip.compress(raw, compresslevel=9, mtime=0))
