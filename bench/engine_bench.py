#!/usr/bin/env python3
"""The engines side by side, in-process: Scion's forward pass against onnxruntime's (CPU provider,
default threads), fastest of N passes each, on the same ONNX file (Scion's own export of the Keras
model); Scion also runs the .keras file. Scion's times come from `scion run --repeat N --json`, which
reports reading the file, preparing the executor (everything between reading and the first kernel),
the fastest forward pass and the least CPU time (all threads) a pass took, separately; onnxruntime's from one InferenceSession in this process,
timing session.run only (wall, and process CPU time). On a machine shared with other jobs the wall
times stretch with the load, and an engine that spins its threads suffers most; the CPU columns say
how much work each engine does per pass. Outputs are compared (max|a-b| / max|b|) so a fast wrong answer shows.

Run it with the oracle venv's Python (it imports onnxruntime):
  .build/oracle-venv/bin/python bench/engine_bench.py --folder /work/apps/keras3 \
      [--models ResNet50 MobileNetV2] [--batches 1 2 32] [--repeat 5] [--blas both|set|unset] \
      [--onnx /work/apps/torch/vit_b_16_ts.onnx ...]
`--onnx` adds ONNX files run as they are (torch's ViT and ConvNeXt exports, bench/make_transformer_models.py;
`--models` with no names runs only those).

OpenBLAS's kernel matters: this machine's environment may set OPENBLAS_CORETYPE=Haswell, which Scion
leaves alone; unset, Scion picks SkylakeX itself. `--blas both` runs Scion under each.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCION = [os.path.join(ROOT, ".build", "release", "scion")]  # the binary; --scion replaces it
MODELS = ["ResNet50", "MobileNetV2", "InceptionV3", "EfficientNetB0", "DenseNet121"]


def scion_run(model, x_path, out_path, repeat, environment):
    command = [SCION[0], "run", model, "--input", x_path, "-o", out_path, "--force", "--repeat", str(repeat), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
    whole = time.perf_counter() - started
    report = json.loads(done.stdout)
    cpu = report.get("runCPUSeconds", float("nan"))
    return report["readSeconds"], report["prepareSeconds"], report["runSeconds"], cpu, whole


def ort_fastest(session, x, repeat):
    """Fastest wall time of `repeat` passes, and the least process CPU time (all threads) of one."""
    feed = {session.get_inputs()[0].name: x}
    result = session.run(None, feed)[0]  # warm-up, as Scion's first pass is not its fastest either
    fastest = least_cpu = float("inf")
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = session.run(None, feed)[0]
        fastest = min(fastest, time.perf_counter() - started)
        least_cpu = min(least_cpu, time.process_time() - started_cpu)
    return fastest, least_cpu, result


def relative(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", default="/work/apps/keras3", help="where NAME.h5 and NAME.keras are")
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 2, 32])
    parser.add_argument("--repeat", type=int, default=5, help="passes per measurement (batch 32: at most 3)")
    parser.add_argument("--blas", choices=["both", "set", "unset"], default="unset",
                        help="Scion with OPENBLAS_CORETYPE=Haswell (set), without it (unset), or both")
    parser.add_argument("--no-keras", action="store_true", help="skip Scion on the .keras file")
    parser.add_argument("--scion", default=SCION[0], help="the scion binary (another build, to compare)")
    parser.add_argument("--onnx", nargs="*", default=[],
                        help="ONNX files run as they are (torch's exports: bench/make_transformer_models.py), after --models")
    args = parser.parse_args()
    SCION[0] = args.scion
    scratch = tempfile.mkdtemp(prefix="engine_bench_")
    unset = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    settings = {"unset": unset, "set": dict(unset, OPENBLAS_CORETYPE="Haswell")}
    chosen = ["unset", "set"] if args.blas == "both" else [args.blas]
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} cores; Scion BLAS: {', '.join(chosen)} OPENBLAS_CORETYPE")
    print("| model | batch | BLAS | Scion .onnx run (s) | Scion .keras run (s) | onnxruntime run (s) | ratio (.onnx) "
          "| CPU s per pass: Scion / onnxruntime | CPU ratio | Scion read / prepare (s) | prepare / batch-2 run | max rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    # (name, ONNX file, Keras file or None): the Keras models converted by Scion, then ONNX files as given.
    runs = [(name, os.path.join(scratch, f"{name}.onnx"), os.path.join(args.folder, f"{name}.keras")) for name in args.models]
    runs += [(os.path.basename(path).removesuffix(".onnx"), path, None) for path in args.onnx]
    for name, onnx_path, keras_file in runs:
        if keras_file:
            source = os.path.join(args.folder, f"{name}.h5")
            subprocess.run([SCION[0], "convert", source, onnx_path, "--force", "--quiet"], check=True, env=unset)
        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        # One sample's shape: Keras's NHWC (size from axis 1), or an ONNX file's own (torch: NCHW).
        declared = session.get_inputs()[0].shape[1:]
        if keras_file:
            size = declared[0] if isinstance(declared[0], int) else 224
            sample = (size, size, 3)
        else:
            sample = tuple(d if isinstance(d, int) else 224 for d in declared)
        batch2_run = {}
        for batch in args.batches:
            repeat = min(args.repeat, 3) if batch >= 16 else args.repeat
            x = np.random.default_rng(batch).random((batch,) + sample, dtype=np.float32)
            x_path = os.path.join(scratch, "x.npy")
            out_path = os.path.join(scratch, "out.npy")
            np.save(x_path, x)
            ort_seconds, ort_cpu, expected = ort_fastest(session, x, repeat)
            for setting in chosen:
                read, prepare, run, cpu, _ = scion_run(onnx_path, x_path, out_path, repeat, settings[setting])
                difference = relative(np.load(out_path), expected)
                keras_run = float("nan")
                if not args.no_keras and keras_file:
                    _, _, keras_run, _, _ = scion_run(keras_file, x_path, out_path, repeat, settings[setting])
                    difference = max(difference, relative(np.load(out_path), expected))
                if batch == 2:
                    batch2_run[setting] = run
                share = f"{prepare / batch2_run[setting]:.0%}" if setting in batch2_run else "-"
                print(f"| {name} | {batch} | {setting} | {run:.3f} | {keras_run:.3f} | {ort_seconds:.3f} | {run / ort_seconds:.2f}x "
                      f"| {cpu:.3f} / {ort_cpu:.3f} | {cpu / ort_cpu:.2f}x | {read:.2f} / {prepare:.2f} | {share} | {difference:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
