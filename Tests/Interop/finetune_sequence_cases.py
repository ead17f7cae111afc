"""`scion finetune` of text classifiers against Keras 3's fit(): backprop through time.

Each case builds a small text classifier in Keras 3 (int tokens -> Embedding -> a recurrent layer ->
Dense softmax), saves it, trains it with `scion finetune` and with Keras's fit() (same optimizer, rate,
full batches, no shuffling effect), and compares every tensor of every layer within 1e-4 relative and
the per-epoch losses. Frozen layers (the Embedding in one case) must come back bit-identical.

Called by check_finetune.py; `sequence_cases(scion, folder)` yields one bool per case.
"""
import json
import os
import subprocess

import numpy as np
import keras


def build(kind, frozen_embedding):
    L = keras.layers
    keras.utils.set_random_seed(7)
    inputs = keras.Input((9,), dtype="int32", name="tokens")
    x = L.Embedding(40, 8, name="embed", trainable=not frozen_embedding)(inputs)
    x = {"lstm": lambda t: L.LSTM(6, name="rnn")(t),
         "gru": lambda t: L.GRU(6, name="rnn")(t),
         "gru_v1": lambda t: L.GRU(6, reset_after=False, name="rnn")(t),
         "simple": lambda t: L.SimpleRNN(6, name="rnn")(t),
         "bidirectional": lambda t: L.Bidirectional(L.LSTM(5, return_sequences=True), name="rnn")(t),
         "stacked": lambda t: L.GRU(4, go_backwards=True, name="rnn2")(
             L.LSTM(5, return_sequences=True, name="rnn")(t))}[kind](x)
    if kind == "bidirectional":
        x = L.GlobalAveragePooling1D(name="pool")(x)
    outputs = L.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name=f"text_{kind}")


def sequence_cases(scion, folder):
    random = np.random.default_rng(3)
    x = random.integers(1, 40, (32, 9)).astype(np.int32)
    y = (x[:, :3].sum(axis=1) % 3).astype(np.int64)
    data = os.path.join(folder, "tokens.npz")
    np.savez(data, x=x, y=y)
    # SimpleRNN and GRU(reset_after=False) are trained in check_finetune's rnn_* cases.
    for kind, frozen, optimizer, rate, epochs in (("lstm", False, "sgd", 0.5, 3), ("gru", True, "adam", 0.01, 3),
                                                  ("bidirectional", False, "sgd", 0.5, 3), ("stacked", False, "adam", 0.01, 2)):
        label = f"text classifier {kind}{' (Embedding frozen)' if frozen else ''}, {optimizer} lr {rate}"
        start = os.path.join(folder, f"text_{kind}.keras")
        build(kind, frozen).save(start)
        out = os.path.join(folder, f"text_{kind}_tuned.keras")
        result = subprocess.run([scion, "finetune", start, "--data", data, "--epochs", str(epochs), "--batch-size",
                                 str(len(x)), "--learning-rate", str(rate), "--optimizer", optimizer, "-o", out,
                                 "--force", "--json"], capture_output=True, text=True)
        if result.returncode != 0:
            print(f"FAIL {label}: {result.stderr.strip()}", flush=True)
            yield False
            continue
        model = keras.models.load_model(start, compile=False)
        chosen = {"sgd": keras.optimizers.SGD(learning_rate=rate), "adam": keras.optimizers.Adam(learning_rate=rate)}[optimizer]
        model.compile(optimizer=chosen, loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=len(x), epochs=epochs, shuffle=False, verbose=0).history["loss"]
        report = json.loads(result.stdout)
        mine = np.asarray([e["loss"] for e in report["history"]], np.float64)
        losses = float(np.max(np.abs(mine - history))) / float(np.max(np.abs(history)))
        tuned, original = keras.models.load_model(out, compile=False), keras.models.load_model(start, compile=False)
        worst, untouched = 0.0, True
        for layer in model.layers:
            for a, b, c in zip(tuned.get_layer(layer.name).get_weights(), layer.get_weights(),
                               original.get_layer(layer.name).get_weights()):
                a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
                worst = max(worst, float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-3))
                if np.array_equal(b, c):
                    untouched = untouched and np.array_equal(a, c)
        moved = not all(np.array_equal(a, c) for a, c in zip(tuned.get_layer("rnn").get_weights(),
                                                              original.get_layer("rnn").get_weights()))
        ok = worst <= 1e-4 and losses <= 1e-4 and untouched and moved and report["verification"]["passed"]
        print(f"{'ok  ' if ok else 'FAIL'} {label}, {epochs} full-batch epochs: every tensor vs Keras's fit() relative "
              f"{worst:.2g}, losses {losses:.2g}, recurrent weights trained: {moved}, untouched tensors bit-identical: "
              f"{untouched}", flush=True)
        yield ok
