"""Writes the onnx wheel's backend node test cases into a folder, for the ONNX coverage checks.

The onnx 1.23.2 wheel ships no backend/test/data/node folder, but it ships the generators of those
cases (onnx.backend.test.case.node). This runs them once (about 6 s of CPU) and writes, per case:

    DIR/CASE/model.onnx                 the one-node model (some cases hold a few nodes)
    DIR/CASE/input_J.npy, output_J.npy  its first data set, in the model's input and output order
    DIR/CASE/constant_operands.onnx     with several inputs: every input but the first made an
                                        initializer holding input_J (see with_constant_operands)

and DIR/cases.json: {CASE: {"ops": [op types], "opset": N, "generatedOpset": M, "skipped": reason}}
("generatedOpset" when the case was restamped to opset 23 or 7, see lower_to_newest_read and
raise_to_oldest_read; "skipped" when
its data cannot be fed). Inputs
and outputs are written only for tensors whose element type Scion's executor reads (float32,
int32, int64 and bool); a case with other types is listed with "skipped" saying which, so reports can
name it. Scion's executor runs float32: integer and boolean values pass through it as floats.

Usage (oracle venv):  .build/oracle-venv/bin/python scripts/make_onnx_node_cases.py [--out DIR]
DIR defaults to .build/onnx-node-cases; nothing is written when DIR/cases.json exists for the same
onnx version (delete the folder to regenerate).
"""
import argparse
import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
from onnx import defs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, ".build", "onnx-node-cases")
READABLE = {np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.bool_)}


NEWEST_READ = 23  # the newest default-domain opset Scion reads
OLDEST_READ = 7  # the oldest this coverage speaks for (Scion reads 6 too)


def default_opset(model):
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


def signature(schema):
    """What a node of this version may hold: attributes with defaults, inputs, outputs (not types)."""
    return (sorted((name, str(a.default_value)) for name, a in schema.attributes.items()),
            [(i.name, i.option) for i in schema.inputs], [(o.name, o.option) for o in schema.outputs])


def raise_to_oldest_read(model, opset):
    """A few cases are stamped opset 1 (Not, ...): when every op there is the very version opset 7
    has, the case means the same at 7."""
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx"):
            continue
        try:
            if defs.get_schema(n.op_type, OLDEST_READ, "").since_version != defs.get_schema(n.op_type, opset, "").since_version:
                return opset
        except Exception:  # noqa: BLE001 - no schema at one of the two opsets
            return opset
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = OLDEST_READ
    return OLDEST_READ


def lower_to_newest_read(model):
    """The generators stamp many cases with the wheel's newest opset (up to 28). Such a case means
    the same at opset 23 when every node's op there has the same attributes, inputs and outputs
    (versions 24 to 28 of Reshape, Cast, Add... added element types only): restamp it so Scion, which
    reads up to 23, reads the op it tests. Cases whose ops changed meaning or form after 23 keep their
    opset (and Scion says it does not read it); element types opset 23 lacks fail in the reader."""
    opset = default_opset(model)
    if 0 < opset < OLDEST_READ:
        return raise_to_oldest_read(model, opset)
    if opset <= NEWEST_READ:
        return opset
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx"):
            continue
        try:
            same = signature(defs.get_schema(n.op_type, NEWEST_READ, "")) == signature(defs.get_schema(n.op_type, opset, ""))
        except Exception:  # noqa: BLE001 - an op newer than opset 23 has no schema there
            same = False
        if not same:
            return opset
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = NEWEST_READ
    return NEWEST_READ


def tensor_arrays(values, declared):
    """The case's values as numpy arrays, or a reason they cannot be fed to Scion."""
    arrays = []
    for value, info in zip(values, declared):
        if not info.type.HasField("tensor_type"):
            return None, f"{info.name} is not a tensor"
        if isinstance(value, onnx.TensorProto):
            value = onnx.numpy_helper.to_array(value)
        array = np.asarray(value)
        if array.dtype not in READABLE:
            return None, f"{info.name} is {array.dtype} (the executor reads float32, int32, int64, bool)"
        declared_shape = [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
        if info.type.tensor_type.HasField("shape") and None not in declared_shape and list(array.shape) != declared_shape \
                and int(np.prod(declared_shape)) == array.size:
            # A few cases pass [1] where the model declares a scalar (CumSum's axis, the windows' size).
            array = array.reshape(declared_shape)
        arrays.append(array)
    return arrays, None


def with_constant_operands(model, inputs):
    """The model with every input but the first turned into an initializer holding the case's value:
    the form exported models have (weights, shapes, axes and bounds are initializers), and the one
    Scion reads as weights and folds."""
    constant = model.__class__()
    constant.CopyFrom(model)
    graph = constant.graph
    kept = graph.input[:1]
    for info, array in zip(graph.input[1:], inputs[1:]):
        graph.initializer.append(onnx.numpy_helper.from_array(array, info.name))
    del graph.input[1:]
    assert list(graph.input) == list(kept)
    return constant


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    index_path = os.path.join(args.out, "cases.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            if json.load(f).get("onnxVersion") == onnx.__version__:
                print(f"{args.out}: up to date (onnx {onnx.__version__})")
                return 0
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators divide by zero on purpose (inf cases)
        cases = node.collect_testcases(None)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    index = {}
    for case in cases:
        model = case.model
        written = default_opset(model)
        entry = {"ops": sorted({n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")}),
                 "opset": lower_to_newest_read(model)}
        if entry["opset"] != written:
            entry["generatedOpset"] = written
        folder = os.path.join(args.out, case.name)
        os.makedirs(folder)
        with open(os.path.join(folder, "model.onnx"), "wb") as f:
            f.write(model.SerializeToString())
        inputs, outputs = case.data_sets[0] if case.data_sets else ([], [])
        fed, reason = tensor_arrays(inputs, model.graph.input)
        expected, reason_out = tensor_arrays(outputs, model.graph.output) if fed is not None else (None, None)
        if fed is None or expected is None:
            entry["skipped"] = reason or reason_out
        else:
            if len(fed) > 1:
                with open(os.path.join(folder, "constant_operands.onnx"), "wb") as f:
                    f.write(with_constant_operands(model, fed).SerializeToString())
            for kind, arrays in (("input", fed), ("output", expected)):
                for position, array in enumerate(arrays):
                    # Booleans as int64: numpy's .npy readers all know that one.
                    array = array.astype(np.int64) if array.dtype == np.bool_ else array
                    np.save(os.path.join(folder, f"{kind}_{position}.npy"), np.ascontiguousarray(array))
            entry["rtol"], entry["atol"] = case.rtol, case.atol
        index[case.name] = entry
    with open(index_path, "w") as f:
        json.dump({"onnxVersion": onnx.__version__, "cases": index}, f, indent=1, sort_keys=True)
        f.write("\n")
    skipped = sum(1 for e in index.values() if "skipped" in e)
    print(f"{args.out}: {len(index)} node cases from onnx {onnx.__version__} ({skipped} without readable data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
