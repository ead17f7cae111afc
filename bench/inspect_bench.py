#!/usr/bin/env python3
"""Times `scion inspect --json` on full-size keras.applications models, side by side with Keras 3.

Issue #2's target: inspect reads no weight bytes, so VGG16's .h5 (553 MB) is no slower than twice
MobileNetV2's (14 MB). The peer is Keras 3 itself (`load_model` + `count_params`), in a fresh process
(imports included) and in-process (load only), on the same files.

Make the models first (not committed, ~1 GB):
    /opt/scion-fixtures-venv/bin/python fixtures/make_applications.py --keras 3
Then: make bench  (or: bench/inspect_bench.py [--runs N] [--keras-python PYTHON])
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["VGG16", "ResNet50", "MobileNetV2", "InceptionV3", "DenseNet121", "Xception", "EfficientNetB0"]


def run_timed(command, env=None):
    """Wall time and peak memory (MiB) of one child process. Output goes to a file, not a pipe, so a
    large output cannot block the child while we wait for it."""
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=errors, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        if status != 0:
            errors.seek(0)
            raise SystemExit(f"failed: {' '.join(command)}: {errors.read().decode()[-500:]}")
        output.seek(0)
        return elapsed, usage.ru_maxrss / 1024, output.read()


KERAS_SNIPPET = """
import os, sys, time, json
os.environ.setdefault("KERAS_BACKEND", "jax")
import keras
start = time.perf_counter()
model = keras.models.load_model(sys.argv[1], compile=False)
params = model.count_params()
print(json.dumps({"load": time.perf_counter() - start, "params": params}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--folder", default=os.path.join(ROOT, "fixtures", "applications", "keras3"))
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "release", "scion"))
    parser.add_argument("--keras-python", default="/opt/scion-oracle-venv/bin/python",
                        help="a Python with keras and jax, for the peer column (skipped if missing)")
    arguments = parser.parse_args()

    rows = []
    for name, suffix in [(name, suffix) for suffix in (".h5", ".keras") for name in MODELS]:
        path = os.path.join(arguments.folder, name + suffix)
        if not os.path.exists(path):
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        times, memories = [], []
        for _ in range(arguments.runs):
            elapsed, memory, output = run_timed([arguments.scion, "inspect", "--json", path])
            times.append(elapsed)
            memories.append(memory)
        summary = json.loads(output)
        row = {"model": name + suffix, "megabytes": os.path.getsize(path) / 1e6,
               "scion_s": statistics.median(times), "scion_mib": max(memories),
               "params": summary["totalParams"]}
        if os.path.exists(arguments.keras_python):
            elapsed, memory, output = run_timed([arguments.keras_python, "-c", KERAS_SNIPPET, path])
            peer = json.loads(output.decode().strip().splitlines()[-1])
            row.update(keras_process_s=elapsed, keras_load_s=peer["load"], keras_mib=memory,
                       keras_params=peer["params"])
        rows.append(row)

    print(f"| model | MB | scion inspect (s, median of {arguments.runs}) | scion peak MiB "
          "| Keras 3 process (s) | Keras 3 load_model (s) | Keras peak MiB | params equal |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        peer = (f"{row['keras_process_s']:.2f} | {row['keras_load_s']:.2f} | {row['keras_mib']:.0f} | "
                f"{'yes' if row['keras_params'] == row['params'] else 'NO'}") if "keras_params" in row else "- | - | - | -"
        print(f"| {row['model']} | {row['megabytes']:.0f} | {row['scion_s']:.3f} | {row['scion_mib']:.0f} | {peer} |")
    by_name = {row["model"]: row for row in rows}
    for suffix in (".h5", ".keras"):
        if "VGG16" + suffix in by_name and "MobileNetV2" + suffix in by_name:
            ratio = by_name["VGG16" + suffix]["scion_s"] / by_name["MobileNetV2" + suffix]["scion_s"]
            print(f"\nVGG16{suffix} / MobileNetV2{suffix} inspect time: {ratio:.2f} (target: at most 2)")


if __name__ == "__main__":
    main()
