#!/usr/bin/env python3
"""Recurrent dropout in training: Keras 3's fit() and `scion finetune` on the same small text task.

Random draws cannot match between the tools, so the weights cannot be compared; what must agree is
what dropout does to training. The model is Keras's typical text classifier,
Embedding(mask_zero=True) -> LSTM(dropout, recurrent_dropout) -> Dense(softmax) (or GRU / SimpleRNN
with --cell), the task a learnable one: sequences of 4 to 12 tokens padded with 0 at the end, the
label the group (tokens 1-9, 10-19, 20-29) that occurs most. Both tools start from the very same
file (same initial weights), train with Adam, shuffled batches, and are measured by Keras's
predict() on the same held-out sequences (Scion's output file loaded by Keras). The last epoch's
training loss, which both tools measure with dropout active, shows the dropping itself: it rises
with the rates, and must rise the same way in both.

Usage (repo root):
  KERAS_BACKEND=jax .build/oracle-venv/bin/python bench/rnn_dropout_accuracy.py
      [--seeds 0,1,2] [--cell lstm] [--dropout 0.2] [--recurrent-dropout 0.2] [--epochs 15]
      [--scion .build/debug/scion]
Prints one line per seed and the means.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
import keras  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQUENCE, VOCABULARY = 12, 30


def data(count, random):
    x = random.integers(1, VOCABULARY, (count, SEQUENCE)).astype(np.int32)
    lengths = random.integers(4, SEQUENCE + 1, count)
    for row, length in enumerate(lengths):
        x[row, length:] = 0
    counts = np.stack([((x >= low) & (x < low + 10) & (x > 0)).sum(axis=1) for low in (0, 10, 20)], axis=1)
    return x, np.argmax(counts + random.random(counts.shape) * 0.1, axis=1).astype(np.int64)


def build(cell, dropout, recurrent_dropout, seed):
    keras.utils.set_random_seed(seed)
    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple": keras.layers.SimpleRNN}[cell]
    inputs = keras.Input((SEQUENCE,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCABULARY, 8, mask_zero=True, name="embed")(inputs)
    x = layer(16, dropout=dropout, recurrent_dropout=recurrent_dropout, name="rnn")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="dropout_text")


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cell", default="lstm", choices=("lstm", "gru", "simple"))
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--recurrent-dropout", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    args = parser.parse_args()
    random = np.random.default_rng(0)
    x, y = data(400, random)
    test_x, test_y = data(400, random)
    keras_scores, scion_scores, keras_losses, scion_losses = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        train = os.path.join(folder, "train.npz")
        np.savez(train, x=x, y=y)
        for seed in (int(s) for s in args.seeds.split(",")):
            start, out = os.path.join(folder, f"start{seed}.keras"), os.path.join(folder, f"tuned{seed}.keras")
            build(args.cell, args.dropout, args.recurrent_dropout, seed).save(start)
            result = subprocess.run([args.scion, "finetune", start, "--data", train, "--epochs", str(args.epochs),
                                     "--batch-size", "32", "--learning-rate", "0.01", "--optimizer", "adam",
                                     "--seed", str(seed), "-o", out, "--force", "--json"], capture_output=True, text=True)
            if result.returncode != 0:
                print(f"scion finetune failed: {result.stderr.strip()}")
                return 1
            scion_losses.append(json.loads(result.stdout)["history"][-1]["loss"])
            scion_scores.append(accuracy(keras.models.load_model(out, compile=False), test_x, test_y))
            model = keras.models.load_model(start, compile=False)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
            keras.utils.set_random_seed(seed)
            history = model.fit(x, y, batch_size=32, epochs=args.epochs, shuffle=True, verbose=0).history["loss"]
            keras_losses.append(history[-1])
            keras_scores.append(accuracy(model, test_x, test_y))
            print(f"seed {seed}: test accuracy Keras {keras_scores[-1]:.3f}, Scion {scion_scores[-1]:.3f}; last epoch's "
                  f"training loss Keras {keras_losses[-1]:.4f}, Scion {scion_losses[-1]:.4f}", flush=True)
    print(f"{args.cell} dropout {args.dropout} recurrent_dropout {args.recurrent_dropout}, {args.epochs} epochs, "
          f"{len(keras_scores)} seeds: mean test accuracy Keras {np.mean(keras_scores):.3f}, Scion {np.mean(scion_scores):.3f}; "
          f"last epoch's training loss Keras {np.mean(keras_losses):.4f}, Scion {np.mean(scion_losses):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
