#!/usr/bin/env python3
"""Interop check: Scion's ONNX against the real tools.

For every fixture with Keras's reference outputs, `scion convert` writes ONNX; then the ONNX checker
(full_check) must pass and onnxruntime, fed the fixture's input arrays, must give Keras's outputs
within max|a-b| <= 1e-4 * max|b|. Every other .onnx file under --also (written by the Swift tests) must
pass the checker and load in onnxruntime.

Exit status 1 if anything fails; fixtures listed in EXPECTED_UNSUPPORTED must fail conversion with a
clear message (and are reported), anything else unconverted is a failure.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime

onnxruntime.set_default_logger_severity(3)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOLERANCE = 1e-4

# Fixtures holding layers ONNX cannot express in Scion yet, each with the reason.
EXPECTED_UNSUPPORTED = {
    "keras3/activation_zoo": "sparsemax has no ONNX pattern yet",
    # ONNX Resize has no Lanczos kernel, nor TensorFlow's tabulated bicubic (tf.keras).
    "keras2/resizing_kernels": "Lanczos and tf.keras's bicubic have no ONNX Resize match",
    "keras3/resizing_kernels": "Lanczos has no ONNX Resize match",
    # A user's layer class and Lambda layers are Python code the file does not hold: never ONNX.
    "keras2/custom_layer": "custom layer class", "keras3/custom_layer": "custom layer class",
    "keras2/lambda_layer": "Lambda layer", "keras3/lambda_layer": "Lambda layer",
}


def fixture_models(fixtures):
    for folder in ("keras2", "keras3"):
        for reference in sorted(glob.glob(os.path.join(fixtures, folder, "*.json"))):
            base = reference[:-5]
            for suffix in (".h5", ".keras"):
                if os.path.exists(base + suffix) and not base.endswith("weights_only"):
                    yield folder, os.path.basename(base), base + suffix


def arrays(base, kind):
    single = f"{base}.{kind}.npy"
    if os.path.exists(single):
        return [np.load(single)]
    result = []
    index = 0
    while os.path.exists(f"{base}.{kind}_{index}.npy"):
        result.append(np.load(f"{base}.{kind}_{index}.npy"))
        index += 1
    return result


def relative_error(got, want):
    """max|a-b| / max|b|, the project's comparison."""
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale


def is_softmax(array):
    return array.ndim == 2 and array.shape[1] > 1 and bool(np.all(array > 0)) and bool(
        np.allclose(array.sum(axis=1), 1.0, atol=1e-4))


def centred_log(probabilities):
    logs = np.log(probabilities.astype(np.float64))
    return logs - logs.mean(axis=1, keepdims=True)


