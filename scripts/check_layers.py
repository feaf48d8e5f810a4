#!/bin/sh
# Python 3; the next line lets `sh check_layers.py` and `bash check_layers.py` run it the same way.
''''exec python3 "$0" "$@" #'''
DOC = """Checks that src/ keeps its architecture (src/README.md): every dependency goes from a higher
folder to a lower one, never sideways between folders of one level, and no set of files depends on
itself in a circle.

Dependencies are read from two places:
  - the #include "folder/file.h" lines of every file under src/;
  - the calls and data references between the library's object files: `nm` on the built static
    library (argument --lib), when given. A function defined in a.c and used in b.c makes b -> a.
A header belongs to the source file of the same name beside it (core/model.h to core/model.c);
a header without one (layers/layers.h) is a unit of its own.

Usage: check_layers.py [--lib build/libloom.a]   (exit status 1 and a list of faults if any)
"""
import argparse
import os
import re
import subprocess
import sys

# Lower numbers are lower layers. Folders of one level must not depend on each other.
LEVELS = {
    "kernels": 0, "base": 0,
    "ops": 1, "optim": 1, "mtl": 1,
    "graph": 2,
    "layers": 3,
    "core": 4,
    "io": 5, "dist": 5,
    "train": 6,
}

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def source_files():
    out = []
    for folder in sorted(os.listdir(ROOT)):
        path = os.path.join(ROOT, folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if name.endswith((".c", ".h")):
                out.append(folder + "/" + name)
    return out


def unit_of(rel, files):
    """core/model.h -> core/model (its .c exists); layers/layers.h -> layers/layers.h."""
    stem, ext = os.path.splitext(rel)
    if ext == ".h" and stem + ".c" not in files:
        return rel
    return stem


def folder_of(unit):
    return unit.split("/", 1)[0]


def include_edges(files):
    edges = []
    for rel in files:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            if inc == "loom.h":
                continue
            edges.append((rel, inc, "includes"))
    return edges


def call_edges(lib, files):
    by_object = {}
    for rel in files:
        if rel.endswith(".c"):
            base = os.path.basename(rel) + ".o"
            if base in by_object:
                sys.exit(f"check_layers: two source files are named {os.path.basename(rel)}")
            by_object[base] = rel
    out = subprocess.run(["nm", "-A", lib], capture_output=True, text=True, check=True).stdout
    defined, used = {}, []
    for line in out.splitlines():
        # libloom.a:model.c.o:0000000000000000 T loom_model_new   /   libloom.a:model.c.o:  U free
        m = re.match(r"^[^:]+:([^:]+):\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z])\s+(\S+)$", line)
        if not m:
            continue
        obj, kind, sym = m.groups()
        if obj not in by_object:
            continue
        if kind == "U":
            used.append((by_object[obj], sym))
        elif kind in "TDRBCV":
            defined[sym] = by_object[obj]
    return [(src, defined[sym], "calls " + sym) for src, sym in used if sym in defined and defined[sym] != src]


def cycles(graph):
    """Strongly connected components of more than one unit (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    n = stack.pop()
                    on_stack.discard(n)
                    comp.append(n)
                    if n == node:
                        break
                if len(comp) > 1:
                    result.append(sorted(comp))
    return result


def main():
    ap = argparse.ArgumentParser(description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", help="the built static library, to check calls as well as includes")
    args = ap.parse_args()
    files = set(source_files())
    faults = []
    for rel in sorted(files):
        if folder_of(rel) not in LEVELS:
            faults.append(f"{rel}: folder {folder_of(rel)} has no level in scripts/check_layers.py")
    if any(os.path.isfile(os.path.join(ROOT, n)) and n.endswith((".c", ".h")) for n in os.listdir(ROOT)):
        faults.append("src/ has source files at its root: every file belongs in a folder")
    edges = include_edges(sorted(files))
    for src, inc, _ in edges:
        if inc not in files:
            faults.append(f"{src}: includes \"{inc}\", which is not a file under src/ (write folder/file.h)")
    edges = [e for e in edges if e[1] in files]
    if args.lib:
        edges += call_edges(args.lib, files)
    graph, why = {}, {}
    for src, dst, how in edges:
        a, b = unit_of(src, files), unit_of(dst, files)
        if a == b:
            continue
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
        why.setdefault((a, b), f"{src} {how} ({dst})")
        fa, fb = folder_of(a), folder_of(b)
        if fa != fb and fa in LEVELS and fb in LEVELS and LEVELS[fa] <= LEVELS[fb]:
            side = "sideways" if LEVELS[fa] == LEVELS[fb] else "upward"
            faults.append(f"{side} dependency {fa}/ -> {fb}/: {why[(a, b)]}")
    for comp in cycles(graph):
        links = [why[(a, b)] for a in comp for b in comp if (a, b) in why]
        faults.append("circle between " + ", ".join(comp) + ":\n      " + "\n      ".join(links))
    faults = sorted(set(faults))
    for f in faults:
        print("check_layers: " + f)
    n_units = len(graph)
    n_edges = sum(len(v) for v in graph.values())
    print(f"check_layers: {n_units} units, {n_edges} dependencies between them, {len(faults)} faults"
          + ("" if args.lib else " (includes only: no --lib)"))
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
