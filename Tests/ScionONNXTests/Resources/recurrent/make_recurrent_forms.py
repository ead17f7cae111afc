"""Small ONNX RNN/LSTM/GRU graphs in the forms exporters write, with onnxruntime's outputs.

Run with the oracle venv from this folder's repository root:
    .build/oracle-venv/bin/python Tests/ScionONNXTests/Resources/recurrent/make_recurrent_forms.py

Each NAME.onnx has one input `x` with a dynamic batch; NAME.input.npy (batch 2) and NAME.input3.npy
(batch 3) are read by ONNXRecurrentFormsTests, which compares Scion's executor with
NAME.output_K.npy / NAME.output3_K.npy (every graph output K, in order). onnxruntime does not run
layout 1 (batch first): those files' outputs come from the same node in layout 0 between
Transposes, run by onnxruntime (`reference_layout0`). The `refused_*` files must stay opaque with
the reason named in the test, so they have no outputs.
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
T, F = 5, 3
rng = np.random.default_rng(7)


def weights(cell, directions, units, features):
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[cell]
    w = rng.normal(0, 0.5, (directions, gates * units, features)).astype(np.float32)
    r = rng.normal(0, 0.5, (directions, gates * units, units)).astype(np.float32)
    b = rng.normal(0, 0.3, (directions, 2 * gates * units)).astype(np.float32)
    return [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"), numpy_helper.from_array(b, "B")]


def zeros_of_batch(name, directions, units, time_major_input, batch_axis):
    """torch's zeros [directions, batch, units]: ConstantOfShape of Concat(D, Shape(x)[batch], U)."""
    return [
        helper.make_node("Shape", [time_major_input], [f"{name}_shape"]),
        helper.make_node("Gather", [f"{name}_shape", f"{name}_axis"], [f"{name}_batch"], axis=0),
        helper.make_node("Unsqueeze", [f"{name}_batch", f"{name}_zero_axis"], [f"{name}_batch1"]),
        helper.make_node("Concat", [f"{name}_dirs", f"{name}_batch1", f"{name}_units"], [f"{name}_dims"], axis=0),
        helper.make_node("ConstantOfShape", [f"{name}_dims"], [name],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
    ], [
        numpy_helper.from_array(np.array(batch_axis, np.int64), f"{name}_axis"),
        numpy_helper.from_array(np.array([0], np.int64), f"{name}_zero_axis"),
        numpy_helper.from_array(np.array([directions], np.int64), f"{name}_dirs"),
        numpy_helper.from_array(np.array([units], np.int64), f"{name}_units"),
    ]


def save(name, nodes, initializers, outputs, x_shape=("batch", T, F), runs=True, reference=None):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="scion-tests")
    model.ir_version = 8
    onnx.save(model, os.path.join(HERE, f"{name}.onnx"))
    if not runs:
        return
    for batch, suffix in [(2, ""), (3, "3")] if x_shape[0] == "batch" else [(x_shape[0], "")]:
        shape = [batch if d == "batch" else d for d in x_shape]
        x = rng.normal(0, 1, shape).astype(np.float32)
        np.save(os.path.join(HERE, f"{name}.input{suffix}.npy"), x)
        session = ort.InferenceSession((reference or model).SerializeToString())
        for k, y in enumerate(session.run(None, {"x": x})):
            np.save(os.path.join(HERE, f"{name}.output{suffix}_{k}.npy"), y)


def time_major(nodes):
    return [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2])] + nodes


