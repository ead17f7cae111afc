"""`scion run` against the numbers the exporters and onnxruntime produced.

  --backend   the onnx wheel's pytorch-converted/ and pytorch-operator/ cases: each model run on its
              test_data_set_0 inputs must give the stored outputs within rtol 1e-3 (and atol 1e-5);
              cases with ops outside the executor's set are listed as skipped with the op. Also three
              small models of exporters' shape arithmetic under a dynamic batch (Shape, Expand, Tile,
              Reshape to a computed shape), and of the ops exporters write for masks and index
              arithmetic (runtime_op_cases.py: comparisons, Where, Mod, Range, ConstantOfShape,
              Trilu, computed Slice, ScatterND, GatherElements, Einsum), against onnxruntime's outputs.
  --tf2onnx DIR --refs DIR   ONNX files with Keras's reference arrays (full-size applications).
  --keras DIR                Keras files with NAME.input.npy / NAME.output.npy (full-size applications).

Usage: /opt/scion-oracle-venv/bin/python Tests/Interop/check_run.py --backend [--scion PATH]
Prints one line per case and "run: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

from fixture_arrays import arrays
from runtime_op_cases import round_trip_cases, runtime_op_cases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def run(scion, model, inputs, folder, layer=None):
    paths = []
    for index, array in enumerate(inputs):
        path = os.path.join(folder, f"input_{index}.npy")
        np.save(path, np.ascontiguousarray(array))
        paths.append(path)
    out = os.path.join(folder, "out.npz")
    command = [scion, "run", model, "--output", out, "--force"] + [part for p in paths for part in ("--input", p)]
    if layer:
        command += ["--layer", layer]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return None, (result.stderr.strip().splitlines() or ["failed"])[-1]
    with np.load(out) as archive:  # outputs in order, then the tapped layer
        outputs = [archive[name] for name in archive.files]
    os.remove(out)
    return outputs, None


def backend_cases():
    load = lambda p: numpy_helper.to_array(onnx.TensorProto.FromString(open(p, "rb").read()))  # noqa: E731
    for suite in ("pytorch-converted", "pytorch-operator"):
        for directory in sorted(glob.glob(os.path.join(BACKEND, suite, "test_*"))):
            data = os.path.join(directory, "test_data_set_0")
            inputs = [load(p) for p in sorted(glob.glob(os.path.join(data, "input_*.pb")))]
            outputs = [load(p) for p in sorted(glob.glob(os.path.join(data, "output_*.pb")))]
            yield f"{suite}/{os.path.basename(directory)}", os.path.join(directory, "model.onnx"), inputs, outputs, 1e-3, None


def shape_arithmetic_cases(folder):
    """Exporters' shape arithmetic with lengths known only at run time (a dynamic batch): Shape,
    Expand, Tile and Reshape whose operands are computed, built with onnx.helper at opset 17 and run
    by onnxruntime for the expected outputs."""
    import onnxruntime
    from onnx import TensorProto, helper
    rng = np.random.default_rng(3)
    int64 = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
    models = {
        # torch's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
        "reshape_to_batch_by_rest": ([("x", [None, 3, 4, 4])], [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
            helper.make_node("Concat", ["n1", "rest"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["y"]),
        ], [helper.make_tensor("zero", TensorProto.INT64, [], [0]), int64("axes", [0]), int64("rest", [-1])], ["batch", 48]),
        # A mask broadcast to another input's shape.
        "expand_to_shape_of": ([("x", [None, 3, 1]), ("z", [None, 3, 5])], [
            helper.make_node("Shape", ["z"], ["s"]),
            helper.make_node("Expand", ["x", "s"], ["y"]),
        ], [], ["batch", 3, 5]),
        # Repeats read off another input's shape; Shape with start and end (opset 15).
        "tile_by_shape_of": ([("x", [None, 2, 3]), ("r", [1, 2, 3])], [
            helper.make_node("Shape", ["r"], ["repeats"]),
            helper.make_node("Tile", ["x", "repeats"], ["t"]),
            helper.make_node("Shape", ["t"], ["middle"], start=1, end=-1),
            helper.make_node("Cast", ["middle"], ["m"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["t"], ["y0"], keepdims=0),
            helper.make_node("ReduceSum", ["m"], ["m0"], keepdims=1),
            helper.make_node("Mul", ["y0", "m0"], ["y"]),
        ], [], [1]),
    }
    for name, (inputs, nodes, initializers, output) in models.items():
        graph = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch" if d is None else d for d in dims]) for n, dims in inputs],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, output)], initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        path = os.path.join(folder, f"{name}.onnx")
        onnx.save(model, path)
        arrays_in = [rng.standard_normal([2 if d is None else d for d in dims]).astype(np.float32) for _, dims in inputs]
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        expected = session.run(None, {n: a for (n, _), a in zip(inputs, arrays_in)})
        yield f"shape-arithmetic/{name}", path, arrays_in, expected, 1e-5, None


def reference_cases(folder, refs, pattern):
    for path in sorted(glob.glob(os.path.join(folder, pattern))):
        name = os.path.basename(path).rsplit(".", 1)[0]
        inputs, outputs = arrays(refs, name, "input"), arrays(refs, name, "output")
        # Random-weight softmax outputs are nearly flat: the features feeding the classifier too.
        layer, features = None, os.path.join(refs, f"{name}.features.npy")
        reference = os.path.join(refs, f"{name}.json")
        if os.path.exists(features) and os.path.exists(reference):
            layer = json.load(open(reference)).get("featuresLayer")
            if layer and path.endswith(".onnx"):
                # tf2onnx names nodes `model/layer/Op`: the last node of that layer.
                nodes = [n.name for n in onnx.load(path, load_external_data=False).graph.node if f"/{layer}/" in n.name]
                layer = nodes[-1] if nodes else None
            if layer:
                outputs = outputs + [np.load(features)]
        if inputs:
            yield name, path, inputs, outputs, 1e-4, layer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    parser.add_argument("--backend", action="store_true")
    parser.add_argument("--tf2onnx")
    parser.add_argument("--keras")
    parser.add_argument("--refs")
    args = parser.parse_args()
    cases = list(backend_cases()) if args.backend else []
    if args.tf2onnx:
        cases += list(reference_cases(args.tf2onnx, args.refs or args.tf2onnx, "*.onnx"))
    if args.keras:
        cases += list(reference_cases(args.keras, args.keras, "*.h5")) + list(reference_cases(args.keras, args.keras, "*.keras"))
    counts = {"ok": 0, "fail": 0, "skip": 0}
    with tempfile.TemporaryDirectory() as folder:
        if args.backend:
            cases += list(shape_arithmetic_cases(folder)) + list(runtime_op_cases(folder))
        for name, model, inputs, expected, tolerance, layer in cases:
            if any(a.dtype not in (np.float32, np.float64, np.int32, np.int64) for a in inputs):
                status, message = "skip", f"input types {[str(a.dtype) for a in inputs]}"
            elif any(a.dtype == np.float64 and not np.all((np.abs(a) < 3e38) & ((a == 0) | (np.abs(a) > 1e-30))) for a in inputs):
                # Some old pytorch-operator cases hold uninitialised doubles (1e-316, 1e198...).
                status, message = "skip", "float64 test data outside float32's range (the executor runs float32)"
            else:
                got, error = run(args.scion, model, inputs, folder, layer)
                if got is None:
                    status = "skip" if "not supported by the executor" in error or "float32" in error else "fail"
                    message = error[-200:]
                else:
                    worst, status, message = 0.0, "ok", ""
                    for a, b in zip(got, expected):
                        b = b.astype(np.float64)
                        if a.shape != b.shape:
                            status, message = "fail", f"shape {a.shape} != {b.shape}"
                            break
                        scale = float(np.max(np.abs(b))) if b.size else 0.0
                        worst = max(worst, float(np.max(np.abs(a - b))) / (scale or 1.0) if b.size else 0.0)
                    if status == "ok":
                        ok = len(got) == len(expected) and worst <= tolerance
                        status, message = ("ok" if ok else "fail"), f"relative {worst:.2g} (tolerance {tolerance:g})" + (
                            f", features at {layer} too" if layer else "")
            counts[status] += 1
            print(f"{ {'ok': 'ok  ', 'fail': 'FAIL', 'skip': 'skip'}[status] } {name}: {message}", flush=True)
        if args.backend:
            for name, status, message in round_trip_cases(args.scion, folder):
                counts[status] += 1
                print(f"{ {'ok': 'ok  ', 'fail': 'FAIL'}[status] } {name}: {message}", flush=True)
    print(f"run: {counts['ok']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
