#!/usr/bin/env python3
"""ONNX -> Scion IR -> ONNX round trips on the onnx wheel's backend test models, checked in onnxruntime.

For each case folder (model.onnx + test_data_set_0/input_*.pb, output_*.pb) the model is converted with
`scion convert IN OUT --opset N --force` (N: the source opset, at least 13, the oldest Scion writes),
the written file goes through onnx.checker (full_check) and onnxruntime, and its outputs are compared with
the case's expected outputs (rtol 1e-3, atol 1e-5). The light/ models carry no inputs: they get a fixed
pseudo-random input and the original model, run by onnxruntime, is the reference.

Cases are skipped, with the reason, when onnxruntime itself rejects the original model, when the model
uses ops outside the CNN op set Scion reads (sequences, control flow, training ops, string ops, ...),
when its opset is newer than 23, or when it has no test data.

Prints one line per case and "roundtrip: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
SUITES = ["pytorch-converted", "pytorch-operator", "light", "simple", "node"]

# Ops Scion maps to IR ops (others are kept opaque and written back unchanged, which the node suite
# would test only trivially).
CNN_OPS = {
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization",
    "LayerNormalization", "Relu", "LeakyRelu", "Elu", "Celu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Softplus", "Softsign", "Exp", "Mish", "Gelu", "Shrink", "Clip", "Softmax", "LogSoftmax", "PRelu", "LRN", "Gemm",
    "MatMul", "Gather", "Dropout", "Identity", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean",
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "Where", "Neg", "Abs", "Sqrt",
    "Reciprocal", "Log", "Erf", "Floor", "Ceil", "Round", "Sign", "Not", "Sin", "Cos", "Flatten", "Reshape",
    "Transpose", "Concat", "Squeeze", "Unsqueeze", "Cast", "Slice", "Split", "Pad", "Upsample", "Resize",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
    "ReduceSumSquare", "Constant", "Shape", "ConstantOfShape", "Range", "Expand", "Tile", "InstanceNormalization",
    "GroupNormalization",
    # Opset 23's transformer ops, the trigonometric functions, index search and cumulative sums.
    "Attention", "RMSNormalization", "RotaryEmbedding", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh",
    "Atanh", "ArgMax", "ArgMin", "CumSum", "DepthToSpace", "SpaceToDepth",
}


def load_tensors(pattern):
    return [onnx.numpy_helper.to_array(onnx.load_tensor(path)) for path in sorted(glob.glob(pattern),
            key=lambda p: int(os.path.basename(p).split("_")[1].split(".")[0]))]


def default_opset(model):
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 0


def cases(suites):
    for suite in suites:
        root = os.path.join(DATA, suite)
        if suite == "light":
            for path in sorted(glob.glob(os.path.join(root, "*.onnx"))):
                yield suite, os.path.basename(path)[:-5], path, None
            continue
        for folder in sorted(glob.glob(os.path.join(root, "*"))):
            model = os.path.join(folder, "model.onnx")
            if os.path.exists(model):
                yield suite, os.path.basename(folder), model, os.path.join(folder, "test_data_set_0")


def session(path):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def feeds_for(sess, inputs):
    return {info.name: value for info, value in zip(sess.get_inputs(), inputs)}


def light_inputs(model):
    initializers = {tensor.name for tensor in model.graph.initializer}
    rng = np.random.default_rng(0)
    inputs = []
    for info in model.graph.input:
        if info.name in initializers:
            continue
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in info.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            inputs.append(rng.standard_normal(shape).astype(dtype))
        else:
            inputs.append(rng.integers(0, 4, size=shape).astype(dtype))
    return inputs


def close(actual, expected):
    if expected.dtype == object or actual.shape != expected.shape:
        return False, f"shape {actual.shape} vs {expected.shape}"
    if expected.dtype == bool or not np.issubdtype(expected.dtype, np.floating):
        return bool(np.array_equal(actual, expected)), "values differ"
    ok = np.allclose(actual, expected, rtol=1e-3, atol=1e-5, equal_nan=True)
    return ok, f"max |a-b| = {np.max(np.abs(actual.astype(np.float64) - expected)) if actual.size else 0:.3g}"


def check(case, command, workdir, include_opaque=False):
    suite, name, path, data = case
    model = onnx.load(path)
    opset = default_opset(model)
    if opset > 23:
        return "skip", f"opset {opset} is newer than 23"
    ops = {node.op_type for node in model.graph.node if node.domain in ("", "ai.onnx")}
    foreign = sorted(ops - CNN_OPS) + sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign and not include_opaque:
        return "skip", "outside the CNN op set: " + ", ".join(foreign[:4])
    if data is not None:
        inputs = load_tensors(os.path.join(data, "input_*.pb"))
        expected = load_tensors(os.path.join(data, "output_*.pb"))
        if not expected:
            return "skip", "no test data"
    else:
        inputs = light_inputs(model)
    if data is None:
        # No expected outputs: onnxruntime on the original model is the reference. (With test data the
        # original need not run: onnxruntime lacks some opset-6 kernels, e.g. Add with `broadcast`,
        # which the written model expresses in opset-13 form.)
        try:
            original = session(path)
            expected = original.run(None, feeds_for(original, inputs))
        except Exception as error:  # noqa: BLE001 - onnxruntime raises many types
            return "skip", f"onnxruntime rejects the original: {str(error).splitlines()[0][:100]}"
    output = os.path.join(workdir, f"{suite}_{name}.onnx")
    result = subprocess.run(command + [path, output, str(max(opset, 13))], capture_output=True, text=True)
    if result.returncode != 0:
        return "fail", "convert: " + (result.stderr.strip().splitlines() or ["failed"])[-1][:200]
    try:
        onnx.checker.check_model(onnx.load(output), full_check=True)
    except Exception as error:  # noqa: BLE001
        return "fail", f"checker: {str(error).splitlines()[0][:200]}"
    try:
        written = session(output)
        actual = written.run(None, feeds_for(written, inputs))
    except Exception as error:  # noqa: BLE001
        return "fail", f"onnxruntime: {str(error).splitlines()[0][:200]}"
    if len(actual) != len(expected):
        return "fail", f"{len(actual)} outputs, expected {len(expected)}"
    for index, (a, b) in enumerate(zip(actual, expected)):
        ok, detail = close(np.asarray(a), np.asarray(b))
        if not ok:
            return "fail", f"output {index}: {detail}"
    return "pass", "converted, checker ok, numbers ok"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scion", help="the scion binary (runs `scion convert IN OUT --opset N --force`)")
    parser.add_argument("--tool", help="instead of --scion: a program run as `TOOL IN OUT OPSET`")
    parser.add_argument("--suites", nargs="*", default=SUITES)
    parser.add_argument("--files", nargs="*", default=[],
                        help="other .onnx files (Scion's own exports, say): onnxruntime on the original is the reference")
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    parser.add_argument("--include-opaque", action="store_true",
                        help="also run cases with ops outside the CNN set (Scion keeps them opaque)")
    parser.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    arguments = parser.parse_args()
    if arguments.tool:
        command = [arguments.tool]
    elif arguments.scion:
        wrapper = [sys.executable, "-c",
                   "import subprocess,sys; sys.exit(subprocess.run([sys.argv[1], 'convert', sys.argv[2], sys.argv[3],"
                   " '--opset', sys.argv[4], '--force']).returncode)", arguments.scion]
        command = wrapper
    else:
        parser.error("give --scion or --tool")
    counts = {"pass": 0, "fail": 0, "skip": 0}
    with tempfile.TemporaryDirectory() as workdir:
        extra = [("file", os.path.basename(path)[:-5], path, None) for path in arguments.files]
        for case in list(cases(arguments.suites if not arguments.files else [])) + extra:
            if arguments.filter not in case[1]:
                continue
            status, reason = check(case, command, workdir, arguments.include_opaque)
            counts[status] += 1
            if not arguments.quiet or status == "fail":
                print(f"{status:4}  {case[0]}/{case[1]}: {reason}", flush=True)
    print(f"roundtrip: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
