#!/usr/bin/env python3
"""Head training with a frozen base: `scion finetune` side by side with Keras 3's `fit()`.

The recipe: a full-size keras.applications model, classifier dropped, `gap,dense:5:softmax` grafted,
base frozen (`scion edit`); N random images with random labels; Adam, batch 32, E epochs. Keras is
timed from the loaded model (compile + fit, JAX backend, CPU), as the issue asks; Scion's time is the
whole `scion finetune` process (load, cache the base's features, train, write .keras, read it back and
verify). Median of R runs.

With `--unfreeze-top N`, the recipe's second phase instead: the grafted model with the last N layers
of the base made trainable too (`scion freeze --unfreeze-top N`, BatchNormalization kept frozen; Keras loads
that file, so the same layers train in both), trained the same way: backprop through those layers,
with the frozen rest of the base cached by Scion and recomputed every batch by Keras.

Usage: KERAS_BACKEND=jax .build/oracle-venv/bin/python bench/finetune_bench.py [--model MobileNetV2]
       [--folder /work/apps/keras3] [--samples 256] [--epochs 10] [--repeat 3] [--unfreeze-top N]
       (needs a release build and the full-size keras.applications files, NAME.keras, in --folder)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
import keras  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCION = os.path.join(ROOT, ".build", "release", "scion")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="MobileNetV2")
    parser.add_argument("--folder", default="/work/apps/keras3", help="where the keras.applications NAME.keras files are")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--unfreeze-top", type=int, help="also train the last N layers of the base")
    parser.add_argument("--scion", default=SCION, help="the scion binary (default: this checkout's release build)")
    args = parser.parse_args()
    binary = args.scion
    folder = tempfile.mkdtemp()
    source = os.path.join(args.folder, f"{args.model}.keras")
    grafted = os.path.join(folder, "grafted.keras")
    subprocess.run([binary, "edit", source, "--drop-top", "--head", "gap,dense:5:softmax", "--freeze-base", "--seed", "0",
                    "-o", grafted, "--force"], check=True)
    if args.unfreeze_top:
        thawed = os.path.join(folder, "thawed.keras")
        subprocess.run([binary, "freeze", grafted, "--unfreeze-top", str(args.unfreeze_top),
                        "-o", thawed, "--force"], check=True)
        grafted = thawed
    size = 299 if args.model.startswith(("Inception", "Xception")) else 224
    random = np.random.default_rng(0)
    x = random.random((args.samples, size, size, 3), dtype=np.float32)
    y = random.integers(0, 5, args.samples)
    data = os.path.join(folder, "data.npz")
    np.savez(data, x=x, y=y)
    scion_times, keras_times = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run([binary, "finetune", grafted, "--data", data, "--epochs", str(args.epochs), "--batch-size", "32",
                        "-o", os.path.join(folder, "out.keras"), "--force"], check=True, capture_output=True)
        scion_times.append(time.perf_counter() - start)
        model = keras.models.load_model(grafted, compile=False)
        start = time.perf_counter()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0)
        keras_times.append(time.perf_counter() - start)
        keras.backend.clear_session()
    scion, fit = statistics.median(scion_times), statistics.median(keras_times)
    trained = "head" + (f" + top {args.unfreeze_top} layers" if args.unfreeze_top else "")
    print("| model | trained | samples | epochs | scion finetune, whole process (s) | Keras compile + fit (s) | speed-up |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.model} | {trained} | {args.samples} | {args.epochs} | {scion:.1f} | {fit:.1f} | {fit / scion:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
