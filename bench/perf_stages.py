#!/usr/bin/env python3
"""Where an image-folder run's CPU goes, by stage: `perf script` output of a `perf record -g` of a scion
command, each sample counted in the first stage (in the order below) whose pattern appears anywhere in
its call chain, so a page fault taken while resizing counts as resizing. With the run's CPU seconds and
image count it prints CPU ms an image per stage; --kernel also splits the kernel-mode samples by the
user-space function that entered the kernel (page faults, munmap...).

Usage:
    perf record -g -o run.data .build/release/scion finetune MODEL --data DIR ... --json > /dev/null
    perf script -i run.data | python3 bench/perf_stages.py --images 300 [--kernel]

Each sample weighs its period (the nanoseconds of cpu-clock on its header line), so the stages add up
to the CPU time perf saw.
"""
import argparse
import collections
import re
import sys

STAGES = [
    ("JPEG decode (libjpeg-turbo)", r"libturbojpeg|JPEGDecoder|tjDecompress"),
    ("PNG decode", r"PNGDecoder|libpng"),
    ("resize", r"ImageResizer"),
    ("file read", r"ImageDecoder|ImageFormat"),
    ("preprocessing", r"InputPreprocessing|PreprocessOptions"),
    ("batching (ImageBatches)", r"ImageBatches|ImageBatchStream|ImagePipeline"),
    ("network (executor, BLAS)", r"Executor|ScionRuntime7Kernels|libopenblas|sgemm"),
    ("feature cache", r"TrainerV8features9streaming"),
    ("training (fit)", r"TrainerV3fit"),
    ("model read/write", r"HDF5|hdf5|ScionKeras|ScionZip|ScionONNX|protobuf"),
]


def samples(lines):
    """(period in ns, call chain leaf first) per sample; each frame as `address symbol (dso)`."""
    period, chain = 0, []
    for line in lines:
        line = line.rstrip("\n")
        if line and line[0] not in " \t":
            if chain:
                yield period, chain
            # `comm pid time: period event:`
            numbers = re.search(r":\s+(\d+)\s+\S+:", line)
            period, chain = (int(numbers.group(1)) if numbers else 0), []
        elif line.strip():
            chain.append(line.strip())
    if chain:
        yield period, chain


def symbol(frame):
    parts = frame.split(maxsplit=1)
    text = parts[1] if len(parts) > 1 else frame
    return re.sub(r"\+0x[0-9a-f]+ .*$", "", text)[:100]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--kernel", action="store_true")
    args = parser.parse_args()
    patterns = [(name, re.compile(pattern)) for name, pattern in STAGES]
    stages, kernel_entries = collections.Counter(), collections.Counter()
    total = 0
    for period, chain in samples(sys.stdin):
        total += period
        text = "\n".join(chain)
        stage = next((name for name, pattern in patterns if pattern.search(text)), "other")
        stages[stage] += period
        if args.kernel and "[kernel.kallsyms]" in chain[0]:
            entry = next((symbol(frame) for frame in chain if "[kernel.kallsyms]" not in frame), "(kernel only)")
            kernel_entries[entry] += period
    total = max(total, 1)
    print(f"{total / 1e9:.2f} CPU s sampled, {args.images} images")
    for name, weight in stages.most_common():
        print(f"{100 * weight / total:6.2f}%  {weight / 1e6 / args.images:7.2f} CPU ms an image  {name}")
    if args.kernel:
        print(f"\nkernel mode: {100 * sum(kernel_entries.values()) / total:.1f}% of the CPU time, entered from")
        for name, weight in kernel_entries.most_common(12):
            print(f"{100 * weight / total:6.2f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
