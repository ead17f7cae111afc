#!/usr/bin/env python3
"""How close Scion's GEMM-bound layers come to what the system BLAS gives on its own.

Builds single-layer ONNX models (a MatMul, a 1x1 convolution, a 3x3 convolution), runs each with
`scion run --verbose --repeat N` (the fastest forward pass: the layer alone, weights prepared) and compares the
GFLOP/s with a C program calling the same OpenBLAS's cblas_sgemm on the same matrix sizes, in the
same environment (OPENBLAS_CORETYPE as set). Median of N runs each.

Usage: bench/gemm_bench.py [--repeat 5]   (oracle venv python; needs gcc and a release build)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCION = os.path.join(ROOT, ".build", "release", "scion")
C_SOURCE = r"""
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
    int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]), repeat = atoi(argv[4]);
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
    for (long i = 0; i < (long)m * k; i++) a[i] = (float)(i % 7) / 7;
    for (long i = 0; i < (long)k * n; i++) b[i] = (float)(i % 5) / 5;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
    double best = 1e9;
    for (int r = 0; r < repeat; r++) {
        struct timespec s, e;
        clock_gettime(CLOCK_MONOTONIC, &s);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
        clock_gettime(CLOCK_MONOTONIC, &e);
        double t = (e.tv_sec - s.tv_sec) + (e.tv_nsec - s.tv_nsec) / 1e9;
        if (t < best) best = t;
    }
    printf("%.6f\n", best);
    return 0;
}
"""


def model(path, kind):
    random = np.random.default_rng(0)
    if kind == "matmul":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [512, 4096])
        w = numpy_helper.from_array(random.standard_normal((4096, 4096), dtype=np.float32), "w")
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        shape, gemm = (512, 4096), (512, 4096, 4096)
    else:
        k = 1 if kind == "conv1x1" else 3
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256, 56, 56])
        w = numpy_helper.from_array(random.standard_normal((256, 256, k, k), dtype=np.float32), "w")
        node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[k // 2] * 4)
        shape, gemm = (1, 256, 56, 56), (256, 56 * 56, 256 * k * k)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([node], kind, [x], [y], initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return shape, gemm


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    source, program = os.path.join(folder, "sgemm.c"), os.path.join(folder, "sgemm")
    open(source, "w").write(C_SOURCE)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "openblas"], capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["gcc", "-O2", source, "-o", program] + flags, check=True)
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print("| layer | GEMM m×n×k | cblas_sgemm alone (GFLOP/s) | scion run, the layer (GFLOP/s) | share |")
    print("|---|---|---|---|---|")
    for kind in ("matmul", "conv1x1", "conv3x3"):
        path = os.path.join(folder, f"{kind}.onnx")
        shape, (m, n, k) = model(path, kind)
        x_path, out = os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")
        np.save(x_path, np.random.default_rng(1).random(shape, dtype=np.float32))
        # The fastest of N forward passes in one process, as for the C program (the first call of
        # each also starts OpenBLAS's threads).
        result = subprocess.run([SCION, "run", path, "--input", x_path, "--output", out, "--force", "--json",
                                 "--repeat", str(args.repeat + 1)], capture_output=True, text=True, check=True)
        times = [json.loads(result.stdout)["runSeconds"]]
        scion = 2 * m * n * k / min(times) / 1e9
        alone = 2 * m * n * k / float(subprocess.run([program, str(m), str(n), str(k), str(args.repeat)],
                                                     capture_output=True, text=True, check=True).stdout) / 1e9
        print(f"| {kind} | {m}×{n}×{k} | {alone:.0f} | {scion:.0f} | {scion / alone:.0%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
