"""Small ONNX models of the ops torch's exporters write for masks and index arithmetic, each run by
onnxruntime for the expected outputs (used by check_run.py --backend).

Every model has a dynamic batch (and some a dynamic length), so its Shape-derived operands are
computed at run time and reach the executor instead of being folded at import: comparisons and
logic, Where, Not, Mod (fmod 0 on integers, fmod 1 on floats), Range, ConstantOfShape, Trilu (k
constant and computed), Slice with computed bounds (negative, clamped, negative steps), ScatterND
(none/add/mul), GatherElements (negative indices) and Einsum (the equations exporters write).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = 18
INT64_MAX = 2**63 - 1


def _int64(name, values, dims=None):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)] if dims is None else dims, values)


def _float(name, values, dims):
    return helper.make_tensor(name, TensorProto.FLOAT, dims, values)


def _shape_nodes(value, axis, out):
    """`out` = the length of `value` along `axis`, as an int64 scalar computed at run time."""
    return [helper.make_node("Shape", [value], [f"{out}_shape"]),
            helper.make_node("Gather", [f"{out}_shape", f"{out}_axis"], [out], axis=0)], [
        helper.make_tensor(f"{out}_axis", TensorProto.INT64, [], [axis])]


def _models():
    length_nodes, length_init = _shape_nodes("x", 1, "len")
    cols_nodes, cols_init = _shape_nodes("x", 2, "cols")
    models = {
        # Masks as torch writes them: comparisons of floors (exact ties), logic, Not, Where.
        "logic_where": ([("x", ["batch", 3, 4]), ("z", [1, 4])], [
            helper.make_node("Mul", ["x", "two"], ["x2"]), helper.make_node("Floor", ["x2"], ["fx"]),
            helper.make_node("Mul", ["z", "two"], ["z2"]), helper.make_node("Floor", ["z2"], ["fz"]),
            helper.make_node("Equal", ["fx", "fz"], ["eq"]), helper.make_node("Less", ["x", "z"], ["lt"]),
            helper.make_node("Greater", ["x", "zero"], ["gt"]), helper.make_node("LessOrEqual", ["fx", "fz"], ["le"]),
            helper.make_node("GreaterOrEqual", ["fx", "fz"], ["ge"]),
            helper.make_node("And", ["lt", "gt"], ["and"]), helper.make_node("Or", ["eq", "gt"], ["or"]),
            helper.make_node("Xor", ["le", "ge"], ["xor"]), helper.make_node("Not", ["or"], ["not"]),
            helper.make_node("Where", ["and", "x", "z"], ["y0"]),
            helper.make_node("Cast", ["xor"], ["y1"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["not"], ["y2"], to=TensorProto.FLOAT),
            helper.make_node("Where", ["eq", "minus", "x"], ["y3"]),
        ], [_float("two", [2.0], []), _float("zero", [0.0], []), _float("minus", [-1.0], [])],
            [("y0", ["batch", 3, 4]), ("y1", ["batch", 3, 4]), ("y2", ["batch", 3, 4]), ("y3", ["batch", 3, 4])]),
        # Mod: fmod=0 on integers takes the divisor's sign, fmod=1 on floats the dividend's.
        "mod": ([("x", ["batch", 6]), ("d", [6])], [
            helper.make_node("Mul", ["x", "ten"], ["x10"]), helper.make_node("Floor", ["x10"], ["fx"]),
            helper.make_node("Cast", ["fx"], ["ix"], to=TensorProto.INT64),
            helper.make_node("Cast", ["d"], ["id"], to=TensorProto.INT64),
            helper.make_node("Mod", ["ix", "id"], ["im"]),
            helper.make_node("Cast", ["im"], ["y0"], to=TensorProto.FLOAT),
            helper.make_node("Mod", ["x10", "d"], ["y1"], fmod=1),
        ], [_float("ten", [10.0], [])], [("y0", ["batch", 6]), ("y1", ["batch", 6])]),
        # Range over a length known at run time (ints), and backwards with a fractional step (floats).
        "range": ([("x", ["batch", "len"])], length_nodes + [
            helper.make_node("Range", ["zero", "len", "one"], ["r"]),
            helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["x", "rf"], ["y0"]),
            helper.make_node("Cast", ["len"], ["lenf"], to=TensorProto.FLOAT),
            helper.make_node("Range", ["lenf", "zerof", "step"], ["y1"]),
        ], length_init + [helper.make_tensor("zero", TensorProto.INT64, [], [0]), helper.make_tensor("one", TensorProto.INT64, [], [1]),
                          _float("zerof", [0.0], []), _float("step", [-0.75], [])], [("y0", ["batch", "len"]), ("y1", ["n"])]),
        # ConstantOfShape of a computed shape, float and int64 fills, and the default zero.
        "constant_of_shape": ([("x", ["batch", 3])], [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("ConstantOfShape", ["s"], ["c"], value=_float("value", [2.5], [1])),
            helper.make_node("Mul", ["x", "c"], ["y0"]),
            helper.make_node("ConstantOfShape", ["s"], ["ci"], value=_int64("value", [-3], [1])),
            helper.make_node("Cast", ["ci"], ["y1"], to=TensorProto.FLOAT),
            helper.make_node("ConstantOfShape", ["s"], ["y2"]),
        ], [], [("y0", ["batch", 3]), ("y1", ["batch", 3]), ("y2", ["batch", 3])]),
        # Trilu: upper with a constant k, lower with the default, upper with k computed from a length.
        "trilu": ([("x", ["batch", "rows", 5])], length_nodes + [
            helper.make_node("Trilu", ["x", "k1"], ["y0"], upper=1),
            helper.make_node("Trilu", ["x"], ["y1"], upper=0),
            helper.make_node("Sub", ["len", "three"], ["k"]),
            helper.make_node("Trilu", ["x", "k"], ["y2"], upper=1),
            helper.make_node("Neg", ["k"], ["negk"]),
            helper.make_node("Trilu", ["x", "negk"], ["y3"], upper=0),
        ], length_init + [helper.make_tensor("k1", TensorProto.INT64, [], [1]), helper.make_tensor("three", TensorProto.INT64, [], [3])],
            [(f"y{i}", ["batch", "rows", 5]) for i in range(4)]),
        # Slices with computed bounds: torch's channel split x[:, :c // 2], a reversed walk with a
        # negative step from a computed start to a clamped end, and a start past the end (empty).
        "computed_slice": ([("x", ["batch", "len", "cols"])], length_nodes + cols_nodes + [
            helper.make_node("Div", ["len", "two"], ["half"]),
            helper.make_node("Unsqueeze", ["half", "axis0"], ["half1"]),
            helper.make_node("Slice", ["x", "zeros1", "half1", "ones1"], ["y0"]),
            helper.make_node("Sub", ["cols", "two"], ["start"]),
            helper.make_node("Unsqueeze", ["start", "axis0"], ["start1"]),
            helper.make_node("Slice", ["x", "start1", "far_negative", "last", "minus_two"], ["y1"]),
            helper.make_node("Concat", ["half1", "start1"], ["starts2"], axis=0),
            helper.make_node("Slice", ["x", "starts2", "big2", "axes12"], ["y2"]),
        ], length_init + cols_init + [
            helper.make_tensor("two", TensorProto.INT64, [], [2]), _int64("axis0", [0]), _int64("zeros1", [0]), _int64("ones1", [1]),
            _int64("far_negative", [-1000]), _int64("last", [-1]), _int64("minus_two", [-2]),
            _int64("big2", [INT64_MAX, INT64_MAX]), _int64("axes12", [1, -1]),
        ], [("y0", ["batch", "a", "cols"]), ("y1", ["batch", "len", "b"]), ("y2", ["batch", "c", "d"])]),
        # Pads computed from a length (torch pads a window to a multiple of its size): constant
        # with a fill value, reflect and edge over every axis, and negative pads (a crop) on named axes.
        "computed_pad": ([("x", ["batch", "len", 5])], length_nodes + [
            helper.make_node("Mod", ["len", "three"], ["rest"]),
            helper.make_node("Sub", ["three", "rest"], ["grow"]),
            helper.make_node("Unsqueeze", ["grow", "axis0"], ["grow1"]),
            helper.make_node("Concat", ["zeros1", "grow1", "zeros1", "zeros1", "grow1", "zeros1"], ["pads"], axis=0),
            helper.make_node("Pad", ["x", "pads", "fill"], ["y0"], mode="constant"),
            helper.make_node("Pad", ["x", "pads"], ["y1"], mode="reflect"),
            helper.make_node("Pad", ["x", "pads"], ["y2"], mode="edge"),
            helper.make_node("Neg", ["grow1"], ["shrink1"]),
            helper.make_node("Concat", ["grow1", "shrink1", "shrink1", "grow1"], ["pads2"], axis=0),
            helper.make_node("Pad", ["x", "pads2", "", "axes12"], ["y3"], mode="constant"),
        ], length_init + [helper.make_tensor("three", TensorProto.INT64, [], [3]), _int64("axis0", [0]), _int64("zeros1", [0]),
                          _float("fill", [1.5], []), _int64("axes12", [1, -1])],
            [(f"y{i}", ["batch", "a", "b"]) for i in range(4)]),
        # ScatterND: slices replaced (torch's in-place mask assignment), added and multiplied,
        # repeated indices where the reduction makes them meaningful.
        "scatter_nd": ([("x", ["batch", 4, 5]), ("u", [3, 5])], [
            helper.make_node("ScatterND", ["x", "unique", "u"], ["y0"]),
            helper.make_node("ScatterND", ["x", "repeated", "u"], ["y1"], reduction="add"),
            helper.make_node("ScatterND", ["x", "repeated", "u"], ["y2"], reduction="mul"),
            helper.make_node("Slice", ["u", "zeros1", "one1", "zeros1"], ["u1"]),
            helper.make_node("ScatterND", ["x", "one_row", "u1"], ["y3"]),
        ], [_int64("unique", [0, 1, 1, 3, -1, 0], [3, 2]), _int64("repeated", [1, 2, 0, 0, 1, 2], [3, 2]),
            _int64("one_row", [1, 2], [1, 2]), _int64("zeros1", [0]), _int64("one1", [1])],
            [(f"y{i}", ["batch", 4, 5]) for i in range(4)]),
        # GatherElements along the middle and the last axis, negative indices included.
        "gather_elements": ([("x", ["batch", 4, 5])], [
            helper.make_node("GatherElements", ["x", "rows"], ["y0"], axis=1),
            helper.make_node("GatherElements", ["x", "cols"], ["y1"], axis=-1),
        ], [_int64("rows", [3, 0, -1, 2, 1, 1, -4, 0, 2, 3], [1, 2, 5]), _int64("cols", [4, -5, 2, 0, 1, 3], [1, 3, 2])],
            [("y0", [1, 2, 5]), ("y1", [1, 3, 2])]),
        # Einsum as exporters write it: attention scores, a batched matmul, a transpose, a sum.
        "einsum": ([("q", ["batch", 2, 3, 4]), ("k", ["batch", 2, 5, 4])], [
            helper.make_node("Einsum", ["q", "k"], ["y0"], equation="bhid,bhjd->bhij"),
            helper.make_node("Einsum", ["y0", "k"], ["y1"], equation="bhij,bhjd->bhid"),
            helper.make_node("Einsum", ["q"], ["y2"], equation="bhid->bdhi"),
            helper.make_node("Einsum", ["q", "k"], ["y3"], equation="bhid, bhjd -> bh"),
        ], [], [("y0", ["batch", 2, 3, 5]), ("y1", ["batch", 2, 3, 4]), ("y2", ["batch", 4, 2, 3]), ("y3", ["batch", 2])]),
    }
    return models


def runtime_op_cases(folder):
    """(name, model path, inputs, expected outputs, tolerance, layer) per model, expected from onnxruntime."""
    import onnxruntime
    rng = np.random.default_rng(5)
    lengths = {"batch": 2, "len": 4, "rows": 4, "cols": 6}
    for name, (inputs, nodes, initializers, outputs) in _models().items():
        graph = helper.make_graph(
            nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n, dims in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n, dims in outputs], initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        path = os.path.join(folder, f"{name}.onnx")
        onnx.save(model, path)
        arrays_in = [rng.standard_normal([lengths.get(d, d) for d in dims]).astype(np.float32) for _, dims in inputs]
        if name == "mod":
            # Divisors of both signs, none near zero.
            arrays_in[1] = np.array([3, -3, 2.5, -2.5, 7, -4], dtype=np.float32)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        expected = session.run(None, {n: a for (n, _), a in zip(inputs, arrays_in)})
        yield f"runtime-ops/{name}", path, arrays_in, expected, 1e-5, None


def round_trip_cases(scion, folder, cases=None, opset=OPSET):
    """The same models written back by `scion convert --opset OPSET` and run by onnxruntime: each op's
    ONNX writer gives the node onnxruntime computes the same numbers with. `cases` are
    runtime_op_cases' tuples (by default its own models). Yields (name, status, message) with status
    "ok" or "fail"."""
    import subprocess

    import onnxruntime
    for name, model, inputs, expected, tolerance, _ in cases if cases is not None else runtime_op_cases(folder):
        written = os.path.join(folder, f"{os.path.basename(name)}.written.onnx")
        result = subprocess.run([scion, "convert", model, written, "--force", "--opset", str(opset)], capture_output=True, text=True)
        if result.returncode != 0:
            yield f"{name} (written back)", "fail", (result.stderr.strip().splitlines() or ["failed"])[-1][-200:]
            continue
        session = onnxruntime.InferenceSession(written, providers=["CPUExecutionProvider"])
        got = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), inputs)})
        worst = max(float(np.max(np.abs(a - b.astype(np.float64)))) / (float(np.max(np.abs(b))) or 1.0) if b.size else 0.0
                    for a, b in zip(got, expected))
        ok = len(got) == len(expected) and worst <= tolerance
        yield f"{name} (written back)", "ok" if ok else "fail", f"relative {worst:.2g} (tolerance {tolerance:g})"


def keras_ops_models(folder):
    """ONNX models of the runtime ops keras.ops has (comparisons and logic, Where, Mod with fmod 0,
    Trilu with a constant k, Einsum, GatherElements as TakeAlongAxis, ReduceL1/L2/SumSquare/LogSumExp),
    for check_onnx_keras.py:
    Scion writes them as keras.ops operation nodes that Keras 3 loads and runs. Scalar factors
    become Rescaling layers; no op reads a constant tensor (Keras layers take none). Returns paths."""
    def floor_of(value, factor, name, offset=None):
        nodes = [helper.make_node("Mul", [value, f"{name}_factor"], [f"{name}_scaled"])]
        inits = [_float(f"{name}_factor", [factor], [])]
        last = f"{name}_scaled"
        if offset is not None:
            nodes.append(helper.make_node("Add", [last, f"{name}_offset"], [f"{name}_shifted"]))
            inits.append(_float(f"{name}_offset", [offset], []))
            last = f"{name}_shifted"
        nodes.append(helper.make_node("Floor", [last], [name]))
        return nodes, inits

    fx, fx_init = floor_of("x", 2.0, "fx")
    fz, fz_init = floor_of("z", 2.0, "fz")
    tens, tens_init = floor_of("x", 10.0, "tens")
    divisor, divisor_init = floor_of("z", 4.0, "divisor", offset=1.0)
    rows, rows_init = floor_of("z", 3.0, "rows")
    nodes = fx + fz + tens + divisor + rows + [
        helper.make_node("Greater", ["x", "z"], ["gt"]),
        helper.make_node("Where", ["gt", "x", "z"], ["y0"]),
        helper.make_node("Less", ["x", "z"], ["lt"]), helper.make_node("Equal", ["fx", "fz"], ["eq"]),
        helper.make_node("Or", ["lt", "eq"], ["or"]), helper.make_node("Cast", ["or"], ["y1"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["tens"], ["itens"], to=TensorProto.INT64),
        helper.make_node("Cast", ["divisor"], ["idivisor"], to=TensorProto.INT64),
        helper.make_node("Mod", ["itens", "idivisor"], ["mod"]), helper.make_node("Cast", ["mod"], ["y2"], to=TensorProto.FLOAT),
        helper.make_node("Trilu", ["x", "k"], ["y3"], upper=1),
        helper.make_node("Einsum", ["x", "z"], ["y4"], equation="bij,bkj->bik"),
        helper.make_node("Cast", ["rows"], ["irows"], to=TensorProto.INT64),
        helper.make_node("GatherElements", ["x", "irows"], ["y5"], axis=1),
        helper.make_node("GreaterOrEqual", ["x", "z"], ["ge"]), helper.make_node("Not", ["ge"], ["not"]),
        helper.make_node("LessOrEqual", ["fx", "fz"], ["le"]), helper.make_node("And", ["not", "le"], ["and"]),
        helper.make_node("Xor", ["and", "gt"], ["xor"]), helper.make_node("Cast", ["xor"], ["y6"], to=TensorProto.FLOAT),
        helper.make_node("Trilu", ["z"], ["y7"], upper=0),
        # The reductions keras.ops spells out (norms over several axes are not keras.ops.norm's).
        helper.make_node("ReduceL2", ["x", "last"], ["y8"], keepdims=0),
        helper.make_node("ReduceL1", ["z", "inner"], ["y9"], keepdims=1),
        helper.make_node("ReduceSumSquare", ["x", "middle"], ["y10"], keepdims=0),
        helper.make_node("ReduceLogSumExp", ["z", "inner"], ["y11"], keepdims=0),
        # Upper-case indices, as torch writes MaxViT's: Keras's einsum reads lower case only.
        helper.make_node("Einsum", ["x", "z"], ["y12"], equation="bIj,bKj->bKI"),
    ]
    shapes = {"y4": ["batch", 3, 3], "y8": ["batch", 3], "y9": ["batch", 1, 1], "y10": ["batch", 4], "y11": ["batch"], "y12": ["batch", 3, 3]}
    graph = helper.make_graph(
        nodes, "keras_ops", [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3, 4]) for n in ("x", "z")],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, shapes.get(f"y{i}", ["batch", 3, 4])) for i in range(13)],
        fx_init + fz_init + tens_init + divisor_init + rows_init + [helper.make_tensor("k", TensorProto.INT64, [], [1]),
                                                                    _int64("last", [-1]), _int64("inner", [1, 2]), _int64("middle", [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(folder, "runtime_keras_ops.onnx")
    onnx.save(model, path)
    return [path, constant_operands_model(folder)] + broadcast_merges_models(folder)


def constant_operands_model(folder):
    """Weights reshaped, transposed, sliced or expanded before an Add reads them, as torch's dynamo
    exporter writes MaxViT's relative position bias (`Unsqueeze(Transpose(Reshape(table)))` added to
    the scores): Scion folds each chain into one weight of the Add's shape. And comparisons with a
    constant scalar or array (keras.ops calls with the number or a numpy array). Returns the path."""
    rng = np.random.default_rng(7)
    table = rng.standard_normal(36 * 4).astype(np.float32)
    wide = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    row = rng.standard_normal((1, 1, 6, 6)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["table", "table_shape"], ["table_hwc"]),
        helper.make_node("Transpose", ["table_hwc"], ["table_chw"], perm=[2, 0, 1]),
        helper.make_node("Unsqueeze", ["table_chw", "first"], ["bias"]),
        helper.make_node("Add", ["x", "bias"], ["y0"]),
        helper.make_node("Slice", ["wide", "starts", "ends", "channels"], ["sliced"]),
        helper.make_node("Add", ["x", "sliced"], ["y1"]),
        helper.make_node("Expand", ["row", "full"], ["expanded"]),
        helper.make_node("Add", ["expanded", "x"], ["y2"]),
        # Comparisons with a constant (a padding mask's `x != 0`, a threshold), either side.
        helper.make_node("Greater", ["x", "half"], ["above"]),
        helper.make_node("Cast", ["above"], ["y3"], to=TensorProto.FLOAT),
        helper.make_node("Less", ["threshold", "x"], ["below"]),
        helper.make_node("Not", ["below"], ["not_below"]),
        helper.make_node("Cast", ["not_below"], ["y4"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes, "constant_operands", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 6, 6])],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["batch", 4, 6, 6]) for i in range(5)],
        [_float("table", table.tolist(), [144]), _int64("table_shape", [6, 6, 4]), _int64("first", [0]),
         helper.make_tensor("wide", TensorProto.FLOAT, [1, 8, 6, 6], wide.ravel().tolist()), _int64("starts", [2]),
         _int64("ends", [6]), _int64("channels", [1]),
         helper.make_tensor("row", TensorProto.FLOAT, [1, 1, 6, 6], row.ravel().tolist()), _int64("full", [1, 4, 6, 6]),
         _float("half", [0.5], []), helper.make_tensor("threshold", TensorProto.FLOAT, [1, 1, 6, 6], (row * 0.5).ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(folder, "runtime_constant_operands.onnx")
    onnx.save(model, path)
    return path


def broadcast_merges_models(folder):
    """torch's dynamo export of `nn.RNN` adds a `[1, B, H]` state to a `[B, H]` input projection: Add,
    Sub, Mul, Max, Min and Mean whose operands broadcast across the batch axis, which Keras's merge
    layers refuse ("Cannot merge tensors with different batch sizes") or line up differently; Scion
    writes them as keras.ops calls. A same-shape Add stays a keras.layers.Add. One model of a symbolic
    batch, one of dynamo's static batch of 2. Returns the paths."""
    rng = np.random.default_rng(11)
    kernel = rng.standard_normal((6, 6)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    paths = []
    for batch, name in (("batch", "runtime_broadcast_merges"), (2, "runtime_broadcast_merges_batch2")):
        nodes = [
            helper.make_node("Tanh", ["x"], ["state_source"]),
            helper.make_node("Unsqueeze", ["state_source", "first"], ["state"]),        # [1, B, 6]
            helper.make_node("MatMul", ["state", "kernel"], ["projected"]),
            helper.make_node("Add", ["projected", "bias"], ["linear"]),                 # dynamo's linear_k
            helper.make_node("Add", ["linear", "x"], ["sum"]),                          # [1, B, 6] + [B, 6]
            helper.make_node("Sub", ["x", "state"], ["difference"]),
            helper.make_node("Mul", ["state", "x"], ["product"]),
            helper.make_node("Max", ["x", "state"], ["largest"]),
            helper.make_node("Min", ["state", "x"], ["smallest"]),
            helper.make_node("Mean", ["state", "x", "x"], ["mean"]),
            helper.make_node("Add", ["x", "state_source"], ["y6"]),                     # same shape: keras.layers.Add
        ]
        broadcast = ["sum", "difference", "product", "largest", "smallest", "mean"]
        nodes += [helper.make_node("Squeeze", [value, "first"], [f"y{i}"]) for i, value in enumerate(broadcast)]
        graph = helper.make_graph(
            nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 6])],
            [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [batch, 6]) for i in range(7)],
            [_int64("first", [0]), _float("kernel", kernel.ravel().tolist(), [6, 6]), _float("bias", bias.tolist(), [6])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        path = os.path.join(folder, f"{name}.onnx")
        onnx.save(model, path)
        paths.append(path)
    return paths
