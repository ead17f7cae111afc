"""`scion finetune` with Keras's augmentation layers, against Keras 3's fit() (called by check_finetune.py).

The model is the transfer-learning guide's (augmentation layers -> Rescaling -> a small frozen-BN conv
base -> GlobalAveragePooling2D -> Dropout -> Dense), built flat (the guide nests its base; flat layers
let the Keras reference without the augmentation layers take the same weights by name), with a 2-class softmax head.

(a) Augmentation off: Scion's `finetune --no-augment` against Keras fit() on the same model built without
    the augmentation layers (Dropout 0, full batches): every trained tensor within 1e-4 after a few SGD
    and Adam steps. (b) Augmentation on: a separable synthetic image task (stripes, horizontal or
    vertical); final validation accuracy of Scion (seeds 0-2) and Keras (seeds 0-2) averaged, within 2
    points. Augmentation draws are each tool's own (Scion's SplitMix64, JAX's), so only the statistics
    can agree. (c) `--augment ... --augment-into-model`: the written .keras and .h5 load in Keras 3 with the
    layers asked for (see augment_into_model).
"""
import json
import os
import subprocess
import warnings

import numpy as np
import keras


def relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-3)


def guide_model(augment, dropout, seed=0):
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = keras.Input((16, 16, 3), name="image")
    x = inputs
    if augment:
        x = L.RandomFlip("horizontal", name="flip")(x)
        x = L.RandomRotation(0.05, name="rotation")(x)
        x = L.RandomZoom(0.1, name="zoom")(x)
        x = L.RandomTranslation(0.1, 0.1, name="translation")(x)
        x = L.RandomContrast(0.2, name="contrast")(x)
        x = L.RandomBrightness(0.1, name="brightness")(x)
        x = L.GaussianNoise(0.9, name="noise")(x)
    x = L.Rescaling(1 / 127.5, offset=-1, name="rescale")(x)
    x = L.Conv2D(8, 3, activation="relu", name="conv1", trainable=False)(x)
    x = L.BatchNormalization(name="bn1", trainable=False)(x)
    x = L.Conv2D(8, 3, activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(dropout, name="drop")(x)
    outputs = L.Dense(2, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="transfer_guide_flat")


def stripes(count, seed):
    """Horizontal (0) or vertical (1) stripes of random frequency and phase, plus noise, in [0, 255]."""
    random = np.random.default_rng(seed)
    labels = random.integers(0, 2, count)
    grid = np.arange(16, dtype=np.float32)
    images = np.empty((count, 16, 16, 3), np.float32)
    for index, label in enumerate(labels):
        frequency, phase = random.uniform(0.12, 0.3), random.uniform(0, 2 * np.pi)
        wave = 127 + 60 * np.sin(2 * np.pi * frequency * grid + phase)
        plane = np.repeat(wave[:, None], 16, 1) if label == 0 else np.repeat(wave[None, :], 16, 0)
        images[index] = np.clip(plane[:, :, None] * random.uniform(0.6, 1.0, 3) + random.normal(0, 40, (16, 16, 3)), 0, 255)
    return images, labels


def weights_by_layer(model):
    return {layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()}


def augmentation_off(scion, folder):
    """(a): the same weights after a few steps, Scion with --no-augment against Keras without the layers."""
    x, y = stripes(48, 10)
    data = os.path.join(folder, "stripes_a.npz")
    np.savez(data, x=x, y=y)
    source = os.path.join(folder, "guide_a.keras")
    with_layers = guide_model(augment=True, dropout=0.0)
    with_layers.save(source)
    for optimizer, rate, epochs in (("sgd", 0.1, 3), ("adam", 0.01, 3)):
        out = os.path.join(folder, f"guide_a_{optimizer}.keras")
        result = subprocess.run([scion, "finetune", source, "--data", data, "--epochs", str(epochs), "--batch-size", str(len(x)),
                                 "--learning-rate", str(rate), "--optimizer", optimizer, "--no-augment", "-o", out,
                                 "--force", "--json"], capture_output=True, text=True)
        if result.returncode != 0:
            print(f"FAIL augmentation off, {optimizer}: {result.stderr.strip()}")
            yield False
            continue
        report = json.loads(result.stdout)
        plain = guide_model(augment=False, dropout=0.0)
        original = keras.models.load_model(source, compile=False)
        for layer in plain.layers:
            if layer.get_weights():
                layer.set_weights(original.get_layer(layer.name).get_weights())
        plain.compile(optimizer={"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[optimizer](learning_rate=rate),
                      loss="sparse_categorical_crossentropy")
        history = plain.fit(x, y, batch_size=len(x), epochs=epochs, shuffle=False, verbose=0).history["loss"]
        tuned = weights_by_layer(keras.models.load_model(out, compile=False))
        worst = max(relative(a, b) for name, tensors in weights_by_layer(plain).items() for a, b in zip(tuned[name], tensors))
        losses = relative([e["loss"] for e in report["history"]], history)
        ok = worst <= 1e-4 and losses <= 1e-4 and report["verification"]["passed"]
        print(f"{'ok  ' if ok else 'FAIL'} guide model, augmentation off ({optimizer} lr {rate}, {epochs} full-batch epochs): every "
              f"tensor vs Keras's fit() without the augmentation layers relative {worst:.2g}, losses {losses:.2g}", flush=True)
        yield ok


def augmentation_on(scion, folder, seeds=(0, 1, 2, 3), epochs=6):
    """(b): validation accuracy with augmentation, averaged over seeds, within 2 points of Keras's."""
    x, y = stripes(256, 20)
    vx, vy = stripes(128, 21)
    data, validation = os.path.join(folder, "stripes_b.npz"), os.path.join(folder, "stripes_b_val.npz")
    np.savez(data, x=x, y=y)
    np.savez(validation, x=vx, y=vy)
    scion_accuracy, keras_accuracy = [], []
    for seed in seeds:
        source = os.path.join(folder, f"guide_b_{seed}.keras")
        model = guide_model(augment=True, dropout=0.2, seed=seed)
        model.save(source)
        result = subprocess.run([scion, "finetune", source, "--data", data, "--validation", validation, "--epochs", str(epochs),
                                 "--batch-size", "32", "--learning-rate", "0.01", "--seed", str(seed), "-o",
                                 os.path.join(folder, f"guide_b_{seed}_out.keras"), "--force", "--json"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(f"FAIL augmentation on, seed {seed}: {result.stderr.strip()}")
            yield False
            return
        scion_accuracy.append(json.loads(result.stdout)["history"][-1]["val_accuracy"])
        keras.utils.set_random_seed(seed)
        model = keras.models.load_model(source, compile=False)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fitted = model.fit(x, y, batch_size=32, epochs=epochs, validation_data=(vx, vy), verbose=0)
        keras_accuracy.append(fitted.history["val_accuracy"][-1])
    gap = abs(np.mean(scion_accuracy) - np.mean(keras_accuracy)) * 100
    ok = gap <= 2
    print(f"{'ok  ' if ok else 'FAIL'} guide model, augmentation on (flip, rotation, zoom, translation, contrast, brightness, "
          f"noise; adam 0.01, {epochs} epochs of 256 stripe images): validation accuracy Scion "
          f"{[round(a, 3) for a in scion_accuracy]} mean {np.mean(scion_accuracy):.3f}, Keras "
          f"{[round(a, 3) for a in keras_accuracy]} mean {np.mean(keras_accuracy):.3f}: {gap:.1f} points apart (<= 2)", flush=True)
    yield ok


def augment_into_model(scion, folder):
    """(c) `finetune --augment ... --augment-into-model`: Keras 3 loads the written .keras and .h5 with
    real RandomFlip, RandomRotation... layers holding the factors asked for, and at inference (0 epochs:
    the weights as given) the file computes what the model given computes in Keras."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    model = os.path.join(root, "fixtures", "digits", "digits_cnn.h5")
    spec = "flip:horizontal,rotate:0.1,zoom:0.2,translate:0.1,contrast:0.3,brightness:0.2,noise:0.5"
    expected = [("RandomFlip", {"mode": "horizontal"}), ("RandomRotation", {"factor": (-0.1, 0.1), "fill_mode": "reflect"}),
                ("RandomZoom", {"height_factor": 0.2, "width_factor": None, "fill_mode": "reflect"}),
                ("RandomTranslation", {"height_factor": 0.1, "width_factor": 0.1}), ("RandomContrast", {"factor": (0.3, 0.3)}),
                ("RandomBrightness", {"factor": (-0.2, 0.2)}), ("GaussianNoise", {"stddev": 0.5})]
    x = np.random.default_rng(3).uniform(0, 255, (4, 8, 8, 1)).astype(np.float32)
    data = os.path.join(folder, "augment_into.npz")
    np.savez(data, x=x, y=np.array([0, 1, 2, 3]))
    given = np.asarray(keras.models.load_model(model, compile=False)(x, training=False))
    for name in ("into.keras", "into.h5"):
        out = os.path.join(folder, "augment_" + name)
        result = subprocess.run([scion, "finetune", model, "--data", data, "--epochs", "0", "--augment", spec, "--augment-into-model",
                                 "-o", out, "--force", "--json"], capture_output=True, text=True)
        if result.returncode != 0:
            print(f"FAIL --augment-into-model ({name}): {result.stderr.strip()}")
            yield False
            continue
        loaded = keras.models.load_model(out, compile=False)
        found = [(type(layer).__name__, {key: _plain(layer.get_config().get(key)) for key in settings})
                 for layer, (_, settings) in zip(loaded.layers[1:], expected)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras's note that an .h5 model's input structure is a list
            distance = relative(np.asarray(loaded(x, training=False)), given)
        ok = found == [(cls, {k: _plain(v) for k, v in settings.items()}) for cls, settings in expected] and distance <= 1e-6
        print(f"{'ok  ' if ok else 'FAIL'} --augment {spec} --augment-into-model ({name}): Keras 3 loads "
              f"{[cls for cls, _ in found]} with the factors asked for; at inference the model given's output "
              f"(relative {distance:.2g})" + ("" if ok else f": {found}"), flush=True)
        yield ok


def _plain(value):
    """Config values compared as Python numbers and tuples (Keras keeps floats and lists or tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(round(float(v), 6) for v in value)
    return round(float(value), 6) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def cases(scion, folder):
    yield from augmentation_off(scion, folder)
    yield from augmentation_on(scion, folder)
    yield from augment_into_model(scion, folder)
