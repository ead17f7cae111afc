#!/usr/bin/env python3
"""One training step (forward + backward + Adam) of the same layers: Scion against PyTorch eager CPU.

The layers: what `scion finetune --unfreeze-top 20` trains on keras.applications MobileNetV2 (the
recipe of bench/finetune_bench.py): block 15 after its 1x1 expansion (3x3 depthwise, 1x1 project,
the residual add), block 16, Conv_1 and its ReLU6, then the grafted `gap,dense:5:softmax` head, at
7x7 (8 tensors, 1.0M values: Scion's plan line says the same); BatchNormalization frozen (inference mode) in both, as `scion freeze` keeps it.
Batch 32, sparse categorical cross-entropy, Adam 1e-3.

Scion: `scion finetune` on the thawed model (its frozen prefix cached once, not timed); a step's time
is an epoch's time (the per-epoch line it prints) over the epoch's batches, fastest epoch. PyTorch
2.13 eager, `torch.set_num_threads(2)` (the machine's cores): fastest of the timed steps after warm-up.
PyTorch's weights are its own random ones: a step's cost does not depend on the values.

Usage: /opt/scion-fixtures-venv/bin/python bench/train_step_bench.py [--folder /work/apps/keras3]
       [--batches 8] [--epochs 5] [--steps 40]   (needs a release build; torch pinned in bench/requirements.txt)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCION = os.path.join(ROOT, ".build", "release", "scion")
BATCH = 32


def frozen_batch_norm(channels):
    norm = nn.BatchNorm2d(channels, eps=1e-3)
    norm.eval()
    for parameter in norm.parameters():
        parameter.requires_grad_(False)
    return norm


def depthwise_and_project(expanded, outputs):
    """The part of MobileNetV2's block after its 1x1 expansion: depthwise 3x3, project 1x1 (no bias)."""
    return nn.Sequential(
        nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded, bias=False), frozen_batch_norm(expanded), nn.ReLU6(),
        nn.Conv2d(expanded, outputs, 1, bias=False), frozen_batch_norm(outputs))


class TopTwenty(nn.Module):
    """What the top 20 layers train from the cached frontier: block_15_expand_relu's output (960
    channels) and block_14_add's (160, block_15's residual); block_15's expansion is the 21st layer
    from the top, so it stays frozen in the prefix, as in Scion."""

    def __init__(self):
        super().__init__()
        self.block15 = depthwise_and_project(960, 160)
        self.block16 = nn.Sequential(nn.Conv2d(160, 960, 1, bias=False), frozen_batch_norm(960), nn.ReLU6(),
                                     depthwise_and_project(960, 320))
        self.top = nn.Sequential(nn.Conv2d(320, 1280, 1, bias=False), frozen_batch_norm(1280), nn.ReLU6(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 5))

    def forward(self, expanded, residual):
        return self.top(self.block16(self.block15(expanded) + residual))


def time_torch(steps):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = TopTwenty()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, eps=1e-7)
    loss_function = nn.CrossEntropyLoss()
    expanded, residual = torch.rand(BATCH, 960, 7, 7), torch.rand(BATCH, 160, 7, 7)
    y = torch.randint(0, 5, (BATCH,))
    times = []
    for step in range(steps + 5):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(expanded, residual), y)
        loss.backward()
        optimizer.step()
        if step >= 5:
            times.append(time.perf_counter() - start)
    return min(times)


def seconds(text):
    value, unit = text.split()
    return float(value) / 1000 if unit == "ms" else float(value)


def time_scion(scion, folder, batches, epochs):
    work = tempfile.mkdtemp()
    grafted, thawed = os.path.join(work, "grafted.keras"), os.path.join(work, "thawed.keras")
    subprocess.run([scion, "edit", os.path.join(folder, "MobileNetV2.keras"), "--drop-top", "--head", "gap,dense:5:softmax",
                    "--freeze-base", "--seed", "0", "-o", grafted, "--force"], check=True, capture_output=True)
    subprocess.run([scion, "freeze", grafted, "--unfreeze-top", "20", "-o", thawed, "--force"], check=True, capture_output=True)
    random = np.random.default_rng(0)
    samples = batches * BATCH
    data = os.path.join(work, "data.npz")
    np.savez(data, x=random.random((samples, 224, 224, 3), dtype=np.float32), y=random.integers(0, 5, samples))
    result = subprocess.run([scion, "finetune", thawed, "--data", data, "--epochs", str(epochs), "--batch-size", str(BATCH),
                             "-o", os.path.join(work, "out.keras"), "--force"], check=True, capture_output=True, text=True)
    epoch_times = [seconds(match) for match in re.findall(r"[Ee]poch \d+/\d+ - .* - (\d+(?:\.\d+)? m?s)(?: - ETA|$)",
                                                          result.stdout, flags=re.MULTILINE)]
    if len(epoch_times) != epochs:
        sys.exit(f"could not read {epochs} epoch times from scion finetune's output:\n{result.stdout}")
    plan = next((line for line in result.stdout.splitlines() if "training " in line), "")
    return min(epoch_times) / batches, plan


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", default="/work/apps/keras3", help="where MobileNetV2.keras (keras.applications) is")
    parser.add_argument("--batches", type=int, default=8, help="batches of 32 per Scion epoch")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="timed PyTorch steps")
    parser.add_argument("--scion", default=SCION, help="the scion binary (default: this checkout's release build)")
    args = parser.parse_args()
    scion, plan = time_scion(args.scion, args.folder, args.batches, args.epochs)
    pytorch = time_torch(args.steps)
    print(plan)
    print("| layers | batch | Scion step (ms) | PyTorch eager step (ms) | PyTorch / Scion |")
    print("|---|---|---|---|---|")
    print(f"| MobileNetV2 top 20 + gap,dense:5 (7x7) | {BATCH} | {scion * 1000:.1f} | {pytorch * 1000:.1f} | {pytorch / scion:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