def lstm_bidirectional_zero_states():
    """torch's bidirectional LSTM: ConstantOfShape zeros of the symbolic batch, Sliced per layer; Y
    time-major through Transpose [0,2,1,3] and Reshape; Y_h and Y_c read too."""
    units = 4
    zeros, zero_inits = zeros_of_batch("zeros", 4, units, "xt", 1)
    slices = [helper.make_node("Slice", ["zeros", "s0", "s2", "s_axis"], ["h0"]),
              helper.make_node("Slice", ["zeros", "s0", "s2", "s_axis"], ["c0"])]
    nodes = time_major(zeros + slices + [
        helper.make_node("LSTM", ["xt", "W", "R", "B", "", "h0", "c0"], ["Y", "Y_h", "Y_c"], hidden_size=units,
                         direction="bidirectional"),
        helper.make_node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Yt", "merge"], ["sequence"]),
    ])
    inits = weights("LSTM", 2, units, F) + zero_inits + [
        numpy_helper.from_array(np.array([0], np.int64), "s0"), numpy_helper.from_array(np.array([2], np.int64), "s2"),
        numpy_helper.from_array(np.array([0], np.int64), "s_axis"),
        numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge")]
    save("lstm_bidirectional_zero_states", nodes, inits, ["sequence", "Y_h", "Y_c"])


def gru_reverse_full_lengths():
    """GRU reverse, linear_before_reset=0, sequence_lens constant at the full length (so a static
    batch of 2), initial_h an Expand of a zeros constant to [1, batch, units]."""
    units = 3
    nodes = time_major([
        helper.make_node("Shape", ["xt"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axis0"], ["batch1"]),
        helper.make_node("Concat", ["d1", "batch1", "u"], ["dims"], axis=0),
        helper.make_node("Expand", ["zeros", "dims"], ["h0"]),
        helper.make_node("GRU", ["xt", "W", "R", "B", "lengths", "h0"], ["Y", "Y_h"], hidden_size=units, direction="reverse",
                         linear_before_reset=0),
        helper.make_node("Squeeze", ["Y", "axis1"], ["sequence"]),
    ])
    inits = weights("GRU", 1, units, F) + [
        numpy_helper.from_array(np.array(1, np.int64), "one"), numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"), numpy_helper.from_array(np.array([1], np.int64), "d1"),
        numpy_helper.from_array(np.array([units], np.int64), "u"),
        numpy_helper.from_array(np.zeros((1, 1, units), np.float32), "zeros"),
        numpy_helper.from_array(np.array([T, T], np.int32), "lengths")]
    save("gru_reverse_full_lengths", nodes, inits, ["sequence", "Y_h"], x_shape=(2, T, F))


def rnn_relu_state_only():
    """RNN forward with Relu, no bias, only Y_h read; initial_h a zeros constant."""
    units = 4
    nodes = time_major([helper.make_node("RNN", ["xt", "W", "R", "", "", ""], ["", "Y_h"], hidden_size=units,
                                         activations=["Relu"])])
    save("rnn_relu_state_only", nodes, weights("RNN", 1, units, F)[:2], ["Y_h"])


def layout1(cell, direction, **attributes):
    """Layout 1 (batch first); onnxruntime's numbers from the same node in layout 0 between Transposes."""
    units, directions = 3, 2 if direction == "bidirectional" else 1
    outputs = ["Y", "Y_h"] + (["Y_c"] if cell == "LSTM" else [])
    inits = weights(cell, directions, units, F)
    node = helper.make_node(cell, ["x", "W", "R", "B"], outputs, hidden_size=units, direction=direction, layout=1,
                            **attributes)
    name = f"{cell.lower()}_{direction}_layout1"
    ref_nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
                 helper.make_node(cell, ["xt", "W", "R", "B"], [o + "_tm" for o in outputs], hidden_size=units,
                                  direction=direction, **attributes),
                 helper.make_node("Transpose", ["Y_tm"], ["Y"], perm=[2, 0, 1, 3])] + [
        helper.make_node("Transpose", [o + "_tm"], [o], perm=[1, 0, 2]) for o in outputs[1:]]
    reference = helper.make_model(helper.make_graph(
        ref_nodes, "reference", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    reference.ir_version = 8
    save(name, [node], inits, outputs, reference=reference)


def torch_stack():
    """torch's time-major stack for ONNX -> Keras: a bidirectional LSTM whose sequence goes to a GRU
    time-major (Transpose [0,2,1,3] + Reshape), the GRU's through Squeeze and Transpose back, then
    the last step (x[:, -1]) plus the GRU's final state (h[-1]): Keras's Bidirectional(LSTM) -> GRU."""
    lstm_units, gru_units = 3, 4
    lstm = weights("LSTM", 2, lstm_units, F)
    for tensor in lstm:
        tensor.name = "lstm_" + tensor.name
    gru = weights("GRU", 1, gru_units, 2 * lstm_units)
    for tensor in gru:
        tensor.name = "gru_" + tensor.name
    zeros, zero_inits = zeros_of_batch("zeros", 2, lstm_units, "x", 0)
    nodes = time_major(zeros + [
        helper.make_node("LSTM", ["xt", "lstm_W", "lstm_R", "lstm_B", "", "zeros", "zeros"], ["Y1", "", ""],
                         hidden_size=lstm_units, direction="bidirectional"),
        helper.make_node("Transpose", ["Y1"], ["Y1t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Y1t", "merge"], ["s1"]),
        helper.make_node("GRU", ["s1", "gru_W", "gru_R", "gru_B"], ["Y2", "Y2_h"], hidden_size=gru_units, linear_before_reset=1),
        helper.make_node("Squeeze", ["Y2", "axis1"], ["s2"]),
        helper.make_node("Transpose", ["s2"], ["s2b"], perm=[1, 0, 2]),
        helper.make_node("Gather", ["s2b", "last"], ["step"], axis=1),
        helper.make_node("Gather", ["Y2_h", "last"], ["state"], axis=0),
        helper.make_node("Add", ["step", "state"], ["y"]),
    ])
    inits = lstm + gru + zero_inits + [
        numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge"), numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(-1, np.int64), "last")]
    save("torch_stack", nodes, inits, ["y"])


def torch_state_stack():
    """torch's `h_n` of a 2-layer bidirectional LSTM: the layers' Y_h concatenated along axis 0 and
    read by h[-2], h[-1] (the last layer's two directions), the last layer's Y unread."""
    units = 3
    first, second = weights("LSTM", 2, units, F), weights("LSTM", 2, units, 2 * units)
    for prefix, tensors in [("l0_", first), ("l1_", second)]:
        for tensor in tensors:
            tensor.name = prefix + tensor.name
    nodes = time_major([
        helper.make_node("LSTM", ["xt", "l0_W", "l0_R", "l0_B"], ["Y1", "H1"], hidden_size=units, direction="bidirectional"),
        helper.make_node("Transpose", ["Y1"], ["Y1t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Y1t", "merge"], ["s1"]),
        helper.make_node("LSTM", ["s1", "l1_W", "l1_R", "l1_B"], ["", "H2"], hidden_size=units, direction="bidirectional"),
        helper.make_node("Concat", ["H1", "H2"], ["h_n"], axis=0),
        helper.make_node("Gather", ["h_n", "minus2"], ["forward"], axis=0),
        helper.make_node("Gather", ["h_n", "minus1"], ["backward"], axis=0),
        helper.make_node("Concat", ["forward", "backward"], ["y"], axis=1),
    ])
    inits = first + second + [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge"),
                              numpy_helper.from_array(np.array(-2, np.int64), "minus2"),
                              numpy_helper.from_array(np.array(-1, np.int64), "minus1")]
    save("torch_state_stack", nodes, inits, ["y"])


def torch_squeezed_states():
    """torch's one-direction states: `h_n.squeeze(0)` (a Squeeze of axis 0) and `c_n[-1]` of an LSTM
    whose sequence is unread, its input a GRU's sequence turned time-major by Squeeze."""
    units = 3
    gru, lstm = weights("GRU", 1, units, F), weights("LSTM", 1, units, units)
    for prefix, tensors in [("gru_", gru), ("lstm_", lstm)]:
        for tensor in tensors:
            tensor.name = prefix + tensor.name
    nodes = time_major([
        helper.make_node("GRU", ["xt", "gru_W", "gru_R", "gru_B"], ["Y1"], hidden_size=units, linear_before_reset=1),
        helper.make_node("Squeeze", ["Y1", "axis1"], ["s1"]),
        helper.make_node("LSTM", ["s1", "lstm_W", "lstm_R", "lstm_B"], ["", "H", "C"], hidden_size=units),
        helper.make_node("Squeeze", ["H", "axis0"], ["h"]),
        helper.make_node("Gather", ["C", "last"], ["c"], axis=0),
        helper.make_node("Concat", ["h", "c"], ["y"], axis=1),
    ])
    inits = gru + lstm + [numpy_helper.from_array(np.array([1], np.int64), "axis1"),
                          numpy_helper.from_array(np.array([0], np.int64), "axis0"), numpy_helper.from_array(np.array(-1, np.int64), "last")]
    save("torch_squeezed_states", nodes, inits, ["y"])


def layout1_merged():
    """Layout 1 as a batch-first model reads it: Y `[batch, time, 2, units]` reshaped to
    `[batch, time, 2*units]`, which is Keras's Bidirectional(GRU(return_sequences=True))."""
    units = 3
    inits = weights("GRU", 2, units, F) + [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge")]
    node = helper.make_node("GRU", ["x", "W", "R", "B"], ["Y"], hidden_size=units, direction="bidirectional", layout=1,
                            linear_before_reset=1)
    merge = helper.make_node("Reshape", ["Y", "merge"], ["sequence"])
    ref_nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
                 helper.make_node("GRU", ["xt", "W", "R", "B"], ["Y_tm"], hidden_size=units, direction="bidirectional",
                                  linear_before_reset=1),
                 helper.make_node("Transpose", ["Y_tm"], ["Y"], perm=[2, 0, 1, 3]), merge]
    reference = helper.make_model(helper.make_graph(
        ref_nodes, "reference", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
        [helper.make_tensor_value_info("sequence", TensorProto.FLOAT, None)], inits), opset_imports=[helper.make_opsetid("", 17)])
    reference.ir_version = 8
    save("gru_layout1_merged", [node, merge], inits, ["sequence"], reference=reference)


def computed_initial_state():
    """An LSTM whose initial_h and initial_c are computed from the input (a decoder fed an
    encoder's state): read as inputs of the op."""
    units = 2
    inits = weights("LSTM", 1, units, F)
    nodes = time_major([
        helper.make_node("Mul", ["xt", "two"], ["scaled"]),
        helper.make_node("ReduceMean", ["scaled"], ["h0"], axes=[0], keepdims=1),
        helper.make_node("Slice", ["h0", "c0", "c2", "c_axis"], ["state"]),
        helper.make_node("Neg", ["state"], ["cell"]),
        helper.make_node("LSTM", ["xt", "W", "R", "B", "", "state", "cell"], ["Y"], hidden_size=units),
    ])
    save("lstm_computed_initial_state", nodes, inits + [
        numpy_helper.from_array(np.array(2, np.float32), "two"), numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([units], np.int64), "c2"), numpy_helper.from_array(np.array([2], np.int64), "c_axis")],
        ["Y"])


def layout1_initial_state():
    """GRU bidirectional in layout 1 with initial_h `[batch, 2, units]` computed from the input."""
    units = 3
    inits = weights("GRU", 2, units, F)
    state = [helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1], keepdims=1),
             helper.make_node("Concat", ["mean", "mean"], ["h0"], axis=1)]
    node = helper.make_node("GRU", ["x", "W", "R", "B", "", "h0"], ["Y", "Y_h"], hidden_size=units, direction="bidirectional",
                            layout=1)
    ref_nodes = state + [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
                         helper.make_node("Transpose", ["h0"], ["h0t"], perm=[1, 0, 2]),
                         helper.make_node("GRU", ["xt", "W", "R", "B", "", "h0t"], ["Y_tm", "Y_h_tm"], hidden_size=units,
                                          direction="bidirectional"),
                         helper.make_node("Transpose", ["Y_tm"], ["Y"], perm=[2, 0, 1, 3]),
                         helper.make_node("Transpose", ["Y_h_tm"], ["Y_h"], perm=[1, 0, 2])]
    reference = helper.make_model(helper.make_graph(
        ref_nodes, "reference", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ["Y", "Y_h"]], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    reference.ir_version = 8
    save("gru_layout1_initial_state", state + [node], inits, ["Y", "Y_h"], reference=reference)


def refused():
    """Forms the recurrent op cannot be: initial_h given and initial_c absent (zeros by ONNX's
    rule, which the op has no value for), and sequence lengths computed in the graph."""
    units = 2
    inits = weights("LSTM", 1, units, F)
    nodes = time_major([
        helper.make_node("ReduceMean", ["xt"], ["h0"], axes=[0], keepdims=1),
        helper.make_node("Slice", ["h0", "c0", "c2", "c_axis"], ["state"]),
        helper.make_node("LSTM", ["xt", "W", "R", "B", "", "state"], ["Y"], hidden_size=units),
    ])
    save("refused_partial_initial_state", nodes, inits + [
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([units], np.int64), "c2"), numpy_helper.from_array(np.array([2], np.int64), "c_axis")],
        ["Y"], runs=False)
    nodes = time_major([
        helper.make_node("Shape", ["xt"], ["shape"]),
        helper.make_node("Slice", ["shape", "one", "two_i"], ["batch1"]),
        helper.make_node("ConstantOfShape", ["batch1"], ["lengths"], value=numpy_helper.from_array(np.array([4], np.int32))),
        helper.make_node("LSTM", ["xt", "W", "R", "B", "lengths"], ["Y"], hidden_size=units),
    ])
    save("refused_sequence_lengths", nodes, inits + [
        numpy_helper.from_array(np.array([1], np.int64), "one"), numpy_helper.from_array(np.array([2], np.int64), "two_i")],
        ["Y"], runs=False)


if __name__ == "__main__":
    # Each file draws from its own seed, so adding one leaves the others' bytes as they were.
    for seed, make in enumerate([lstm_bidirectional_zero_states, gru_reverse_full_lengths, rnn_relu_state_only,
                                 lambda: layout1("GRU", "bidirectional", linear_before_reset=1), lambda: layout1("LSTM", "forward"),
                                 torch_stack, torch_state_stack, refused, torch_squeezed_states, computed_initial_state,
                                 layout1_initial_state, layout1_merged]):
        rng = np.random.default_rng(7 + seed)
        make()
    print("written to", HERE)
