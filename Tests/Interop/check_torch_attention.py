"""torch's attention blocks converted to Keras: `scion convert` to .keras, then `scion run` on the
.keras and Keras 3 loading it, both against onnxruntime on the original ONNX file.

  fixtures/torch_attention (fixtures/make_torch_attention.py): each encoder export must become 2
  MultiHeadAttention and 4 LayerNormalization layers (`manual`, `causal`: 1 and 0; `decoder`: 2 and 3) with onnxruntime's
  outputs (stored) within max|a-b| <= 1e-4 max|b|, at batch 2 and, for dynamic-batch exports, batch 3.
  `banded` (a mask Keras has no flag for) and `interleaved` (the key's heads interleaved) must not
  become a MultiHeadAttention: refused, or converted without one.
  --survey DIR   also NAME.onnx files named as the issue-16 survey names them (NAME_ts, NAME_dynb...,
                 inputs DIR/BASE.input.npy, BASE.input3.npy for the dynamic-batch *b files), compared
                 with onnxruntime run here; files that do not convert are listed as skipped.

Usage: KERAS_BACKEND=jax .build/oracle-venv/bin/python Tests/Interop/check_torch_attention.py --scion .build/debug/scion
Prints one line per case and "torch-attention: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures", "torch_attention")
LEFT_ALONE = {"banded", "interleaved"}


def relative(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def convert(scion, onnx_path, folder):
    target = os.path.join(folder, os.path.basename(onnx_path)[:-5] + ".keras")
    result = subprocess.run([scion, "convert", onnx_path, target, "--force"], capture_output=True, text=True)
    return (target, None) if result.returncode == 0 else (None, result.stderr.strip().splitlines()[-1][:300])


def scion_run(scion, model, x, folder):
    arrays = x if isinstance(x, list) else [x]
    sources, out = [os.path.join(folder, f"x{i}.npy") for i in range(len(arrays))], os.path.join(folder, "y.npy")
    for source, array in zip(sources, arrays):
        np.save(source, array)
    inputs = [part for source in sources for part in ("--input", source)]
    result = subprocess.run([scion, "run", model] + inputs + ["-o", out, "--force", "-q"], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr.strip()[:300])
    return np.load(out)


def layer_counts(model):
    names = [type(layer).__name__ for layer in model.layers]
    return names.count("MultiHeadAttention"), names.count("LayerNormalization")


def compare(scion, name, keras_path, cases, folder, expected_layers):
    """cases: (label, input, reference). Returns the failures."""
    model = keras.saving.load_model(keras_path)
    failures = []
    counts = layer_counts(model)
    if expected_layers and counts != expected_layers:
        failures.append(f"{name}: {counts[0]} MultiHeadAttention, {counts[1]} LayerNormalization, expected {expected_layers}")
    for label, x, reference in cases:
        ours = relative(scion_run(scion, keras_path, x, folder), reference)
        theirs = relative(np.asarray(model.predict(x, verbose=0)), reference)
        ok = ours <= 1e-4 and theirs <= 1e-4
        print(f"{'ok  ' if ok else 'FAIL'} {name} {label}: scion run {ours:.1e}, keras 3 {theirs:.1e}, "
              f"{counts[0]} MultiHeadAttention")
        if not ok:
            failures.append(f"{name} {label}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    parser.add_argument("--survey", help="a folder of survey exports (NAME_ts.onnx ... with BASE.input.npy)")
    options = parser.parse_args()
    passed, failed, skipped = 0, [], []
    with tempfile.TemporaryDirectory() as folder:
        for path in sorted(glob.glob(os.path.join(FIXTURES, "*.onnx"))):
            name = os.path.basename(path)[:-5]
            keras_path, error = convert(options.scion, path, folder)
            if name in LEFT_ALONE:
                has_attention = keras_path is not None and layer_counts(keras.saving.load_model(keras_path))[0] > 0
                print(f"{'FAIL' if has_attention else 'ok  '} {name}: left alone ({error or 'converted without MultiHeadAttention'})")
                (failed.append(name) if has_attention else None)
                passed += 0 if has_attention else 1
                continue
            if keras_path is None:
                print(f"FAIL {name}: {error}")
                failed.append(name)
                continue
            cases = []
            if name == "decoder":
                cases.append(("batch 2", [np.load(os.path.join(FIXTURES, f"{name}.input_{i}.npy")) for i in range(2)],
                              np.load(os.path.join(FIXTURES, f"{name}.output.npy"))))
            for suffix in ["", "3"]:
                source = os.path.join(FIXTURES, f"{name}.input{suffix}.npy")
                if os.path.exists(source):
                    cases.append((f"batch {np.load(source).shape[0]}", np.load(source),
                                  np.load(os.path.join(FIXTURES, f"{name}.output{suffix}.npy"))))
            failures = compare(options.scion, name, keras_path, cases, folder, {"manual": (1, 0), "causal": (1, 0), "decoder": (2, 3)}.get(name, (2, 4)))
            failed += failures
            passed += 0 if failures else 1
        for path in sorted(glob.glob(os.path.join(options.survey, "*.onnx"))) if options.survey else []:
            name = os.path.basename(path)[:-5]
            if name.endswith(".rt"):
                continue
            base = os.path.join(options.survey, name.rsplit("_", 1)[0])
            source = base + (".input3.npy" if name.endswith("b") else ".input.npy")
            if not os.path.exists(source):
                continue
            keras_path, error = convert(options.scion, path, folder)
            if keras_path is None:
                print(f"skip {name}: {error}")
                skipped.append(name)
                continue
            x = np.load(source)
            session = ort.InferenceSession(path)
            reference = session.run(None, {session.get_inputs()[0].name: x})[0]
            failures = compare(options.scion, name, keras_path, [(f"batch {x.shape[0]}", x, reference)], folder, None)
            failed += failures
            passed += 0 if failures else 1
    print(f"torch-attention: {passed} passed, {len(failed)} failed, {len(skipped)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
