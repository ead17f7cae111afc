"""Small ONNX models with model-local functions (ModelProto.functions), for ONNXFunctionInliningTests.

Run with the oracle venv (onnx, onnxruntime): python make_functions.py. Writes NAME.onnx and
onnxruntime's outputs NAME.output.npy / NAME.output3.npy for NAME.input.npy (batch 2) / input3 (batch 3).

- nested_functions: a `Block` function (domain `local`) called twice from the graph, each call
  calling an `Activation` function whose LeakyRelu slope is an attribute reference (`ref_attr_name`)
  set by one call and left to the function's default by the other; inner value names repeat across
  calls, so inlining must keep them apart.
- recursive_function: a function that calls itself (never ends): must be refused, not hang.
- doubling_functions: 30 functions, each calling the next twice, the last with an empty body: 2^30
  calls that add no node; must be refused by the inlining budget, not expanded.
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import AttributeProto, TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSETS = [helper.make_opsetid("", 18), helper.make_opsetid("local", 1)]


def reference(name, ref, kind=AttributeProto.FLOAT):
    attribute = AttributeProto()
    attribute.name, attribute.ref_attr_name, attribute.type = name, ref, kind
    return attribute


def nested():
    leaky = helper.make_node("LeakyRelu", ["a"], ["t"])
    leaky.attribute.append(reference("alpha", "slope"))
    activation = helper.make_function(
        "local", "Activation", ["a"], ["b"],
        [leaky, helper.make_node("Mul", ["t", "t"], ["sq"]), helper.make_node("Add", ["t", "sq"], ["b"])],
        OPSETS, attributes=[], attribute_protos=[helper.make_attribute("slope", 0.25)])
    call = helper.make_node("Activation", ["h"], ["y"], domain="local")
    call.attribute.append(reference("slope", "slope"))
    block = helper.make_function(
        "local", "Block", ["x", "w"], ["y"],
        [helper.make_node("MatMul", ["x", "w"], ["h"]), call],
        OPSETS, attributes=["slope"])
    rng = np.random.default_rng(0)
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [4, 6], rng.standard_normal((4, 6)).astype(np.float32).ravel())
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [6, 3], rng.standard_normal((6, 3)).astype(np.float32).ravel())
    graph = helper.make_graph(
        [helper.make_node("Block", ["x", "w1"], ["y1"], domain="local", name="block1", slope=0.1),
         helper.make_node("Block", ["y1", "w2"], ["y"], domain="local", name="block2")],
        "nested_functions",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [w1, w2])
    return helper.make_model(graph, opset_imports=OPSETS, functions=[block, activation], ir_version=9)


def recursive():
    loop = helper.make_function("local", "Forever", ["a"], ["b"],
                                [helper.make_node("Forever", ["a"], ["b"], domain="local")], OPSETS)
    graph = helper.make_graph([helper.make_node("Forever", ["x"], ["y"], domain="local", name="call")],
                              "recursive_function",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    return helper.make_model(graph, opset_imports=OPSETS, functions=[loop], ir_version=9)


def doubling():
    functions = []
    for level in range(30):
        body = [] if level == 29 else [helper.make_node(f"F{level + 1}", ["a"], ["m"], domain="local"),
                                       helper.make_node(f"F{level + 1}", ["m"], ["b"], domain="local")]
        if level == 29:
            body = [helper.make_node("Identity", ["a"], ["b"])]
        functions.append(helper.make_function("local", f"F{level}", ["a"], ["b"], body, OPSETS))
    graph = helper.make_graph([helper.make_node("F0", ["x"], ["y"], domain="local", name="call")],
                              "doubling_functions",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    return helper.make_model(graph, opset_imports=OPSETS, functions=functions, ir_version=9)


def main():
    model = nested()
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(HERE, "nested_functions.onnx")
    onnx.save(model, path)
    session = ort.InferenceSession(path)
    rng = np.random.default_rng(1)
    for suffix, batch in (("", 2), ("3", 3)):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        np.save(os.path.join(HERE, f"nested_functions.input{suffix}.npy"), x)
        np.save(os.path.join(HERE, f"nested_functions.output{suffix}.npy"), session.run(None, {"x": x})[0])
    onnx.save(recursive(), os.path.join(HERE, "recursive_function.onnx"))
    onnx.save(doubling(), os.path.join(HERE, "doubling_functions.onnx"))
    print("wrote nested_functions, recursive_function and doubling_functions")


if __name__ == "__main__":
    main()
