"""`scion finetune` of text classifiers against Keras 3's fit(): backprop through time.

Each case builds a small text classifier in Keras 3 (int tokens -> Embedding -> a recurrent layer ->
Dense softmax), saves it, trains it with `scion finetune` and with Keras's fit() (same optimizer, rate,
full batches, no shuffling effect), and compares every tensor of every layer within 1e-4 relative and
the per-epoch losses. Frozen layers (the Embedding in one case) must come back bit-identical.

The masked case trains the `masked_text` fixture (Embedding mask_zero=True -> LSTM returning
sequences -> Bidirectional GRU -> GRU backwards with zero_output_for_mask -> SimpleRNN -> Dense) on
tokens with padding at the start, in the middle, at the end and a row of padding only: backprop
through time through Keras's mask, every cell. The masking_sequence fixture does the same with a
Masking layer's mask (float series, mse).

Called by check_finetune.py; `sequence_cases(scion, folder)` yields one bool per case.
"""
import json
import os
import subprocess

import numpy as np
import keras

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def masked_tokens(count, sequence, vocabulary, random):
    """Tokens 1..vocabulary-1 with padding (0) at the start, in the middle, at the end, in random
    places, and one row of padding only; labels from the tokens' sum."""
    x = random.integers(1, vocabulary, (count, sequence)).astype(np.int32)
    x[0::4, :2] = 0
    x[1::4, sequence // 2 - 1:sequence // 2 + 1] = 0
    x[2::4, -2:] = 0
    x[3::4][random.random((len(x[3::4]), sequence)) < 0.3] = 0
    x[-1] = 0
    y = (x.sum(axis=1) % 3).astype(np.int64)
    return x, y


def sequence_cases(scion, folder):
    random = np.random.default_rng(3)
    x = random.integers(1, 40, (32, 9)).astype(np.int32)
    y = (x[:, :3].sum(axis=1) % 3).astype(np.int64)
    # SimpleRNN and GRU(reset_after=False) are trained in check_finetune's rnn_* cases.
    for kind, frozen, optimizer, rate, epochs in (("lstm", False, "sgd", 0.5, 3), ("gru", True, "adam", 0.01, 3),
                                                  ("bidirectional", False, "sgd", 0.5, 3), ("stacked", False, "adam", 0.01, 2)):
        label = f"text classifier {kind}{' (Embedding frozen)' if frozen else ''}, {optimizer} lr {rate}"
        start = os.path.join(folder, f"text_{kind}.keras")
        build(kind, frozen).save(start)
        yield compare(scion, folder, label, start, x, y, optimizer, rate, epochs, trained="rnn")
    masked_x, masked_y = masked_tokens(24, 7, 20, random)
    yield compare(scion, folder, "masked_text (mask_zero: LSTM, Bidirectional GRU, GRU backwards, SimpleRNN), sgd lr 0.5",
                  os.path.join(ROOT, "fixtures", "keras3", "masked_text.keras"), masked_x, masked_y, "sgd", 0.5, 3,
                  trained="lstm_seq")
    # A Masking layer's mask (mask_value -0.5 on float series) instead of Embedding's, mse.
    series = random.standard_normal((16, 6, 3)).astype(np.float32)
    series[0::3, :2], series[1::3, -2:], series[2::3, 3:5], series[-1] = -0.5, -0.5, -0.5, -0.5
    yield compare(scion, folder, "masking_sequence (Masking -> LSTM, Bidirectional GRU, GRU), sgd lr 0.1, mse",
                  os.path.join(ROOT, "fixtures", "keras3", "masking_sequence.keras"), series,
                  random.standard_normal((16, 2)).astype(np.float32), "sgd", 0.1, 3, trained="lstm_seq", loss="mse")


def compare(scion, folder, label, start, x, y, optimizer, rate, epochs, trained, loss="sparse_categorical_crossentropy"):
    """Fine-tunes `start` with Scion and with Keras's fit() (full batches) and compares every tensor
    and the losses; `trained` names a recurrent layer whose weights must have moved."""
    data = os.path.join(folder, "tokens.npz")
    np.savez(data, x=x, y=y)
    name = os.path.splitext(os.path.basename(start))[0]
    out = os.path.join(folder, f"{name}_tuned.keras")
    result = subprocess.run([scion, "finetune", start, "--data", data, "--epochs", str(epochs), "--batch-size",
                             str(len(x)), "--learning-rate", str(rate), "--optimizer", optimizer, "-o", out,
                             "--loss", loss, "--force", "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FAIL {label}: {result.stderr.strip()}", flush=True)
        return False
    model = keras.models.load_model(start, compile=False)
    chosen = {"sgd": keras.optimizers.SGD(learning_rate=rate), "adam": keras.optimizers.Adam(learning_rate=rate)}[optimizer]
    model.compile(optimizer=chosen, loss=loss)
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
    moved = not all(np.array_equal(a, c) for a, c in zip(tuned.get_layer(trained).get_weights(),
                                                          original.get_layer(trained).get_weights()))
    ok = worst <= 1e-4 and losses <= 1e-4 and untouched and moved and report["verification"]["passed"]
    print(f"{'ok  ' if ok else 'FAIL'} {label}, {epochs} full-batch epochs: every tensor vs Keras's fit() relative "
          f"{worst:.2g}, losses {losses:.2g}, recurrent weights trained: {moved}, untouched tensors bit-identical: "
          f"{untouched}", flush=True)
    return ok
