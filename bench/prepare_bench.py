#!/usr/bin/env python3
"""Preparation against one batch-2 pass (issue #18's target: at most 20%), with and without the
weights cache (`scion run --weights-cache DIR`), on the Keras `.h5` and `.keras` files and Scion's
ONNX export of each; onnxruntime's session creation on the same ONNX file beside them.

Each Scion figure is the median of `--runs` fresh processes of `scion run --repeat 10 --json`:
`readSeconds` (the file read; with the cache used, a Keras file's HDF5 structures are not walked
again), `prepareSeconds` (everything between the read and the first kernel:
lowering, plans, weights prepared or mapped, the input read) and `runSeconds` (the fastest of the 10
passes). "cache: written" is the first run with an empty cache folder (it prepares and writes),
"cache: used" the runs after it. Also the whole process's wall time (one pass, `--repeat 1`)
without and with the cache (bench/run_bench.py puts it beside onnxruntime's).

  .build/oracle-venv/bin/python bench/prepare_bench.py --folder /work/apps/keras3 [--models ...] [--runs 5]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCION = os.path.join(ROOT, ".build", "release", "scion")
MODELS = ["ResNet50", "MobileNetV2", "InceptionV3", "EfficientNetB0", "DenseNet121"]


def scion(model, x_path, out_path, cache=None, repeat=10):
    command = [SCION, "run", model, "--input", x_path, "-o", out_path, "--force", "--repeat", str(repeat), "--json"]
    if cache:
        command += ["--weights-cache", cache]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(done.stdout)
    report["whole"] = time.perf_counter() - started
    return report


def median(reports, key):
    return statistics.median(r[key] for r in reports)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", default="/work/apps/keras3", help="where NAME.h5 and NAME.keras are")
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="prepare_bench_")
    print(f"onnxruntime {ort.__version__}; medians of {args.runs} processes; times in ms")
    print("| model | file | read: no cache / cache used | prepare, no cache | prepare, cache written | prepare, cache used | batch-2 pass "
          "| prepare / pass: no cache / cache used | whole process: no cache / cache used | onnxruntime session creation |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        onnx_path = os.path.join(scratch, f"{name}.onnx")
        subprocess.run([SCION, "convert", os.path.join(args.folder, f"{name}.h5"), onnx_path, "--force", "--quiet"], check=True)
        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        size = session.get_inputs()[0].shape[1]
        size = size if isinstance(size, int) else 224
        x_path, out_path = os.path.join(scratch, "x.npy"), os.path.join(scratch, "out.npy")
        np.save(x_path, np.random.default_rng(2).random((2, size, size, 3), dtype=np.float32))
        creations = []
        for _ in range(args.runs):
            started = time.perf_counter()
            ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
            creations.append(time.perf_counter() - started)
        for path in [os.path.join(args.folder, f"{name}.h5"), os.path.join(args.folder, f"{name}.keras"), onnx_path]:
            plain = [scion(path, x_path, out_path) for _ in range(args.runs)]
            cache = os.path.join(scratch, "cache")
            shutil.rmtree(cache, ignore_errors=True)
            written = scion(path, x_path, out_path, cache)
            assert written["weightsCache"].startswith("written"), written["weightsCache"]
            used = [scion(path, x_path, out_path, cache) for _ in range(args.runs)]
            assert all(r["weightsCache"].startswith("used") for r in used)
            whole_plain = statistics.median(scion(path, x_path, out_path, repeat=1)["whole"] for _ in range(args.runs))
            whole_cached = statistics.median(scion(path, x_path, out_path, cache, repeat=1)["whole"] for _ in range(args.runs))
            passes = median(plain + used, "runSeconds")
            ms = lambda seconds: f"{seconds * 1000:.1f}"
            print(f"| {name} | {os.path.basename(path).replace(name, '')} | {ms(median(plain, 'readSeconds'))} / {ms(median(used, 'readSeconds'))} "
                  f"| {ms(median(plain, 'prepareSeconds'))} | {ms(written['prepareSeconds'])} | {ms(median(used, 'prepareSeconds'))} "
                  f"| {ms(passes)} | {median(plain, 'prepareSeconds') / passes:.0%} / {median(used, 'prepareSeconds') / passes:.0%} "
                  f"| {ms(whole_plain)} / {ms(whole_cached)} | {ms(statistics.median(creations))} |", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
