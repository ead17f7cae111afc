#!/usr/bin/env python3
"""What onnxruntime spends on the window layers the channels-last kernels run (depthwise convolution,
pooling, global pooling), on the same shapes as the Swift micro-benchmark, to compare with it:

    SCION_WINDOWS_BENCH=1 swift test -c release -Xswiftc -enable-testing \\
      --filter ChannelsLastWindowTests/testTimesAgainstChannelsFirstWhenAsked

Each layer is an ONNX model of one node (a grouped Conv with one group per channel, a MaxPool or
AveragePool, a GlobalAveragePool) on an NCHW input, run by onnxruntime's CPU provider with every graph
optimisation on (it reorders to its blocked NCHWc layout itself) and as many threads as cores;
milliseconds per call, the fastest of several runs (at least 3, up to about half a second).

Usage: bench/windows_onnxruntime.py [--threads 2] [--only depthwise|pool|global]   (oracle venv python)
"""
import argparse
import os
import time

import numpy as np
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

# The Swift benchmark's shapes (Tests/ScionRuntimeTests/ChannelsLastWindowTests+Benchmark.swift).
DEPTHWISE = [(112, 96, 3, 2), (56, 144, 3, 1), (28, 192, 3, 1), (14, 576, 3, 1), (7, 960, 3, 1), (14, 672, 5, 2), (7, 1152, 5, 1)]
POOLINGS = [(112, 64, "MaxPool", 3, 2, [1, 1, 1, 1]), (147, 64, "MaxPool", 3, 2, [0, 0, 0, 0]),
            (35, 192, "AveragePool", 3, 1, "same"), (17, 768, "AveragePool", 3, 1, "same"),
            (56, 128, "AveragePool", 2, 2, [0, 0, 0, 0]), (28, 256, "AveragePool", 2, 2, [0, 0, 0, 0])]
GLOBAL = [(7, 1280), (7, 2048), (8, 2048)]


def same_pads(size, kernel, stride):
    """TensorFlow's 'same': the odd padding cell at the end."""
    output = (size + stride - 1) // stride
    total = max((output - 1) * stride + kernel - size, 0)
    return [total // 2, total // 2, total - total // 2, total - total // 2]


def session(node, inputs, initializers, threads):
    graph = helper.make_graph([node], "window", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def fastest(run):
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 3 or (spent < 0.5 and runs < 200):
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best * 1000


def time_model(node, shape, initializers, threads):
    x = np.random.default_rng(5).uniform(-1, 1, shape).astype(np.float32)
    s = session(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], initializers, threads)
    return fastest(lambda: s.run(None, {"x": x}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", choices=["depthwise", "pool", "global"])
    args = parser.parse_args()
    print(f"onnxruntime {onnxruntime.__version__}, {args.threads} threads")
    print("kernel | shape (H x W x C, window, stride) | batch | onnxruntime ms")
    rng = np.random.default_rng(7)
    for size, channels, k, stride in DEPTHWISE if args.only in (None, "depthwise") else []:
        weights = numpy_helper.from_array(rng.uniform(-1, 1, (channels, 1, k, k)).astype(np.float32), "w")
        node = helper.make_node("Conv", ["x", "w"], ["y"], group=channels, kernel_shape=[k, k], strides=[stride, stride],
                                pads=same_pads(size, k, stride))
        for batch in (1, 32):
            ms = time_model(node, [batch, channels, size, size], [weights], args.threads)
            print(f"depthwise | {size}x{size}x{channels} {k}x{k} s{stride} | {batch} | {ms:.3f}")
    for size, channels, op, k, stride, pads in POOLINGS if args.only in (None, "pool") else []:
        attributes = dict(kernel_shape=[k, k], strides=[stride, stride], pads=same_pads(size, k, stride) if pads == "same" else pads)
        node = helper.make_node(op, ["x"], ["y"], **attributes)
        for batch in (1, 32):
            ms = time_model(node, [batch, channels, size, size], [], args.threads)
            print(f"{op} | {size}x{size}x{channels} {k}x{k} s{stride} | {batch} | {ms:.3f}")
    for size, channels in GLOBAL if args.only in (None, "global") else []:
        node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
        for batch in (1, 32):
            ms = time_model(node, [batch, channels, size, size], [], args.threads)
            print(f"global average | {size}x{size}x{channels} | {batch} | {ms:.3f}")


if __name__ == "__main__":
    main()
