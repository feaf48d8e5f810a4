#!/usr/bin/env python3
"""Checks for tests/cli_e2e.sh, with Python's standard library only (no NumPy, no PIL):

  cli_check.py npz FILE NAME=ROWSxCOLS ...   the archive's CRCs hold and each member is a float32
                                             .npy of that shape; softmax:NAME rows sum to 1
  cli_check.py png FILE MIN_W MIN_H          a PNG at least that large, not one flat colour
  cli_check.py svg FILE TEXT ...             well-formed SVG containing every TEXT
  cli_check.py dot FILE                      the seed model's DOT: nodes, edges, reach colours
  cli_check.py html FILE                     the report is self-contained (no external URL)
  cli_check.py dom FILE EPOCHS KEY ...       Chromium's DOM: every curve has EPOCHS points, and a
                                             curve exists for every KEY
  cli_check.py make-csv DIGITS.csv OUT.csv N  the first N digits as a CSV with a header: pixels_0 ..
                                             pixels_63 in [0, 1], label, C_0 .. C_9 one-hot
Each prints what it found and exits 1 with a message on the first failure."""
import re
import struct
import sys
import xml.etree.ElementTree as ET
import zipfile
import zlib


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def npy_shape(b, where):
    if b[:6] != b"\x93NUMPY":
        fail(where + ": not an .npy member")
    hlen = struct.unpack("<H", b[8:10])[0]
    header = b[10:10 + hlen].decode("latin1")
    if "'descr': '<f4'" not in header or "'fortran_order': False" not in header:
        fail(where + ": not little-endian float32 in C order: " + header)
    if (10 + hlen) % 64:
        fail(where + ": data not 64-byte aligned")
    shape = tuple(int(x) for x in re.search(r"'shape': \(([^)]*)\)", header).group(1).replace(",", " ").split())
    return shape, b[10 + hlen:]


def check_npz(path, specs):
    z = zipfile.ZipFile(path)
    bad = z.testzip()
    if bad:
        fail(path + ": CRC error in " + bad)
    for spec in specs:
        if spec.startswith("softmax:"):
            name = spec[8:]
            shape, data = npy_shape(z.read(name + ".npy"), name)
            vals = struct.unpack("<%df" % (len(data) // 4), data)
            cols = shape[1]
            for r in range(shape[0]):
                s = sum(vals[r * cols:(r + 1) * cols])
                if abs(s - 1) > 1e-4:
                    fail("%s row %d sums to %g, not 1" % (name, r, s))
            print("%s: %d rows sum to 1" % (name, shape[0]))
            continue
        name, dims = spec.split("=")
        want = tuple(int(x) for x in dims.split("x"))
        shape, data = npy_shape(z.read(name + ".npy"), name)
        if shape != want or len(data) != 4 * eval("*".join(map(str, want))):
            fail("%s: member %s has shape %s (%d bytes), want %s" % (path, name, shape, len(data), want))
        print("%s: %s %s" % (path, name, shape))


def png_pixels(path):
    b = open(path, "rb").read()
    if b[:8] != b"\x89PNG\r\n\x1a\n":
        fail(path + ": not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(b):
        n, kind = struct.unpack(">I4s", b[pos:pos + 8])
        body = b[pos + 8:pos + 8 + n]
        if zlib.crc32(kind + body) != struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])[0]:
            fail(path + ": bad CRC in chunk " + kind.decode())
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or interlace or ctype not in (0, 2, 4, 6):
        fail(path + ": unsupported PNG layout %s" % (ihdr,))
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            c = prev[i - bpp] if i >= bpp else 0
            up = prev[i]
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + up) & 255
            elif f == 3:
                line[i] = (line[i] + ((a + up) >> 1)) & 255
            elif f == 4:
                p = a + up - c
                pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def check_png(path, min_w, min_h):
    w, h, bpp, rows = png_pixels(path)
    if w < min_w or h < min_h:
        fail("%s: %dx%d, smaller than %dx%d" % (path, w, h, min_w, min_h))
    background = rows[0][:bpp]
    other = sum(1 for r in rows for i in range(0, len(r), bpp) if r[i:i + bpp] != background)
    share = other / float(w * h)
    if share < 0.01:
        fail("%s: blank (%.4f%% of the pixels differ from the background)" % (path, 100 * share))
    print("%s: %dx%d, %.1f%% drawn" % (path, w, h, 100 * share))


