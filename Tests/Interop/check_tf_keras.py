"""The `.h5` files Scion writes, loaded by tf_keras (Keras 2) as well as Keras 3.

Scion writes `.h5` model configs in the Keras 2 schema that both Keras 3's legacy loader and tf_keras
read, so one file serves both where tf_keras has the layers. This converts every Keras fixture and
every tf2onnx fixture to `.h5` with `scion convert`, loads it with
tf_keras.models.load_model(compile=False), predicts on the fixture's inputs and compares with the
reference outputs (max|a-b| <= 1e-4 * max|b|) and the parameter counts.

Needs TensorFlow, so it runs in the fixtures venv, not in CI (where Keras 3 checks the same files):
    /opt/scion-fixtures-venv/bin/python Tests/Interop/check_tf_keras.py [--scion PATH]
Prints one line per case and "tf-keras: P passed, F failed, S skipped"; a case whose layer tf_keras
does not have (a Keras 3 addition) counts as skipped, with the layer named.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
from fixture_arrays import arrays  # noqa: E402
import tf_keras as keras  # noqa: E402
from tf_keras.src.applications import convnext, inception_resnet_v2  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Layers keras.applications defines privately; tf_keras has them under these names.
CUSTOM_OBJECTS = {"LayerScale": convnext.LayerScale, "StochasticDepth": convnext.StochasticDepth,
                  "CustomScaleLayer": getattr(inception_resnet_v2, "CustomScaleLayer", None)}


def check(scion, source, reference_folder, name, out_path):
    inputs, outputs = arrays(reference_folder, name, "input"), arrays(reference_folder, name, "output")
    if not inputs:
        return "skip", "no reference arrays"
    result = subprocess.run([scion, "convert", source, out_path, "--force"], capture_output=True, text=True)
    if result.returncode != 0:
        return "skip", "scion refuses it: " + (result.stderr.strip().splitlines() or ["?"])[-1][-160:]
    try:
        with keras.utils.custom_object_scope({k: v for k, v in CUSTOM_OBJECTS.items() if v is not None}):
            model = keras.models.load_model(out_path, compile=False)
    except Exception as error:  # noqa: BLE001 - classify below
        message = str(error).splitlines()[0][:200]
        lacking = [line for line in str(error).splitlines()
                   if "Unknown layer" in line or "Unknown activation" in line or "Could not interpret activation" in line]
        if lacking:
            return "skip", f"tf_keras lacks it: {lacking[0][:160]}"
        return "fail", f"load: {type(error).__name__}: {message}"
    predicted = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    predicted = list(predicted) if isinstance(predicted, (list, tuple)) else [predicted]
    worst = 0.0
    for got, expected in zip(predicted, outputs):
        if got.shape != expected.shape:
            return "fail", f"output shape {got.shape} != {expected.shape}"
        scale = float(np.max(np.abs(expected))) or 1.0
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - expected))) / scale)
    if worst > 1e-4:
        return "fail", f"outputs differ: relative {worst:.3g}"
    reference = os.path.join(reference_folder, f"{name}.json")
    if os.path.exists(reference) and source.endswith((".h5", ".keras")):
        counts = json.load(open(reference))
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        if (model.count_params(), trainable) != (counts["totalParams"], counts["trainableParams"]):
            return "fail", f"params {model.count_params()}/{trainable}, reference {counts['totalParams']}/{counts['trainableParams']}"
    return "ok", f"max relative difference {worst:.2g}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    args = parser.parse_args()
    fixtures = os.path.join(ROOT, "fixtures")
    cases = []
    for folder, pattern in [("keras2", "*.h5"), ("keras3", "*.keras")]:
        for path in sorted(glob.glob(os.path.join(fixtures, folder, pattern))):
            name = os.path.basename(path).rsplit(".", 1)[0]
            cases.append((f"{folder}/{name}", path, os.path.join(fixtures, folder), name))
    for path in sorted(glob.glob(os.path.join(fixtures, "tf2onnx", "*.onnx"))):
        name = os.path.basename(path)[:-5]
        cases.append((f"tf2onnx/{name}", path, os.path.join(fixtures, "keras2"), name))
    counts = {"ok": 0, "fail": 0, "skip": 0}
    with tempfile.TemporaryDirectory() as folder:
        for label, source, references, name in cases:
            status, message = check(args.scion, source, references, name, os.path.join(folder, f"{name}.h5"))
            counts[status] += 1
            print(f"{ {'ok': 'ok  ', 'fail': 'FAIL', 'skip': 'skip'}[status] } {label} -> .h5 in tf_keras: {message}", flush=True)
            keras.backend.clear_session()
    print(f"tf-keras: {counts['ok']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
