"""Small opset-23 ONNX models of the transformer ops (Attention, RMSNormalization, RotaryEmbedding)
and of DepthToSpace/SpaceToDepth, ArgMax/ArgMin, CumSum and the trigonometric functions, each run by onnxruntime (1.32 runs
opset 23) for the expected outputs; used by check_run.py --backend, which also writes each back with
`scion convert --opset 23` and runs that in onnxruntime.

Attention is taken in the forms the node cases test one at a time, together: 4-D grouped-query heads
with a key/value cache, causal (bottom-right), a float mask, softcap,
and all four outputs (present key and value, the softcapped scores); 3-D with q/kv head counts, a bool
mask computed by a comparison and an explicit scale.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper
from runtime_op_cases import round_trip_cases

OPSET = 23


def _float(name, values, dims):
    return helper.make_tensor(name, TensorProto.FLOAT, dims, values)


def _models():
    angles = np.arange(12, dtype=np.float32) * 0.37
    return {
        "attention_cache": ([("q", ["batch", 4, 3, 4]), ("k", ["batch", 2, 3, 4]), ("v", ["batch", 2, 3, 5]),
                             ("mask", [3, 5]), ("past_k", ["batch", 2, 2, 4]), ("past_v", ["batch", 2, 2, 5])], [
            helper.make_node("Attention", ["q", "k", "v", "mask", "past_k", "past_v"], ["y0", "y1", "y2", "y3"],
                             is_causal=1, softcap=2.5, qk_matmul_output_mode=1),
        ], [], [("y0", ["batch", 4, 3, 5]), ("y1", ["batch", 2, 5, 4]), ("y2", ["batch", 2, 5, 5]), ("y3", ["batch", 4, 3, 5])]),
        "attention_3d": ([("q", ["batch", 3, 8]), ("k", ["batch", 4, 4]), ("v", ["batch", 4, 6]), ("m", [3, 4])], [
            helper.make_node("Greater", ["m", "zero"], ["keep"]),
            helper.make_node("Attention", ["q", "k", "v", "keep"], ["y0"], q_num_heads=2, kv_num_heads=1, scale=0.3),
        ], [_float("zero", [-0.5], [])], [("y0", ["batch", 3, 12])]),
        "rms_rotary": ([("x", ["batch", 2, 3, 4]), ("cos", ["batch", 3, 2]), ("sin", ["batch", 3, 2]), ("t", ["batch", 3, 12])], [
            helper.make_node("RMSNormalization", ["x", "scale"], ["n"], epsilon=1e-3),
            helper.make_node("RotaryEmbedding", ["n", "cos", "sin"], ["y0"]),
            helper.make_node("RMSNormalization", ["t", "scale12"], ["y1"], axis=1),
            helper.make_node("RotaryEmbedding", ["t", "cos_table", "sin_table", "ids"], ["y2"], interleaved=1,
                             rotary_embedding_dim=4, num_heads=2),
        ], [_float("scale", [0.5, 1.5, 1.0, 2.0], [4]), _float("scale12", list(np.linspace(0.5, 1.5, 36)), [3, 12]),
            _float("cos_table", list(np.cos(angles)), [6, 2]), _float("sin_table", list(np.sin(angles)), [6, 2]),
            helper.make_tensor("ids", TensorProto.INT64, [2, 3], [0, 1, 2, 5, 3, 4])],
            [("y0", ["batch", 2, 3, 4]), ("y1", ["batch", 3, 12]), ("y2", ["batch", 3, 12])]),
        "depth_space": ([("x", ["batch", 8, 2, 3])], [
            helper.make_node("DepthToSpace", ["x"], ["y0"], blocksize=2),
            helper.make_node("DepthToSpace", ["x"], ["y1"], blocksize=2, mode="CRD"),
            helper.make_node("SpaceToDepth", ["y1"], ["y2"], blocksize=2),
        ], [], [("y0", ["batch", 2, 4, 6]), ("y1", ["batch", 2, 4, 6]), ("y2", ["batch", 8, 2, 3])]),
        "index_math": ([("x", ["batch", 4, 5])], [
            helper.make_node("ArgMax", ["x"], ["amax"], axis=1, keepdims=0, select_last_index=1),
            helper.make_node("Cast", ["amax"], ["y0"], to=TensorProto.FLOAT),
            helper.make_node("ArgMin", ["x"], ["amin"], axis=-1),
            helper.make_node("Cast", ["amin"], ["y1"], to=TensorProto.FLOAT),
            helper.make_node("CumSum", ["x", "axis"], ["y2"], exclusive=1, reverse=1),
            helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Mul", ["t", "bound"], ["b"]),
            helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Add", ["e", "one"], ["above"]),
            *[helper.make_node(op, ["b"], [f"y{3 + i}"]) for i, op in enumerate(["Tan", "Asin", "Acos", "Atanh", "Sinh", "Cosh"])],
            helper.make_node("Atan", ["x"], ["y9"]), helper.make_node("Asinh", ["x"], ["y10"]),
            helper.make_node("Acosh", ["above"], ["y11"]),
        ], [helper.make_tensor("axis", TensorProto.INT64, [], [1]), _float("bound", [0.8], []), _float("one", [1.0], [])],
            [("y0", ["batch", 5]), ("y1", ["batch", 4, 1])] + [(f"y{i}", ["batch", 4, 5]) for i in range(2, 12)]),
    }


def transformer_op_cases(folder):
    """(name, model path, inputs, expected outputs, tolerance, layer) per model, expected from onnxruntime."""
    import onnxruntime
    rng = np.random.default_rng(23)
    for name, (inputs, nodes, initializers, outputs) in _models().items():
        graph = helper.make_graph(
            nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n, dims in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n, dims in outputs], initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 10
        onnx.checker.check_model(model, full_check=True)
        path = os.path.join(folder, f"{name}.onnx")
        onnx.save(model, path)
        arrays_in = [rng.standard_normal([2 if d == "batch" else d for d in dims]).astype(np.float32) for _, dims in inputs]
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        expected = session.run(None, {n: a for (n, _), a in zip(inputs, arrays_in)})
        yield f"transformer-ops/{name}", path, arrays_in, expected, 1e-5, None


def transformer_round_trip_cases(scion, folder):
    """The same models written back by `scion convert --opset 23` and run by onnxruntime, as
    runtime_op_cases.round_trip_cases checks its own. Yields (name, status, message)."""
    return round_trip_cases(scion, folder, transformer_op_cases(folder), OPSET)
