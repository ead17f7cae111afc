"""ONNX -> Keras: converts ONNX models with `scion convert` and checks the result in real Keras 3.

Each ONNX model is converted to OUT.keras and OUT.h5, loaded with keras.models.load_model(compile=False)
and run on the same inputs as onnxruntime runs the source model; outputs must agree within
max|a-b| <= 1e-4 * max|b|. When the ONNX model ends in Softmax, the pre-softmax values are compared
too (Keras: the input of the last layer; onnxruntime: the Softmax's input as an extra output), since
softmax of random weights is nearly flat. Stored reference outputs (the exporter's own numbers) are
compared as well where they exist.

Sources:
  --torch [DIR]    the onnx wheel's pytorch-converted/ set (DIR/test_*/model.onnx + test_data_set_0)
  --tf2onnx DIR    NAME.onnx (tf2onnx's, torch's), references NAME.input*.npy / NAME.output*.npy beside
                   them or in --refs (repeatable)
  --files F...     any ONNX files; random inputs (seed 0) for float inputs of known shape
  --runtime-ops    the models of runtime_op_cases.keras_ops_models (comparisons, Where, Mod, Trilu,
                   Einsum, GatherElements written as keras.ops nodes); random inputs

Models Keras has no layers for must be refused cleanly: exit 1, one `error:` line naming the node,
nothing written. EXPECTED_REFUSALS lists them; any other refusal is a failure.
Image inputs of torch's 2-D convolutions are also converted with --channels-last-input and fed NHWC.

Usage: KERAS_BACKEND=jax /opt/scion-oracle-venv/bin/python Tests/Interop/check_onnx_keras.py --torch DIR
Prints one line per case and "onnx-keras: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
from fixture_arrays import arrays  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import numpy_helper  # noqa: E402
import keras  # noqa: E402

ort.set_default_logger_severity(3)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Models with no Keras equivalent, and a fragment of the reason Scion must give.
EXPECTED_REFUSALS = {
    "test_ConstantPad2d": "pads with zeros only",
    "test_ReflectionPad2d": "mode reflect",
    "test_ReplicationPad2d": "mode edge",
    "test_MaxPool1d_stride_padding_dilation": "MaxPool",
    "test_MaxPool2d_stride_padding_dilation": "MaxPool",
    # tf2onnx writes LayerNormalization and Normalization through Shape/Expand/ReduceProd.
    "misc_zoo": "Shape",
}


def relative(got, expected):
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return None
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    return float(np.max(np.abs(got - expected))) / (scale or 1.0) if expected.size else 0.0


def onnx_inputs(model):
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def run_onnxruntime(path, feeds):
    """Outputs of the source model, plus the input of a final Softmax when there is one."""
    model = onnx.load(path)
    pre_softmax = None
    last = model.graph.node[-1] if model.graph.node else None
    if last is not None and last.op_type in ("Softmax", "LogSoftmax") and last.output[0] == model.graph.output[0].name \
            and len(model.graph.output) == 1:
        pre_softmax = last.input[0]
        model.graph.output.append(onnx.helper.make_tensor_value_info(pre_softmax, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    results = session.run(None, feeds)
    if pre_softmax is None:
        return results, None
    return results[:-1], results[-1]


def keras_predict(model, arrays, with_pre_softmax):
    outputs = model.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    pre = None
    if with_pre_softmax:
        last = model.layers[-1]
        activation = getattr(last, "activation", None)
        if type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") in ("softmax", "log_softmax"):
            inner = keras.Model(model.inputs, last.input)
            pre = inner.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0)
    return outputs, pre


def check_refusal(name, result, out_path):
    lines = result.stderr.strip().splitlines()
    if name not in EXPECTED_REFUSALS:
        return False, "refused: " + (lines[-1] if lines else "no message")
    if len(lines) != 1 or not lines[0].startswith("error:") or EXPECTED_REFUSALS[name] not in lines[0]:
        return False, f"refusal message not as expected: {lines}"
    if os.path.exists(out_path):
        return False, "refused but wrote the output"
    return True, "refused cleanly: " + lines[0].split(": ", 2)[-1][:120]


def check(scion, name, source, feeds, stored, folder, suffix, channels_last=False):
    out_path = os.path.join(folder, f"{name}{'_nhwc' if channels_last else ''}.{suffix}")
    command = [scion, "convert", source, out_path, "--force"] + (["--channels-last-input"] if channels_last else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return check_refusal(name, result, out_path)
    if name in EXPECTED_REFUSALS:
        return False, "converted, but listed in EXPECTED_REFUSALS: update the list"
    try:
        model = keras.models.load_model(out_path, compile=False)
    except Exception as error:  # noqa: BLE001 - every load failure is a finding
        return False, f"load: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
    arrays = list(feeds.values())
    if channels_last:
        arrays = [np.moveaxis(a, 1, -1) if a.ndim >= 3 else a for a in arrays]
    try:
        expected, expected_pre = run_onnxruntime(source, feeds)
    except Exception:  # noqa: BLE001 - onnxruntime has no kernels for some opset < 7 ops
        if not stored:
            raise
        expected, expected_pre = stored, None
    try:
        got, got_pre = keras_predict(model, arrays, expected_pre is not None)
    except Exception as error:  # noqa: BLE001
        return False, f"predict: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
    worst = 0.0
    pairs = list(zip(got, expected)) + list(zip(got, stored or []))
    if got_pre is not None:
        pairs.append((got_pre, expected_pre))
    if len(got) != len(expected):
        return False, f"{len(got)} outputs, onnxruntime gives {len(expected)}"
    for value, reference in pairs:
        difference = relative(value, reference)
        if difference is None:
            return False, f"output shape {np.shape(value)} != {np.shape(reference)}"
        worst = max(worst, difference)
    if worst > 1e-4:
        return False, f"outputs differ: relative {worst:.3g}"
    return True, f"max relative difference {worst:.2g}" + (" (pre-softmax too)" if got_pre is not None else "")


def torch_cases(folder):
    for directory in sorted(glob.glob(os.path.join(folder, "test_*"))):
        model = onnx.load(os.path.join(directory, "model.onnx"))
        data = os.path.join(directory, "test_data_set_0")
        load = lambda p: numpy_helper.to_array(onnx.TensorProto.FromString(open(p, "rb").read()))  # noqa: E731
        inputs = [load(p) for p in sorted(glob.glob(os.path.join(data, "input_*.pb")))]
        outputs = [load(p) for p in sorted(glob.glob(os.path.join(data, "output_*.pb")))]
        feeds = {i.name: a for i, a in zip(onnx_inputs(model), inputs)}
        nhwc = any(n.op_type == "Conv" and len(inputs[0].shape) == 4 for n in model.graph.node)
        yield os.path.basename(directory), os.path.join(directory, "model.onnx"), feeds, outputs, nhwc


def tf2onnx_cases(folder, refs):
    for path in sorted(glob.glob(os.path.join(folder, "*.onnx"))):
        name = os.path.basename(path)[:-5]
        if name.endswith(("_ts", "_dynamo")):
            continue  # torch's two exporters' files (make_torch_transformers.py): check_torch.py, at two batch sizes
        model = onnx.load(path)
        # References beside the model (torch's fixtures), else in `refs` (Keras's, for tf2onnx's).
        source = folder if arrays(folder, name, "input") else refs
        inputs = arrays(source, name, "input")
        if not inputs:  # no stored numbers: onnxruntime alone is the reference
            yield name, path, random_feeds(model), None, False
            continue
        feeds = {i.name: a for i, a in zip(onnx_inputs(model), inputs)}
        # A channels-first image input read by a Conv directly (torch's) is also tried NHWC.
        first = onnx_inputs(model)[0].name
        nhwc = inputs[0].ndim == 4 and any(n.op_type == "Conv" and first in n.input for n in model.graph.node)
        yield name, path, feeds, arrays(source, name, "output"), nhwc


def random_feeds(model):
    """Uniform [0, 1) float inputs (seed 0), unknown lengths set to 2."""
    random = np.random.default_rng(0)
    feeds = {}
    for value in onnx_inputs(model):
        shape = [d.dim_value if d.dim_value > 0 else 2 for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = random.random(shape, dtype=np.float32)
    return feeds


def file_cases(paths):
    for path in paths:
        model = onnx.load(path, load_external_data=False)
        yield os.path.basename(path)[:-5], path, random_feeds(model), None, False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    parser.add_argument("--torch", nargs="?", const=os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data",
                                                               "pytorch-converted"),
                        help="a pytorch-converted folder; without a value, the one in the onnx wheel")
    parser.add_argument("--tf2onnx", action="append", default=[],
                        help="a folder of NAME.onnx; references beside them or in --refs (repeatable)")
    parser.add_argument("--refs", default=os.path.join(ROOT, "fixtures", "keras2"))
    parser.add_argument("--files", nargs="*", default=[])
    parser.add_argument("--h5", action="store_true", help="also write and check .h5")
    parser.add_argument("--runtime-ops", action="store_true", help="also the keras.ops models of runtime_op_cases.py")
    args = parser.parse_args()
    cases = []
    if args.torch:
        cases += list(torch_cases(args.torch))
    for folder in args.tf2onnx:
        cases += list(tf2onnx_cases(folder, args.refs))
    cases += list(file_cases(args.files))
    passed = failed = 0
    with tempfile.TemporaryDirectory() as folder:
        if args.runtime_ops:
            from runtime_op_cases import keras_ops_models
            cases += list(file_cases(keras_ops_models(folder)))
        for name, source, feeds, stored, nhwc in cases:
            variants = [("keras", False)] + ([("h5", False)] if args.h5 else []) + ([("keras", True)] if nhwc else [])
            for suffix, channels_last in variants:
                ok, message = check(args.scion, name, source, feeds, stored, folder, suffix, channels_last)
                label = f"{name} -> .{suffix}{' --channels-last-input' if channels_last else ''}"
                print(f"{'ok  ' if ok else 'FAIL'} {label}: {message}", flush=True)
                passed += ok
                failed += not ok
            keras.backend.clear_session()
    print(f"onnx-keras: {passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
