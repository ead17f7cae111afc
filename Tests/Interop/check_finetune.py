"""`scion finetune` against Keras 3's own training of the same model on the same data.

A MobileNetV2 fixture gets a new head (`scion edit --drop-top --head gap,dense:3:softmax
--freeze-base`); Keras compiles the same file and fits it with full batches (no shuffling effect),
Scion fine-tunes it with the same optimizer, learning rate, epochs and batch size. The trained head
weights must agree within 1e-4 relative, the per-epoch losses too, and every frozen tensor in
Scion's output must be bit-identical to the input's.

Deeper training is compared the same way, every tensor of every layer (weights and BatchNormalization
moving statistics): the top of MobileNetV2's base made trainable (`scion freeze --unfreeze-top`:
depthwise and 1x1 convolutions, ReLU6, residual additions, BatchNormalization frozen or training with
batch statistics), the digits CNN trained from scratch (convolutions, training BatchNormalization, max
pooling), a MultiHeadAttention model trained end to end, and the two-phase recipe (`--unfreeze-top 4 --fine-tune-epochs`) against Keras's
recompile-and-fit.

Augmentation (finetune_augmentation.py): the transfer-learning guide's model with Keras's augmentation
layers, with augmentation off (every tensor within 1e-4 of Keras's fit() without the layers) and on
(validation accuracy averaged over seeds within 2 points of Keras's).

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
from finetune_augmentation import cases as augmentation_cases  # noqa: E402
from finetune_sequence_cases import sequence_cases  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) / (float(np.max(np.abs(b))) or 1.0)


def saved(folder, name, x, y):
    """x and y as NAME.npz in folder: the --data file `scion finetune` reads."""
    path = os.path.join(folder, f"{name}.npz")
    np.savez(path, x=x, y=y)
    return path


def keras3_fixture(name):
    return os.path.join(ROOT, "fixtures", "keras3", f"{name}.keras")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    args = parser.parse_args()
    passed = failed = 0
    with tempfile.TemporaryDirectory() as folder:
        base = os.path.join(folder, "grafted.keras")
        subprocess.run([args.scion, "edit", keras3_fixture("mobilenet_v2"), "--drop-top",
                        "--head", "gap,dense:3:softmax", "--freeze-base", "--seed", "0", "-o", base], check=True)
        random = np.random.default_rng(0)
        x = random.random((24, 32, 32, 3), dtype=np.float32)
        y = random.integers(0, 3, 24)
        data = saved(folder, "data", x, y)
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
            ok = (weights <= 1e-4 and losses <= 1e-4 and frozen_same and report["verification"]["passed"]
                  and changed(report) == ["dense/kernel", "dense/bias"])
            passed += ok
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {optimizer} lr {rate} {schedule}, {epochs} full-batch epochs: head weights vs Keras's fit() "
                  f"relative {weights:.2g}, losses {losses:.2g}, frozen tensors bit-identical: {frozen_same}", flush=True)
        for ok in deep_cases(args.scion, folder, base, x, y):
            passed += ok
            failed += not ok
        for cases in (keras_ops_cases, logits_cases, augmentation_cases, sequence_cases):
            for ok in cases(args.scion, folder):
                passed += ok
                failed += not ok
    print(f"finetune: {passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


def keras_ops_cases(scion, folder):
    """Models whose ops between layers are keras.ops calls, every layer trained, against Keras's
    fit(): a tiny ViT (attention as matmul, softmax, transpose, reshape, slicing; erf GELU) grafted
    with a softmax head, and the op zoo (slicing with steps and newaxis, reductions, cast, squeeze,
    sqrt, maximum...) regressed with mse on its 699 outputs: gradients through every op."""
    random = np.random.default_rng(1)
    vit = os.path.join(folder, "vit.keras")
    subprocess.run([scion, "edit", keras3_fixture("kerasops_vit"), "--drop-top",
                    "--head", "gap,dense:3:softmax", "--seed", "0", "-o", vit, "--force"], check=True, capture_output=True)
    cases = [("kerasops_vit + softmax head", vit, random.standard_normal((16, 8, 8, 3)).astype(np.float32),
              random.integers(0, 3, 16), "sparse_categorical_crossentropy", 0.1),
             ("kerasops_zoo, mse", keras3_fixture("kerasops_zoo"),
              random.standard_normal((8, 6, 8)).astype(np.float32), random.standard_normal((8, 699)).astype(np.float32),
              "mse", 0.01)]
    for label, start, x, y, loss, rate in cases:
        error, _, losses, worst, _ = three_sgd_epochs(scion, folder, "ops", start, x, y, loss, loss, rate)
        if error:
            print(f"FAIL {label}: {error}")
            yield False
            continue
        ok = worst <= 1e-4 and losses <= 1e-4
        print(f"{'ok  ' if ok else 'FAIL'} {label}, every layer trained, sgd lr {rate}, 3 full-batch epochs: every tensor "
              f"vs Keras's fit() relative {worst:.2g}, losses {losses:.2g}", flush=True)
        yield ok


def three_sgd_epochs(scion, folder, name, start, x, y, loss, keras_loss, rate):
    """Trains `start` on (x, y) for 3 full-batch SGD epochs with `scion finetune --loss loss` and with
    Keras's fit() (`keras_loss`). Returns Scion's error (None when it trained), its --json report, the
    per-epoch losses' relative difference, every tensor's (compare_all) and Keras's losses."""
    data, out = saved(folder, f"{name}_data", x, y), os.path.join(folder, f"{name}_out.keras")
    result = subprocess.run([scion, "finetune", start, "--data", data, "--epochs", "3", "--batch-size", str(len(x)),
                             "--learning-rate", str(rate), "--optimizer", "sgd", "--loss", loss, "-o", out, "--force",
                             "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        return result.stderr.strip(), None, None, None, None
    model = keras.models.load_model(start, compile=False)
    model.compile(optimizer=keras_optimizer("sgd", rate), loss=keras_loss)
    history = model.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0).history["loss"]
    report = json.loads(result.stdout)
    losses = relative([e["loss"] for e in report["history"]], history)
    worst, _ = compare_all(keras.models.load_model(out, compile=False), model, keras.models.load_model(start, compile=False))
    return None, report, losses, worst, history


def logits_cases(scion, folder):
    """Heads that end in logits (no softmax or sigmoid, as torch exports them): Scion's loss must read
    them as Keras's from_logits=True does, for both cross-entropies; read as probabilities, the loss
    would be ~0 for any score above 1."""
    random = np.random.default_rng(2)
    x = random.standard_normal((16, 8, 8, 3)).astype(np.float32)
    cases = [("dense:3 logits, sparse_categorical_crossentropy", "gap,dense:3", random.integers(0, 3, 16),
              "sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
             ("dense:1 logit, binary_crossentropy", "gap,dense:1", random.integers(0, 2, (16, 1)).astype(np.float32),
              "binary_crossentropy", keras.losses.BinaryCrossentropy(from_logits=True))]
    for label, head, y, loss, keras_loss in cases:
        start = os.path.join(folder, "logits.keras")
        subprocess.run([scion, "edit", keras3_fixture("kerasops_vit"), "--drop-top", "--head", head, "--freeze-base",
                        "--seed", "0", "-o", start, "--force"], check=True, capture_output=True)
        error, report, losses, worst, history = three_sgd_epochs(scion, folder, "logits", start, x, y, loss, keras_loss, 0.5)
        if error:
            print(f"FAIL {label}: {error}")
            yield False
            continue
        said = all(phase.get("lossFromLogits") for phase in report["phases"])
        ok = worst <= 1e-4 and losses <= 1e-4 and said
        print(f"{'ok  ' if ok else 'FAIL'} {label}: losses vs Keras's fit(from_logits=True) relative {losses:.2g} "
              f"({history[0]:.3g} first), trained tensors {worst:.2g}, reported as logits: {said}", flush=True)
        yield ok


def changed(report):
    """The tensors Scion's own verification found changed in the file it wrote (it also checked that
    every frozen one is byte-identical: report["verification"]["passed"])."""
    return [tensor["name"] for tensor in report["verification"]["trained"] if not tensor["identical"]]


def keras_optimizer(name, rate, momentum=0.0):
    return {"sgd": lambda: keras.optimizers.SGD(learning_rate=rate, momentum=momentum),
            "adam": lambda: keras.optimizers.Adam(learning_rate=rate)}[name]()


def compare_all(tuned, reference, original, ignore=()):
    """Largest relative difference over every tensor of every layer (trained weights and moving
    statistics), and whether each tensor Keras left alone is bit-identical to the original in Scion's output.
    Relative to max|b|, but at least 1e-3: a bias before a training BatchNormalization has a zero
    gradient in exact arithmetic, so its values are float noise (~1e-9) in both tools."""
    worst, frozen_same = 0.0, True
    for layer in reference.layers:
        mine, theirs, before = (m.get_layer(layer.name).get_weights() for m in (tuned, reference, original))
        for index, (a, b, c) in enumerate(zip(mine, theirs, before)):
            if (layer.name, index) in ignore:
                continue
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            worst = max(worst, float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-3))
            if np.array_equal(b, c):
                frozen_same = frozen_same and np.array_equal(a, c)
    return worst, frozen_same


def deep_cases(scion, folder, grafted, x, y):
    """Training through the base: every tensor against Keras's fit() with full batches."""
    # The demo's digits files, shipped as the scion command's package resources.
    digits = os.path.join(ROOT, "Sources", "ScionCommand", "Resources", "digits")
    fewshot = np.load(os.path.join(digits, "fewshot.npz"))
    dx, dy = fewshot["x"], fewshot["y"]
    digits_data = os.path.join(digits, "fewshot.npz")
    data = os.path.join(folder, "data.npz")
    cases = []
    for name, keep_bn, optimizer, rate, epochs, tolerance in (
            ("MobileNetV2 top 24 layers, BatchNormalization frozen", True, "sgd", 0.1, 3, 1e-4),
            ("MobileNetV2 top 24 layers, BatchNormalization frozen", True, "adam", 1e-3, 2, 1e-4)):
        start = os.path.join(folder, "deep.keras")
        subprocess.run([scion, "freeze", grafted, "--unfreeze-top", "24", "-o", start, "--force"]
                       + ([] if keep_bn else ["--train-batch-norm"]), check=True, capture_output=True)
        cases.append((f"{name}, {optimizer} lr {rate}", start, data, x, y, optimizer, rate, epochs, tolerance, []))
    scratch = os.path.join(digits, "digits_scratch.keras")
    # MobileNetV2's random-weight fixture collapses to nearly constant activations at 1x1 (batch
    # variance ~0), where training-mode BatchNormalization only amplifies float noise; the digits CNN,
    # trained by Keras, has well-spread activations.
    cases.append(("digits CNN from scratch (conv, BatchNormalization training, max pooling), sgd momentum 0.9 lr 0.05",
                  scratch, digits_data, dx, dy, "sgd", 0.05, 3, 1e-4, ["--momentum", "0.9"]))
    # Adam divides each step by sqrt(v): elements with near-zero gradients amplify float differences,
    # so its cases allow 1e-3. With Adam, the biases of the convolutions before those BatchNormalizations (which subtract the
    # batch mean, so the biases cannot change the output) get gradients of pure float noise that
    # Adam's normalized step turns into +-lr in either direction, in Keras as in Scion: not compared.
    cases.append(("digits CNN from scratch (conv, BatchNormalization training, max pooling), adam lr 0.001 "
                  "(biases before BatchNormalization not compared)",
                  scratch, digits_data, dx, dy, "adam", 0.001, 3, 1e-3, []))
    # Attention trained end to end (the embedding frozen): MultiHeadAttention's four projections,
    # residual, LayerNormalization and a new softmax head.
    attention = os.path.join(folder, "attention.keras")
    subprocess.run([scion, "edit", keras3_fixture("attention"), "--after", "pool", "--head",
                    "dense:3:softmax", "--seed", "1", "-o", attention, "--force"], check=True, capture_output=True)
    tokens = np.random.default_rng(1).integers(0, 30, (16, 6)).astype(np.int32)
    labels = np.random.default_rng(2).integers(0, 3, 16)
    tokens_data = saved(folder, "tokens", tokens, labels)
    cases.append(("attention: MultiHeadAttention, LayerNormalization and head trained, adam lr 0.01",
                  attention, tokens_data, tokens, labels, "adam", 0.01, 3, 1e-4, []))
    # Recurrent layers: backprop through time against Keras's fit(), every cell, direction, merge mode
    # and returned state of the rnn_* fixtures. (text_rnn is left out: its Dropout draws other random
    # masks in Keras than in Scion.) Tokens in [0, 20), three classes.
    text_random = np.random.default_rng(1)
    tokens = text_random.integers(0, 20, (24, 7)).astype(np.int32)
    labels = text_random.integers(0, 3, 24)
    text_data = saved(folder, "text", tokens, labels)
    # One optimizer per fixture, alternating (finetune_sequence_cases.py trains each cell with both).
    sgd, adam = ("sgd", 0.1, 1e-4), ("adam", 0.01, 1e-3)
    for name, (optimizer, rate, tolerance) in (("rnn_simple", sgd), ("rnn_lstm", adam), ("rnn_gru", sgd),
                                               ("rnn_bidirectional", adam), ("rnn_states", sgd)):
        cases.append((f"{name} (recurrent, backprop through time), {optimizer} lr {rate}",
                      keras3_fixture(name), text_data, tokens, labels, optimizer, rate, 3, tolerance, []))
    # Attention (dot with use_scale, concat) and AdditiveAttention as self-attention, every layer trained.
    series = np.random.default_rng(5).standard_normal((16, 6, 4)).astype(np.float32)
    series_labels = np.random.default_rng(6).integers(0, 3, 16)
    cases.append(("self_attention (Attention, AdditiveAttention), sgd lr 0.1", keras3_fixture("self_attention"),
                  saved(folder, "series", series, series_labels), series, series_labels, "sgd", 0.1, 3, 1e-4, []))
    # TimeDistributed(Conv2D / MaxPooling2D / Flatten / Dense) over video frames: the Reshapes folding
    # the frames into the batch are trained through (and never cached as per-sample features).
    frames = np.random.default_rng(3).random((8, 4, 16, 16, 3)).astype(np.float32)
    frame_labels = np.random.default_rng(4).integers(0, 3, 8)
    cases.append(("time_distributed_frames (TimeDistributed CNN per frame, LSTM), adam lr 0.01",
                  keras3_fixture("time_distributed_frames"), saved(folder, "frames", frames, frame_labels), frames, frame_labels,
                  "adam", 0.01, 3, 1e-4, []))
    # ConvLSTM2D: backprop through time through the input's and the state's convolutions.
    video_random = np.random.default_rng(3)
    clips = video_random.standard_normal((12, 3, 8, 8, 2)).astype(np.float32)
    clip_labels = video_random.integers(0, 3, 12)
    cases.append(("conv_lstm (ConvLSTM2D, backprop through time), adam lr 0.01", keras3_fixture("conv_lstm"),
                  saved(folder, "video", clips, clip_labels), clips, clip_labels, "adam", 0.01, 3, 1e-4, []))
    for label, start, data_file, inputs, targets, optimizer, rate, epochs, tolerance, extra in cases:
        out = os.path.join(folder, "deep_out.keras")
        result = subprocess.run([scion, "finetune", start, "--data", data_file, "--epochs", str(epochs), "--batch-size",
                                 str(len(inputs)), "--learning-rate", str(rate), "--optimizer", optimizer, "-o", out,
                                 "--force", "--json"] + extra, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"FAIL {label}: {result.stderr.strip()}")
            yield False
            continue
        model = keras.models.load_model(start, compile=False)
        model.compile(optimizer=keras_optimizer(optimizer, rate, 0.9 if extra else 0.0), loss="sparse_categorical_crossentropy")
        history = model.fit(inputs, targets, batch_size=len(inputs), epochs=epochs, shuffle=False, verbose=0).history["loss"]
        report = json.loads(result.stdout)
        losses = relative([e["loss"] for e in report["history"]], history)
        ignore = {(f"conv{i}", 1) for i in (1, 2, 3)} if "biases before" in label else ()
        worst, frozen_same = compare_all(keras.models.load_model(out, compile=False), model,
                                         keras.models.load_model(start, compile=False), ignore)
        ok = worst <= tolerance and losses <= 1e-4 and frozen_same and report["verification"]["passed"]
        print(f"{'ok  ' if ok else 'FAIL'} {label}, {epochs} full-batch epochs: every tensor vs Keras's fit() relative "
              f"{worst:.2g} (<= {tolerance:g}), losses {losses:.2g}, untouched tensors bit-identical: {frozen_same}", flush=True)
        yield ok
    # The two-phase recipe: head, then the top 4 layers of the base (BatchNormalization kept frozen)
    # at a lower rate with a fresh optimizer, as recompiling does in Keras.
    start = os.path.join(folder, "digits_grafted.keras")
    subprocess.run([scion, "edit", os.path.join(digits, "digits_cnn.keras"), "--after", "gap", "--head", "dense:5:softmax",
                    "--freeze-base", "--seed", "1", "-o", start, "--force"], check=True, capture_output=True)
    out = os.path.join(folder, "two_phase.keras")
    result = subprocess.run([scion, "finetune", start, "--data", digits_data, "--epochs", "3", "--batch-size", str(len(dx)),
                             "--learning-rate", "0.01", "--unfreeze-top", "4", "--fine-tune-epochs", "2",
                             "--fine-tune-learning-rate", "0.001", "-o", out, "--force", "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FAIL digits two-phase: {result.stderr.strip()}")
        yield False
        return
    model = keras.models.load_model(start, compile=False)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    first = model.fit(dx, dy, batch_size=len(dx), epochs=3, shuffle=False, verbose=0).history["loss"]
    base = [layer for layer in model.layers if layer.name != "dense"]
    for layer in base[-4:]:
        if not isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy")
    second = model.fit(dx, dy, batch_size=len(dx), epochs=2, shuffle=False, verbose=0).history["loss"]
    report = json.loads(result.stdout)
    losses = relative([e["loss"] for e in report["history"]], first + second)
    worst, frozen_same = compare_all(keras.models.load_model(out, compile=False), model, keras.models.load_model(start, compile=False))
    unfrozen = report["phases"][1]["unfrozen"]
    ok = worst <= 1e-3 and losses <= 1e-4 and frozen_same and unfrozen == ["conv3"] and report["verification"]["passed"]
    print(f"{'ok  ' if ok else 'FAIL'} digits two-phase (head 3 epochs adam 0.01, then top 4 layers {unfrozen} 2 epochs at 0.001): "
          f"every tensor vs Keras relative {worst:.2g}, losses {losses:.2g}, untouched tensors bit-identical: {frozen_same}", flush=True)
    yield ok


if __name__ == "__main__":
    sys.exit(main())
