#!/usr/bin/env python3
"""Keras .h5 to ONNX: `scion convert` side by side with tf2onnx on the same files.

Issue #3's targets: at least 20x faster than tf2onnx, Scion's peak RSS at most 2x the model file.
tf2onnx runs in its own process (imports, tf_keras load_model and conversion, as a user would run it),
Scion likewise (`scion convert`, release build). Peak memory is the child's maximum RSS.

Make the models first: `make -C fixtures applications` (or fixtures/make_applications.py --keras 2).
Then: bench/convert_bench.py [--models ResNet50 ...] [--tf2onnx-python PYTHON]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TF2ONNX_SNIPPET = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tf_keras, tf2onnx, tensorflow as tf
model = tf_keras.models.load_model(sys.argv[1], compile=False)
spec = [tf.TensorSpec([None] + list(i.shape[1:]), i.dtype, name=i.name) for i in model.inputs]
tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=sys.argv[2])
"""


def run_timed(command):
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        if status != 0:
            output.seek(0)
            raise SystemExit(f"failed: {' '.join(command)}\n{output.read().decode()[-2000:]}")
        return elapsed, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["ResNet50", "MobileNetV2", "InceptionV3", "VGG16"])
    parser.add_argument("--folder", default=os.path.join(ROOT, "fixtures", "applications", "keras2"))
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "release", "scion"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tf2onnx-python", default="/opt/scion-fixtures-venv/bin/python")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    arguments = parser.parse_args()
    os.makedirs(arguments.out, exist_ok=True)

    print("| model (.h5, Keras 2) | MB | scion convert (s, median) | scion peak MiB | peak / file | "
          "tf2onnx (s) | tf2onnx peak MiB | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name in arguments.models:
        path = os.path.join(arguments.folder, name + ".h5")
        if not os.path.exists(path):
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        megabytes = os.path.getsize(path) / 2**20
        ours = [run_timed([arguments.scion, "convert", path, os.path.join(arguments.out, name + ".scion.onnx"), "--force"])
                for _ in range(arguments.runs)]
        scion_seconds = statistics.median(t for t, _ in ours)
        scion_memory = max(m for _, m in ours)
        peer = "- | - | -"
        if os.path.exists(arguments.tf2onnx_python):
            seconds, memory = run_timed([arguments.tf2onnx_python, "-c", TF2ONNX_SNIPPET, path,
                                         os.path.join(arguments.out, name + ".tf2onnx.onnx")])
            peer = f"{seconds:.1f} | {memory:.0f} | {seconds / scion_seconds:.0f}x"
        print(f"| {name} | {megabytes:.0f} | {scion_seconds:.2f} | {scion_memory:.0f} | "
              f"{scion_memory / megabytes:.2f} | {peer} |")


if __name__ == "__main__":
    main()