def compare_features(path, base, inputs):
    """When Keras saved what feeds the classifier (NAME.features.npy, layer named in NAME.json), expose
    that value as an extra output of the converted model and compare it: pre-softmax numbers."""
    if not os.path.exists(base + ".features.npy"):
        return None
    with open(base + ".json") as handle:
        layer = json.load(handle).get("featuresLayer")
    if not layer:
        return None
    model = onnx.load(path)
    produced = {output for node in model.graph.node for output in node.output}
    if layer not in produced:
        raise SystemExit(f"{path}: no value named {layer} to compare features with")
    model.graph.output.append(onnx.helper.make_tensor_value_info(layer, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {declared.name: array.astype(np.float32) for declared, array in zip(session.get_inputs(), inputs)}
    got = session.run([layer], feeds)[0]
    want = np.load(base + ".features.npy")
    return relative_error(got.reshape(want.shape), want) if got.size == want.size else float("inf")


def run_onnx(path, inputs):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {}
    for declared, array in zip(session.get_inputs(), inputs):
        wanted = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(declared.type, np.float32)
        feeds[declared.name] = array.astype(wanted)
    return session.run(None, feeds)


# kerasops_zoo: Slice, Squeeze, Unsqueeze and Reduce*, whose axes move from attributes to inputs
# between opsets 13 and 18; masked_variants: the mask's ONNX form (Slice, Squeeze, Unsqueeze with axes inputs).
OPSET_FIXTURES = [("keras3", "convnext_blocks"), ("keras3", "mobilenet_v3_small"), ("keras3", "misc_zoo"), ("keras3", "group_norm"),
                  ("keras3", "kerasops_zoo"), ("keras3", "resizing"), ("keras3", "resizing_antialias"),
                  ("keras3", "attention_variants"), ("keras3", "transformer_block"), ("keras3", "masked_variants"),
                  ("keras3", "masking_dense")]
# Fixtures swept only from the opset that can express them.
MINIMUM_OPSET = {"keras3/resizing_antialias": 18}


def check_fixture(arguments, folder, name, model, opset):
    """Converts one fixture and compares it; True passed, False failed, None expected refusal."""
    key = f"{folder}/{name}"
    suffix = os.path.splitext(model)[1]
    tag = f"{key}{suffix}" + (f" opset {opset}" if opset else "")
    target = os.path.join(arguments.out, f"{folder}_{name}{suffix.replace('.', '_')}" + (f"_opset{opset}" if opset else "") + ".onnx")
    command = [arguments.scion, "convert", model, target, "--force"] + (["--opset", str(opset)] if opset else [])
    converted = subprocess.run(command, capture_output=True, text=True)
    if converted.returncode != 0:
        message = converted.stderr.strip()
        if key in EXPECTED_UNSUPPORTED and converted.returncode == 1 and message.count("\n") == 0:
            print(f"unsupported  {tag}: {message}")
            return None
        print(f"FAIL convert {tag}: {message}")
        return False
    try:
        onnx.checker.check_model(target, full_check=True)
    except Exception as error:  # the checker raises several types
        print(f"FAIL checker {tag}: {str(error).splitlines()[0]}")
        return False
    base = os.path.join(arguments.fixtures, folder, name)
    inputs, expected = arrays(base, "input"), arrays(base, "output")
    if not inputs:
        print(f"skip         {tag}: no reference arrays")
        return None
    try:
        outputs = run_onnx(target, inputs)
    except Exception as error:
        print(f"FAIL run     {tag}: {str(error).splitlines()[0]}")
        return False
    worst = 0.0
    worst_logits = None
    for got, want in zip(outputs, expected):
        if got.size != want.size:
            worst = float("inf")
            continue
        got = got.reshape(want.shape)
        worst = max(worst, relative_error(got, want))
        if is_softmax(want):
            # Random-weight softmax outputs are nearly flat and hide errors: compare the
            # pre-softmax logits too, recovered as log-probabilities centred per row.
            error = relative_error(centred_log(got), centred_log(want))
            worst_logits = max(worst_logits or 0.0, error)
            worst = max(worst, error)
    features = compare_features(target, base, inputs)
    if features is not None:
        worst = max(worst, features)
    details = f", logits {worst_logits:.2e}" if worst_logits is not None else ""
    details += f", features {features:.2e}" if features is not None else ""
    print(f"{'ok  ' if worst <= TOLERANCE else 'FAIL'} numbers {tag}: max relative error {worst:.2e}{details}")
    return worst <= TOLERANCE


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    parser.add_argument("--fixtures", default=os.path.join(ROOT, "fixtures"))
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "interop"))
    parser.add_argument("--also", default=None, help="folder of other .onnx files to check (checker + load)")
    arguments = parser.parse_args()
    os.makedirs(arguments.out, exist_ok=True)

    failures = 0
    passed = 0
    jobs = [(folder, name, model, None) for folder, name, model in fixture_models(arguments.fixtures)]
    # Every opset the writer supports, on fixtures whose patterns change with the opset
    # (LayerNormalization before 17, Gelu from 20, HardSwish from 14, GroupNormalization from 21).
    # Without --opset (the jobs above) Scion picks the lowest opset that expresses each model
    # (resizing_antialias: 18).
    for opset in range(13, 24):
        for folder, name in OPSET_FIXTURES:
            if opset < MINIMUM_OPSET.get(f"{folder}/{name}", 0):
                continue
            model = os.path.join(arguments.fixtures, folder, name + ".keras")
            if os.path.exists(model):
                jobs.append((folder, name, model, opset))
    for folder, name, model, opset in jobs:
        outcome = check_fixture(arguments, folder, name, model, opset)
        if outcome is True:
            passed += 1
        elif outcome is False:
            failures += 1

    if arguments.also and os.path.isdir(arguments.also):
        for path in sorted(glob.glob(os.path.join(arguments.also, "**", "*.onnx"), recursive=True)):
            try:
                onnx.checker.check_model(path, full_check=True)
                onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
                passed += 1
                print(f"ok   loads   {os.path.relpath(path, arguments.also)}")
            except Exception as error:
                failures += 1
                print(f"FAIL loads   {path}: {str(error).splitlines()[0]}")

    print(f"interop: {passed} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
