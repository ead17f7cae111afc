#!/usr/bin/env python3
"""Peak memory of `scion run` (issue #18 (c)): the process's maximum RSS (`/usr/bin/time -f %M`) running
one batch of random 224x224x3 images through each model, from its Keras .h5, its .keras and Scion's own
ONNX export of the .h5, against the target weights + the two largest live activations + 64 MiB.
With --baseline, a second scion binary (another build, in its own folder) runs each file right after
the first, so the two columns share the machine's conditions.

Usage: bench/run_memory.py --folder /work/apps/keras3 [--models ResNet50 DenseNet121] [--batch 32]
                           [--baseline /path/to/other/scion]
(needs NAME.h5 and NAME.keras in --folder, a release build and numpy)
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCION = os.path.join(ROOT, ".build", "release", "scion")
MIB = 1 << 20


def peak_mib(scion, model, inputs, output):
    """Maximum RSS of one `scion run`, in MiB."""
    result = subprocess.run(["/usr/bin/time", "-f", "%M", scion, "run", model, "--input", inputs, "-o", output, "--force"],
                            check=True, capture_output=True, text=True)
    return int(result.stderr.strip().splitlines()[-1]) * 1024 / MIB


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--models", nargs="+", default=["ResNet50", "DenseNet121"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--scion", default=SCION)
    parser.add_argument("--baseline", help="another scion binary to measure beside --scion")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        output = os.path.join(work, "out.npy")
        header = "| model | file | weights (MiB) | peak RSS (MiB) |" + (" baseline peak RSS (MiB) |" if arguments.baseline else "")
        print(header)
        print("|" + "---|" * header.count(" |"))
        for name in arguments.models:
            h5 = os.path.join(arguments.folder, name + ".h5")
            onnx = os.path.join(work, name + ".onnx")
            subprocess.run([arguments.scion, "convert", h5, onnx, "--force"], check=True, capture_output=True)
            summary = json.loads(subprocess.run([arguments.scion, "inspect", h5, "--json"], check=True, capture_output=True,
                                                text=True).stdout)
            weights = summary["totalParams"] * 4 / MIB
            # A batch of random images of the model's own input size (InceptionV3's 299x299).
            size = [d for d in summary["inputs"][0]["shape"][1:]]
            inputs = os.path.join(work, name + ".x.npy")
            np.save(inputs, np.random.default_rng(0).random([arguments.batch] + size, dtype=np.float32))
            for model in [h5, os.path.join(arguments.folder, name + ".keras"), onnx]:
                row = f"| {name} | {os.path.splitext(model)[1]} | {weights:.1f} | {peak_mib(arguments.scion, model, inputs, output):.0f} |"
                if arguments.baseline:
                    row += f" {peak_mib(arguments.baseline, model, inputs, output):.0f} |"
                print(row, flush=True)


if __name__ == "__main__":
    main()
