"""Converts every Keras fixture with `scion convert` and checks the result in real Keras 3.

For each model in fixtures/keras2 and fixtures/keras3 that has NAME.json and stored inputs/outputs,
runs `scion convert MODEL OUT.keras` (and OUT.h5 with --h5), loads the result with
keras.models.load_model(compile=False), predicts on the fixture's inputs and compares with the
fixture's outputs (max|a-b| <= 1e-4 * max|b|), and compares count_params() and the trainable
parameter count with the reference JSON.

Usage: KERAS_BACKEND=jax /opt/scion-oracle-venv/bin/python Tests/Interop/check_keras.py
       [--scion PATH] [--h5] [--folder fixtures/applications/keras2 ...] [NAME ...]
Prints one line per case and "keras: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
from fixture_arrays import arrays  # noqa: E402
import keras  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "fixtures"))
import models_custom  # noqa: E402

# The user's layer class of the custom_layer fixtures, registered as the fixtures made it: Keras finds
# it by the registered name Scion writes back.
CUSTOM_OBJECTS = models_custom.register(keras)
# Fixtures whose files hold Python bytecode (Lambda): Keras loads them only with safe_mode off.
LAMBDA_FIXTURES = {"lambda_layer"}

# Sources Keras 3 cannot express, with the words Scion's one-line refusal must contain: a refusal
# naming the reason passes, anything else (a crash, another error, a silent conversion) fails.
# Keras 2's hard_sigmoid (clip(0.2x + 0.5)) as an LSTM's recurrent_activation: Keras 3's
# hard_sigmoid is relu6(x + 3) / 6, and a recurrent layer's gates take no layer chain (tf.keras's
# ConvLSTM2D has it by default).
# tf.keras's Resizing bicubic reads TensorFlow's 1024-step weight table, which Keras 3 does not compute.
REFUSED = {"keras2/rnn_lstm.h5": "lstm_back: LSTM with activation hard_sigmoid has no Keras 3 equivalent",
           "keras2/resizing_kernels.h5": "up_bicubic: tf.keras's bicubic Resizing",
           "keras2/conv_lstm.h5": "convlstm_seq: ConvLSTM2D with activation hard_sigmoid has no Keras 3 equivalent"}


def load(path, name):
    return keras.models.load_model(path, compile=False, custom_objects=CUSTOM_OBJECTS,
                                   safe_mode=name not in LAMBDA_FIXTURES)


def check(scion, name, source, reference, inputs, outputs, out_path, refusal=None):
    result = subprocess.run([scion, "convert", source, out_path, "--force"], capture_output=True, text=True)
    if refusal is not None:
        if result.returncode != 0 and refusal in result.stderr:
            return True, "refused as expected: " + result.stderr.strip().splitlines()[-1]
        return False, "expected the refusal '" + refusal + "', got: " + (result.stderr.strip() or "a conversion")
    if result.returncode != 0:
        return False, "convert: " + (result.stderr.strip().splitlines() or ["failed"])[-1]
    try:
        model = load(out_path, name)
    except Exception as error:  # noqa: BLE001 - every load failure is a finding
        return False, f"load: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
    predicted = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    if not isinstance(predicted, (list, tuple)):
        predicted = [predicted]
    worst = 0.0
    for got, expected in zip(predicted, outputs):
        got = np.asarray(got)
        if got.shape != expected.shape:
            return False, f"output shape {got.shape} != {expected.shape}"
        scale = float(np.max(np.abs(expected))) or 1.0
        difference = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
        worst = max(worst, difference / scale)
    if worst > 1e-4:
        return False, f"outputs differ: relative {worst:.3g}"
    total = model.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    if total != reference["totalParams"] or trainable != reference["trainableParams"]:
        return False, (f"params {total}/{trainable} trainable, reference "
                       f"{reference['totalParams']}/{reference['trainableParams']}")
    return True, f"relative difference {worst:.2g}, {total} params"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    parser.add_argument("--h5", action="store_true", help="also write and check OUT.h5")
    parser.add_argument("--folder", action="append", dest="folders",
                        help="fixture folder to check (repeatable); default fixtures/keras2 and fixtures/keras3, "
                             "e.g. fixtures/applications/keras2 for the full-size applications")
    parser.add_argument("names", nargs="*")
    options = parser.parse_args()
    passed = failed = skipped = 0
    extensions = [".keras"] + ([".h5"] if options.h5 else [])
    with tempfile.TemporaryDirectory() as scratch:
        folders = options.folders or [os.path.join("fixtures", "keras2"), os.path.join("fixtures", "keras3")]
        for folder in folders:
            folder = os.path.join(ROOT, folder)
            version = os.path.relpath(folder, os.path.join(ROOT, "fixtures"))
            for json_path in sorted(glob.glob(os.path.join(folder, "*.json"))):
                name = os.path.basename(json_path)[:-5]
                if options.names and name not in options.names:
                    continue
                reference = json.load(open(json_path))
                inputs, outputs = arrays(folder, name, "input"), arrays(folder, name, "output")
                sources = [p for p in (os.path.join(folder, f"{name}.h5"), os.path.join(folder, f"{name}.keras"))
                           if os.path.exists(p)]
                for source in sources:
                    label = f"{version}/{os.path.basename(source)}"
                    if not inputs or not outputs:
                        skipped += 1
                        print(f"SKIP {label}: no stored inputs/outputs")
                        continue
                    # The chain a user makes from a Keras 2 file (source -> .keras -> .h5) is checked
                    # for Keras 2 sources, where the two schemas differ most.
                    chain = options.h5 and version.endswith("keras2")
                    for extension in extensions + ([".keras.h5"] if chain else []):
                        out_path = os.path.join(scratch, f"{version.replace(os.sep, '_')}_{os.path.basename(source)}{extension}")
                        origin = source
                        refusal = REFUSED.get(label)
                        if extension == ".keras.h5" and refusal is None:
                            # The chain a user makes: source -> .keras -> .h5, the last one loaded.
                            origin = out_path[:-3]
                            converted = subprocess.run([options.scion, "convert", source, origin, "--force"],
                                                       capture_output=True, text=True)
                            if converted.returncode != 0:
                                failed += 1
                                print(f"FAIL {label} -> .keras (chain): {converted.stderr.strip()}", flush=True)
                                continue
                        ok, detail = check(options.scion, name, origin, reference, inputs, outputs, out_path, refusal)
                        passed += ok
                        failed += not ok
                        print(f"{'PASS' if ok else 'FAIL'} {label} -> {extension}: {detail}", flush=True)
        if not options.names or "custom_layer" in options.names:
            for ok, detail in custom_layer_surgery(options.scion, scratch):
                passed += ok
                failed += not ok
                print(f"{'PASS' if ok else 'FAIL'} {detail}", flush=True)
    print(f"keras: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


def custom_layer_surgery(scion, scratch):
    """Surgery on a model with a user's layer class: `cut --drop-top` keeps the class (Keras loads the
    written file and computes the kept layer's output), `cut --after conv` removes every custom layer,
    and the result converts to ONNX and runs in onnxruntime with Keras's numbers. ONNX conversion and
    `run` of the whole model refuse with one line naming the layer."""
    import onnxruntime
    for source in (os.path.join(ROOT, "fixtures", "keras2", "custom_layer.h5"),
                   os.path.join(ROOT, "fixtures", "keras3", "custom_layer.keras")):
        label = os.path.relpath(source, os.path.join(ROOT, "fixtures"))
        x = np.load(source.rsplit(".", 1)[0] + ".input.npy")
        original = load(source, "custom_layer")
        for layer, cut, suffix in (("out", ["--drop-top"], ".keras"), ("out", ["--drop-top"], ".h5"),
                                   ("conv", ["--after", "conv"], ".onnx")):
            out = os.path.join(scratch, f"custom_cut{suffix}")
            made = subprocess.run([scion, "cut", source, *cut, "-o", out, "--force"], capture_output=True, text=True)
            if made.returncode != 0:
                yield False, f"{label} cut {' '.join(cut)} -> {suffix}: {made.stderr.strip()}"
                continue
            kept = original.get_layer("head_scale" if layer == "out" else "conv").output
            expected = np.asarray(keras.Model(original.inputs, kept).predict(x, verbose=0), dtype=np.float64)
            if suffix == ".onnx":
                session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
                got = session.run(None, {session.get_inputs()[0].name: x})[0]
            else:
                got = load(out, "custom_layer").predict(x, verbose=0)
            worst = float(np.max(np.abs(got - expected))) / (float(np.max(np.abs(expected))) or 1.0)
            yield worst <= 1e-4, f"{label} cut {' '.join(cut)} -> {suffix}: relative difference {worst:.2g}"
        for command in (["convert", source, os.path.join(scratch, "custom_whole.onnx"), "--force"],
                        ["run", source, "--input", source.rsplit(".", 1)[0] + ".input.npy",
                         "-o", os.path.join(scratch, "custom_whole.npy"), "--force"]):
            refused = subprocess.run([scion, *command], capture_output=True, text=True)
            lines = refused.stderr.strip().splitlines()
            ok = (refused.returncode == 1 and len(lines) == 1 and "base_scale" in lines[0]
                  and "scion_fixtures>ScaleBy" in lines[0])
            yield ok, f"{label} {command[0]} refused: {lines[-1] if lines else 'no message'}"


if __name__ == "__main__":
    sys.exit(main())
