#!/usr/bin/python3
"""Regenerates data/digits.csv from the copy of scikit-learn's 8x8 digits shipped by Debian.

    /usr/bin/python3 scripts/make_digits.py [source.csv.gz] [out.csv]

Source: /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz (package
python3-sklearn, BSD-3-Clause). Output: no header, one sample per line, 64 pixel integers
0..16 (row-major 8x8) then the label 0..9. The standard library suffices; the source already
has exactly this layout, so the script re-parses and checks every value rather than copying
bytes blindly, and refuses to write a file that does not hold 1797 valid rows.
"""
import gzip
import os
import sys

SRC = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
N_SAMPLES, N_PIXELS = 1797, 64


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else SRC
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "data", "digits.csv")

    rows = []
    with gzip.open(src, "rt") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            # float() then int() accepts "5.0" as well as "5", in case a packaging changes it
            vals = [float(v) for v in line.split(",")]
            if len(vals) != N_PIXELS + 1:
                sys.exit(f"{src}:{lineno}: {len(vals)} fields, expected {N_PIXELS + 1}")
            ints = [int(v) for v in vals]
            if any(v != i for v, i in zip(vals, ints)):
                sys.exit(f"{src}:{lineno}: non-integer value")
            if not all(0 <= p <= 16 for p in ints[:N_PIXELS]):
                sys.exit(f"{src}:{lineno}: pixel outside 0..16")
            if not 0 <= ints[N_PIXELS] <= 9:
                sys.exit(f"{src}:{lineno}: label outside 0..9")
            rows.append(ints)

    if len(rows) != N_SAMPLES:
        sys.exit(f"{src}: {len(rows)} samples, expected {N_SAMPLES}")
    counts = [0] * 10
    for r in rows:
        counts[r[N_PIXELS]] += 1

    with open(out, "w", newline="\n") as f:
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")
    print(f"wrote {out}: {len(rows)} samples x {N_PIXELS} pixels + label; per class {counts}")


if __name__ == "__main__":
    main()
