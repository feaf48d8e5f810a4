#!/usr/bin/env python3
"""Runs ONNX's own checker on every .onnx file of a folder (the models test_onnx_export exports):
onnx.checker.check_model(full_check=True), which runs strict shape inference too, then
onnx.shape_inference.infer_shapes(strict_mode=True) to report the inferred output shapes.

Usage: onnx_check.py DIR    (exit 0 all accepted, 1 a model refused, 77 skipped: no python3-onnx or
                            no DIR)
"""
import os
import sys

try:
    import onnx
except ImportError:
    # Debian's python3-onnx lives in the system interpreter, which another python3 on PATH
    # (a pyenv or venv) does not see
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("onnx_check: python3-onnx is not installed; skipped (scripts/deps.sh installs it)")
    sys.exit(77)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    if not os.path.isdir(folder):  # test_onnx_real makes none without ../shared
        print(f"onnx_check: {folder} does not exist (nothing was exported); skipped")
        sys.exit(77)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".onnx") and n != "refused.onnx")
    if not names:
        sys.exit(f"onnx_check: no .onnx files in {folder}")
    bad = 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
            inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
            outs = []
            for o in inferred.graph.output:
                dims = [d.dim_param or str(d.dim_value) for d in o.type.tensor_type.shape.dim]
                outs.append(f"{o.name}({','.join(dims)})")
            print(f"ok   {name}: opset {model.opset_import[0].version}, {len(model.graph.node)} nodes, "
                  f"outputs {' '.join(outs)}")
        except Exception as e:  # the checker raises several exception types
            bad += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
