#!/usr/bin/env python3
"""`scion run` side by side with onnxruntime: the whole job (start, load the model, run a batch, save
the result), each in a fresh process, median of N runs.

Scion runs the Keras .h5 and Scion's ONNX export of it; onnxruntime runs the same ONNX file from a
Python process (import onnxruntime and numpy, load, run, np.save), as its users do. OpenBLAS's kernel
is reported: this machine's environment sets OPENBLAS_CORETYPE=Haswell, which Scion leaves alone; the
same runs without it show what OpenBLAS picks by itself.

The `cached` columns run `scion run --weights-cache DIR` after one run that filled DIR: the prepared
weights mapped from the cache instead of prepared again (issue #18).

Usage: bench/run_bench.py --folder /work/apps/keras3 [--models ResNet50 MobileNetV2] [--batch 2] [--repeat 5]
(needs NAME.h5 files in --folder, a release build and the oracle venv at .build/oracle-venv)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCION = os.path.join(ROOT, ".build", "release", "scion")
ORACLE = os.path.join(ROOT, ".build", "oracle-venv", "bin", "python")
ORT_JOB = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], session.run(None, {session.get_inputs()[0].name: x})[0])
"""


def timed(command, environment):
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=environment)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="*", default=["ResNet50", "MobileNetV2"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--folder", default="/work/apps/keras3", help="where NAME.h5 is")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    as_set = dict(os.environ)
    unset = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    print(f"| model | batch | scion run .h5 (s) | scion run .onnx (s) | same, OPENBLAS_CORETYPE unset (s) | .h5 cached (s) | .onnx cached (s) "
          f"| onnxruntime from Python (s) | ratio .h5 / .onnx / .h5 cached / .onnx cached |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        h5 = os.path.join(args.folder, f"{name}.h5")
        onnx_path = os.path.join(folder, f"{name}.onnx")
        subprocess.run([SCION, "convert", h5, onnx_path, "--force"], check=True)
        size = 299 if name.startswith("Inception") else 224
        x = np.random.default_rng(0).random((args.batch, size, size, 3), dtype=np.float32)
        x_path = os.path.join(folder, "x.npy")
        np.save(x_path, x)
        out = os.path.join(folder, "out.npy")
        cache = os.path.join(folder, "cache")
        jobs = {
            "h5": ([SCION, "run", h5, "--input", x_path, "--output", out, "--force"], as_set),
            "onnx": ([SCION, "run", onnx_path, "--input", x_path, "--output", out, "--force"], as_set),
            "onnx-unset": ([SCION, "run", onnx_path, "--input", x_path, "--output", out, "--force"], unset),
            "h5-cached": ([SCION, "run", h5, "--input", x_path, "--output", out, "--force", "--weights-cache", cache], as_set),
            "onnx-cached": ([SCION, "run", onnx_path, "--input", x_path, "--output", out, "--force", "--weights-cache", cache], as_set),
            "ort": ([ORACLE, "-c", ORT_JOB, onnx_path, x_path, out], as_set),
        }
        for key in ["h5-cached", "onnx-cached"]:
            timed(*jobs[key])  # fills the cache
        medians = {key: statistics.median(timed(command, env) for _ in range(args.repeat)) for key, (command, env) in jobs.items()}
        ratios = " / ".join(f"{medians[key] / medians['ort']:.2f}x" for key in ["h5", "onnx", "h5-cached", "onnx-cached"])
        print(f"| {name} | {args.batch} | {medians['h5']:.2f} | {medians['onnx']:.2f} | {medians['onnx-unset']:.2f} | {medians['h5-cached']:.2f} "
              f"| {medians['onnx-cached']:.2f} | {medians['ort']:.2f} | {ratios} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