def check_svg(path, texts):
    s = open(path, encoding="utf-8").read()
    root = ET.fromstring(s)
    if not root.tag.endswith("svg"):
        fail(path + ": the root is not <svg>")
    for t in texts:
        if t not in s:
            fail("%s: does not contain %r" % (path, t))
    print("%s: SVG, %d elements, has %s" % (path, sum(1 for _ in root.iter()), ", ".join(texts)))


def check_dot(path):
    s = open(path, encoding="utf-8").read()
    if not s.startswith("digraph model {") or s.count("{") != s.count("}"):
        fail(path + ": not a DOT digraph")
    nodes = dict(re.findall(r'^\s*(L\d+) \[label="([^"]*)"', s, re.M))
    by_name = {label.split("\\n")[0]: n for n, label in nodes.items()}
    for name in ("pixels", "A", "B", "C", "D"):
        if name not in by_name:
            fail("%s: no node for layer %s" % (path, name))
    edges = set(re.findall(r"^\s*(L\d+) -> (L\d+);", s, re.M))
    for a, b in (("pixels", "A"), ("A", "B"), ("B", "C"), ("B", "D")):
        if (by_name[a], by_name[b]) not in edges:
            fail("%s: no edge %s -> %s" % (path, a, b))
    fill = {name: re.search(r"^\s*%s \[.*fillcolor=\"([^\"]*)\"" % n, s, re.M).group(1) for name, n in by_name.items()}
    c_col, d_col = fill["C"], fill["D"]
    if ":" in c_col or ":" in d_col or c_col == d_col:
        fail("%s: heads C and D should carry one colour each, different: %s, %s" % (path, c_col, d_col))
    for shared in ("A", "B"):
        if sorted(fill[shared].split(":")) != sorted([c_col, d_col]):
            fail("%s: %s should carry both losses' colours, has %s" % (path, shared, fill[shared]))
    for legend in ("C_loss: weight 0.5", "D_loss: weight 0.3"):
        if legend not in s:
            fail("%s: legend lacks %r" % (path, legend))
    print("%s: %d layers, %d edges, reach colours and legend right" % (path, len(nodes), len(edges)))


def check_html(path):
    s = open(path, encoding="utf-8").read()
    for pat in (r"<script[^>]*\bsrc=", r"<link\b", r"(src|href)=\"(https?:)?//", r"url\(\s*['\"]?(https?:)?//", r"@import"):
        if re.search(pat, s, re.I):
            fail("%s: refers to something outside the file (%s)" % (path, pat))
    print("%s: self-contained, %d bytes" % (path, len(s)))


def check_dom(path, epochs, keys):
    s = open(path, encoding="utf-8").read()
    curves = re.findall(r'<path class="curve" data-key="([^"]*)"[^>]*\sd="([^"]*)"', s)
    if not curves:
        fail(path + ": no curves in the rendered page")
    for key, d in curves:
        points = re.findall(r"[ML]\s*(-?[\d.]+),(-?[\d.]+)", d)
        if len(points) != epochs:
            fail("%s: curve %s has %d points, not %d (one per epoch)" % (path, key, len(points), epochs))
    have = {k for k, _ in curves}
    for k in keys:
        if k not in have:
            fail("%s: no curve for %s (curves: %s)" % (path, k, ", ".join(sorted(have))))
    if 'data-epochs="%d"' % epochs not in s:
        fail(path + ": the status line does not say %d epochs" % epochs)
    print("%s: %d curves, each with %d points" % (path, len(curves), epochs))


def make_csv(src, out, n):
    with open(src) as f, open(out, "w") as o:
        o.write(",".join(["pixels_%d" % i for i in range(64)] + ["label"] + ["C_%d" % i for i in range(10)]) + "\n")
        for line in list(f)[:n]:
            v = [int(x) for x in line.split(",")]
            o.write(",".join(["%g" % (p / 16.0) for p in v[:64]] + [str(v[64])] +
                             ["1" if i == v[64] else "0" for i in range(10)]) + "\n")


def main():
    cmd, path, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "make-csv":
        make_csv(path, rest[0], int(rest[1]))
    elif cmd == "npz":
        check_npz(path, rest)
    elif cmd == "png":
        check_png(path, int(rest[0]), int(rest[1]))
    elif cmd == "svg":
        check_svg(path, rest)
    elif cmd == "dot":
        check_dot(path)
    elif cmd == "html":
        check_html(path)
    elif cmd == "dom":
        check_dom(path, int(rest[0]), rest[1:])
    else:
        fail("unknown check " + cmd)


if __name__ == "__main__":
    main()
