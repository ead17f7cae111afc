"""`scion finetune` against Keras 3's own training of the same model on the same data.

A MobileNetV2 fixture gets a new head (`scion edit --drop-top --head gap,dense:3:softmax
--freeze-base`); Keras compiles the same file and fits it with full batches (no shuffling effect),
Scion fine-tunes it with the same optimizer, learning rate, epochs and batch size. The trained head
weights must agree within 1e-4 relative, the per-epoch losses too, and every frozen tensor in
Scion's output must be bit-identical to the input's.

Usage: KERAS_BACKEND=jax /opt/scion-oracle-venv/bin/python Tests/Interop/check_finetune.py [--scion PATH]
Prints one line per case and "finetune: P passed, F failed, S skipped"; exits 1 on failures.
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) / (float(np.max(np.abs(b))) or 1.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    args = parser.parse_args()
    passed = failed = 0
    with tempfile.TemporaryDirectory() as folder:
        base = os.path.join(folder, "grafted.keras")
        subprocess.run([args.scion, "edit", os.path.join(ROOT, "fixtures", "keras3", "mobilenet_v2.keras"), "--drop-top",
                        "--head", "gap,dense:3:softmax", "--freeze-base", "--seed", "0", "-o", base], check=True)
        random = np.random.default_rng(0)
        x = random.random((24, 32, 32, 3), dtype=np.float32)
        y = random.integers(0, 3, 24)
        data = os.path.join(folder, "data.npz")
        np.savez(data, x=x, y=y)
        cases = (("sgd", 0.5, 3, "constant"), ("adam", 0.01, 4, "constant"), ("adamw", 0.01, 4, "cosine"),
                 ("sgd", 0.5, 3, "step"))
        for optimizer, rate, epochs, schedule in cases:
            out = os.path.join(folder, f"tuned_{optimizer}_{schedule}.keras")
            extra = ["--decay-epochs", "1", "--decay-rate", "0.5"] if schedule == "step" else []
            result = subprocess.run([args.scion, "finetune", base, "--data", data, "--epochs", str(epochs), "--batch-size", "24",
                                     "--learning-rate", str(rate), "--optimizer", optimizer, "--schedule", schedule, "-o", out,
                                     "--force", "--json"] + extra, capture_output=True, text=True)
            if result.returncode != 0:
                failed += 1
                print(f"FAIL {optimizer}: {result.stderr.strip()}")
                continue
            report = json.loads(result.stdout)
            model = keras.models.load_model(base, compile=False)
            # One full batch per epoch: `epochs` updates in all.
            learning_rate = {"constant": rate,
                             "cosine": keras.optimizers.schedules.CosineDecay(rate, decay_steps=epochs),
                             "step": keras.optimizers.schedules.ExponentialDecay(rate, decay_steps=1, decay_rate=0.5,
                                                                                 staircase=True)}[schedule]
            keras_optimizer = {"sgd": lambda: keras.optimizers.SGD(learning_rate=learning_rate),
                               "adam": lambda: keras.optimizers.Adam(learning_rate=learning_rate),
                               "adamw": lambda: keras.optimizers.AdamW(learning_rate=learning_rate)}[optimizer]()
            model.compile(optimizer=keras_optimizer, loss="sparse_categorical_crossentropy")
            history = model.fit(x, y, batch_size=24, epochs=epochs, shuffle=False, verbose=0).history["loss"]
            tuned = keras.models.load_model(out, compile=False)
            weights = max(relative(a, b) for a, b in zip(tuned.layers[-1].get_weights(), model.layers[-1].get_weights()))
            losses = relative([e["loss"] for e in report["history"]], history)
            original = keras.models.load_model(base, compile=False)
            frozen_same = all(np.array_equal(a, b) for layer, before in zip(tuned.layers[:-1], original.layers[:-1])
                              for a, b in zip(layer.get_weights(), before.get_weights()))
            ok = weights <= 1e-4 and losses <= 1e-4 and frozen_same and report["weightsChanged"] == ["dense/kernel", "dense/bias"]
            passed += ok
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {optimizer} lr {rate} {schedule}, {epochs} full-batch epochs: head weights vs Keras's fit() "
                  f"relative {weights:.2g}, losses {losses:.2g}, frozen tensors bit-identical: {frozen_same}", flush=True)
    print(f"finetune: {passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
