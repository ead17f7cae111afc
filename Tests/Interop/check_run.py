"""`scion run` against the numbers the exporters and onnxruntime produced.

  --backend   the onnx wheel's pytorch-converted/ and pytorch-operator/ cases: each model run on its
              test_data_set_0 inputs must give the stored outputs within rtol 1e-3 (and atol 1e-5);
              cases with ops outside the executor's set are listed as skipped with the op. Also three
              small models of exporters' shape arithmetic under a dynamic batch (Shape, Expand, Tile,
              Reshape to a computed shape), and of the ops exporters write for masks and index
              arithmetic (runtime_op_cases.py: comparisons, Where, Mod, Range, ConstantOfShape,
              Trilu, Slice and Pad with computed bounds, ScatterND, GatherElements, Einsum) and of
              opset 23's transformer ops (transformer_op_cases.py: Attention, RMSNormalization,
              RotaryEmbedding, DepthToSpace/SpaceToDepth, ArgMax/ArgMin, CumSum, the trigonometric functions), against
              onnxruntime's outputs; each also written back by `scion convert` and run by onnxruntime.
  --node-cases DIR  the onnx wheel's backend node cases (scripts/make_onnx_node_cases.py writes them:
              the wheel ships their generators, not their data): every case whose operators all say
              `yes` in docs/onnx-coverage.md's run column is run with `scion run` and must give its
              expected outputs (numpy's allclose, rtol 1e-3, atol 1e-5, as ONNXCoverageTests); one
              line per operator. Cases with several inputs run as constant_operands.onnx (every input
              but the first an initializer), as the page was made. float16, float64 and other data
              the float32 executor cannot take were left out when the cases were written.
  --tf2onnx DIR --refs DIR   ONNX files with Keras's reference arrays (full-size applications).
  --keras DIR                Keras files with NAME.input.npy / NAME.output.npy (full-size applications).

Usage: /opt/scion-oracle-venv/bin/python Tests/Interop/check_run.py --backend [--scion PATH]
Prints one line per case and "run: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import concurrent.futures
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper

from fixture_arrays import arrays
from runtime_op_cases import round_trip_cases, runtime_op_cases
from transformer_op_cases import transformer_op_cases, transformer_round_trip_cases

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


def claimed_runs(page):
    """Operators whose run column on the coverage page says `yes`."""
    claimed = set()
    for line in open(page, encoding="utf-8"):
        match = re.match(r"\| `([A-Za-z0-9]+)` \|", line)
        cells = [cell.strip() for cell in line.split("|")]
        # | operator | versions | read | write | run | train | to Keras | cases |
        if match and len(cells) >= 9 and cells[5] == "yes":
            claimed.add(match.group(1))
    return claimed


def check_node_case(scion, folder, entry, scratch):
    """(ok, message) for one node case run by `scion run`."""
    constant = os.path.join(folder, "constant_operands.onnx")
    model = constant if os.path.exists(constant) else os.path.join(folder, "model.onnx")
    inputs = sorted(glob.glob(os.path.join(folder, "input_*.npy")), key=lambda p: int(p.rsplit("_", 1)[1][:-4]))
    outputs = sorted(glob.glob(os.path.join(folder, "output_*.npy")), key=lambda p: int(p.rsplit("_", 1)[1][:-4]))
    if model == constant:
        inputs = inputs[:1]
    out = os.path.join(scratch, os.path.basename(folder) + ".npz")
    command = [scion, "run", model, "--output", out, "--force"] + [part for p in inputs for part in ("--input", p)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return False, (result.stderr.strip().splitlines() or ["failed"])[-1][-200:]
    with np.load(out) as archive:
        got = [archive[name] for name in archive.files]
    os.remove(out)
    if len(got) != len(outputs):
        return False, f"{len(got)} outputs, expected {len(outputs)}"
    rtol, atol = 1e-3, 1e-5
    for a, path in zip(got, outputs):
        b = np.load(path)
        # A few generators store a declared scalar output as one element of shape (1,) (nllloss's
        # expanded cases); the coverage page's allclose broadcasts it, so one element each is the same.
        if a.size == b.size == 1:
            a = a.reshape(b.shape)
        if a.shape != b.shape:
            return False, f"shape {a.shape} != {b.shape}"
        if not np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
            return False, f"max |a-b| {float(np.nanmax(np.abs(a.astype(np.float64) - b))):.3g}"
    return True, ""


def node_cases(scion, directory, page):
    """Runs the claimed node cases; returns (passed, failed, skipped) case counts."""
    with open(os.path.join(directory, "cases.json")) as f:
        entries = json.load(f)["cases"]
    claimed = claimed_runs(page)
    # Cases stamped with an opset Scion does not read (24 and later, when their ops changed there) reach no
    # run path on the coverage page either.
    chosen = {name: e for name, e in entries.items()
              if "skipped" not in e and e["ops"] and set(e["ops"]) <= claimed and e.get("opset", 23) <= 23}
    started = time.time()
    results = {}
    with tempfile.TemporaryDirectory() as scratch, concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {pool.submit(check_node_case, scion, os.path.join(directory, name), e, scratch): name for name, e in chosen.items()}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
    by_operator = {}
    for name, (ok, message) in results.items():
        for op in chosen[name]["ops"]:
            by_operator.setdefault(op, []).append((name, ok, message))
    for op in sorted(by_operator):
        cases = by_operator[op]
        failed = [(n, m) for n, ok, m in sorted(cases) if not ok]
        detail = "; ".join(f"{n}: {m}" for n, m in failed[:3])
        print(f"{'FAIL' if failed else 'ok  '} node/{op}: {len(cases) - len(failed)} of {len(cases)} cases" + (f" ({detail})" if failed else ""))
    unclaimed = sorted(claimed - set(by_operator))
    if unclaimed:
        print(f"note node cases: no case with only claimed operators holds {', '.join(unclaimed)}")
    passed = sum(1 for ok, _ in results.values() if ok)
    print(f"node cases: {passed} of {len(results)} passed for {len(by_operator)} operators the coverage page says run "
          f"({len(entries) - len(chosen)} cases hold other operators or data the executor does not take) in {time.time() - started:.0f} s")
    return passed, len(results) - passed, len(entries) - len(chosen)


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
    parser.add_argument("--node-cases", help="folder scripts/make_onnx_node_cases.py wrote")
    parser.add_argument("--coverage", default=os.path.join(ROOT, "docs", "onnx-coverage.md"),
                        help="the page whose run column says which operators Scion runs")
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
    if args.node_cases:
        passed, failed, _ = node_cases(args.scion, args.node_cases, args.coverage)
        counts["ok"] += passed
        counts["fail"] += failed
    with tempfile.TemporaryDirectory() as folder:
        if args.backend:
            cases += list(shape_arithmetic_cases(folder)) + list(runtime_op_cases(folder)) + list(transformer_op_cases(folder))
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
            for name, status, message in [*round_trip_cases(args.scion, folder), *transformer_round_trip_cases(args.scion, folder)]:
                counts[status] += 1
                print(f"{ {'ok': 'ok  ', 'fail': 'FAIL'}[status] } {name}: {message}", flush=True)
    print(f"run: {counts['ok']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
