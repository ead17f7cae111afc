"""`scion cut --drop-top` against Keras's own include_top=False, family by family.

For each keras.applications family (one model each; --all adds the siblings), at a small input with
weights=None: the include_top=True model is saved as .keras, cut by `scion cut --drop-top`, and the
cut file loaded in Keras must have exactly the layers (names, in order) of the include_top=False
model Keras builds. For a few, the outputs must match too: the include_top=False model gets the
include_top=True model's weights by layer name and both predict the same input.
Also: a text model (Embedding -> LSTM / Bidirectional(GRU) -> Dense...) keeps its recurrent layer
(opaque to Scion, weights written back) and predicts what Keras's feature model predicts; an
all-Dense MLP is refused with one line naming its layers, and nothing is written.

Run by check_surgery.py with KERAS_BACKEND=numpy (builds the big models ~6x faster than JAX; the
numbers are Keras's either way). Alone:
    KERAS_BACKEND=numpy /opt/scion-oracle-venv/bin/python Tests/Interop/check_drop_top.py [--all]
With --keras2, in the Keras 2 fixtures venv (not CI): tf_keras's families as .h5, plus ResNetRS and
RegNet, which only tf_keras has:
    /opt/scion-fixtures-venv/bin/python Tests/Interop/check_drop_top.py --keras2 [--all]
Prints one line per check (SCION_TIMING=1: and each case's seconds), then "drop-top: P passed,
F failed"; exits 1 on failures.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "numpy")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

KERAS2 = "--keras2" in sys.argv
if KERAS2:
    # tf_keras (the fixtures venv): .h5 files, and the families Keras 3 dropped (ResNetRS, RegNet).
    import tf_keras as keras  # noqa: E402
else:
    import keras  # noqa: E402

A = keras.applications
SUFFIX = ".h5" if KERAS2 else ".keras"
# (name, builder, input size, keyword arguments, compare outputs too). The smallest input each
# family accepts; width multipliers as small as Keras allows without pretrained weights.
FAMILIES = [
    ("VGG16", A.VGG16, 32, {}, False),
    ("ResNet50", A.ResNet50, 32, {}, False),
    ("ResNet50V2", A.ResNet50V2, 32, {}, True),
    ("InceptionV3", A.InceptionV3, 75, {}, False),
    ("InceptionResNetV2", A.InceptionResNetV2, 75, {}, False),
    ("Xception", A.Xception, 71, {}, False),
    ("MobileNet", A.MobileNet, 32, {"alpha": 0.25}, True),
    ("MobileNetV2", A.MobileNetV2, 32, {"alpha": 0.35}, False),
    ("MobileNetV3Small", A.MobileNetV3Small, 32, {"alpha": 0.75}, True),
    ("DenseNet121", A.DenseNet121, 32, {}, False),
    ("NASNetMobile", A.NASNetMobile, 32, {}, False),
    ("EfficientNetB0", A.EfficientNetB0, 32, {}, True),
    ("EfficientNetV2B0", A.EfficientNetV2B0, 32, {}, False),
    ("ConvNeXtTiny", A.ConvNeXtTiny, 32, {}, False),
]
SIBLINGS = [
    ("VGG19", A.VGG19, 32, {}, False), ("ResNet101", A.ResNet101, 32, {}, False),
    ("ResNet152V2", A.ResNet152V2, 32, {}, False), ("MobileNetV3Large", A.MobileNetV3Large, 32, {"alpha": 0.75}, True),
    ("DenseNet201", A.DenseNet201, 32, {}, False), ("NASNetLarge", A.NASNetLarge, 32, {}, False),
    ("EfficientNetB3", A.EfficientNetB3, 32, {}, False), ("EfficientNetV2S", A.EfficientNetV2S, 32, {}, False),
    ("ConvNeXtSmall", A.ConvNeXtSmall, 32, {}, False),
]
if KERAS2:
    FAMILIES += [("ResNetRS50", A.ResNetRS50, 32, {}, False), ("RegNetX002", A.RegNetX002, 32, {}, False),
                 ("RegNetY002", A.RegNetY002, 32, {}, True)]
# Keras's include_top=False ConvNeXt appends a LayerNormalization of the feature map that its
# include_top=True model does not have (its head normalises after pooling): a cut cannot keep it.
KERAS_ONLY_IN_NOTOP = {"ConvNeXt": {"layer_normalization"}}


def scion(*arguments):
    return subprocess.run([SCION, *arguments, "--force"], capture_output=True, text=True)


def relative(got, expected):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(got - expected))) / (float(np.max(np.abs(expected))) or 1.0)


def operation_names(model, prefix=""):
    """Every layer and op node (`x + 3.0`), nested models flattened as Scion writes them
    (`stem/conv` becomes `stem_conv`), in Keras's order."""
    names = []
    operations = model.operations if hasattr(model, "operations") else model.layers
    for operation in operations:
        if isinstance(operation, keras.Model):
            names += operation_names(operation, f"{prefix}{operation.name}_")
        elif not (prefix and isinstance(operation, keras.layers.InputLayer)):
            # Keras 3 refuses `/` in layer names (tf_keras's MobileNetV3 has `Conv/BatchNorm`).
            names.append((prefix + operation.name).replace("/", "_"))
    return names


def load_names(path):
    """The layers of a file Scion wrote, as Keras loads it; tf_keras cannot build some Keras 3 layers
    Scion writes (CustomScaleLayer), and then `scion inspect` lists them."""
    custom = {}
    if KERAS2:
        from tf_keras.src.applications import convnext
        custom = {"LayerScale": convnext.LayerScale, "StochasticDepth": convnext.StochasticDepth}
    try:
        model = keras.models.load_model(path, compile=False, custom_objects=custom)
        return model, operation_names(model)
    except Exception:  # noqa: BLE001 - fall back to Scion's own listing of the written file
        listing = subprocess.run([SCION, "inspect", path, "--json"], capture_output=True, text=True)
        return None, [layer["name"] for layer in json.loads(listing.stdout)["layers"]]


def check_family(folder, name, make, size, kwargs, numeric):
    keras.backend.clear_session()  # auto-generated names (re_lu_3...) restart, as in Keras's own notop
    top = make(weights=None, input_shape=(size, size, 3), classes=10, **kwargs)
    source, cut = os.path.join(folder, name + SUFFIX), os.path.join(folder, f"{name}_cut{SUFFIX}")
    top.save(source)
    keras.backend.clear_session()
    notop = make(weights=None, input_shape=(size, size, 3), include_top=False, **kwargs)
    expected = operation_names(notop)
    extra = next((names for family, names in KERAS_ONLY_IN_NOTOP.items() if name.startswith(family)), set())
    expected = [layer for layer in expected if layer not in extra]
    result = scion("cut", source, "--drop-top", "-o", cut)
    if result.returncode != 0:
        return [("FAIL", f"{name}: {(result.stderr.strip().splitlines() or ['failed'])[-1]}")]
    kept, got = load_names(cut)
    note = f" (Keras's notop also has {', '.join(sorted(extra))})" if extra else ""
    results = [("ok" if got == expected else "FAIL",
                f"{name}: cut keeps {len(got)} layers and ops, last {got[-1]}; include_top=False: {len(expected)}, last "
                f"{expected[-1]}{note}" + ("" if got == expected else
                                         f"; only Scion: {sorted(set(got) - set(expected))[:5]}, only Keras: "
                                         f"{sorted(set(expected) - set(got))[:5]}"))]
    if numeric and kept is not None and got == expected:
        for layer in notop.layers:
            layer.set_weights(top.get_layer(layer.name).get_weights())
        x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
        difference = relative(kept.predict(x, verbose=0), notop.predict(x, verbose=0))
        results.append(("ok" if difference <= 1e-4 else "FAIL",
                        f"{name}: cut predicts include_top=False's numbers (weights copied by name): relative {difference:.2g}"))
    return results


def text_models():
    """(name, model, the layer the classifier starts after)."""
    L = keras.layers
    inputs = keras.Input((12,), dtype="int32")
    x = L.Embedding(50, 8)(inputs)
    x = L.LSTM(6)(x)
    lstm = keras.Model(inputs, L.Dense(4, activation="softmax")(L.Dropout(0.2)(x)), name="text_lstm")
    inputs = keras.Input((12,), dtype="int32")
    x = L.Embedding(50, 8)(inputs)
    x = L.Bidirectional(L.GRU(5, return_sequences=True))(x)
    x = L.GRU(4, name="features")(x)
    x = L.Dense(16, activation="relu")(x)
    gru = keras.Model(inputs, L.Dense(3)(L.BatchNormalization()(x)), name="text_gru")
    return [("text_lstm", lstm, "lstm"), ("text_gru", gru, "features")]


def check_text(folder):
    results = []
    for name, model, feature in text_models():
        source, cut = os.path.join(folder, f"{name}.keras"), os.path.join(folder, f"{name}_cut.keras")
        model.save(source)
        result = scion("cut", source, "--drop-top", "-o", cut)
        if result.returncode != 0:
            results.append(("FAIL", f"{name}: {(result.stderr.strip().splitlines() or ['failed'])[-1]}"))
            continue
        kept = keras.models.load_model(cut, compile=False)
        x = np.random.default_rng(1).integers(0, 50, (2, 12)).astype(np.int32)
        expected = keras.Model(model.inputs, model.get_layer(feature).output).predict(x, verbose=0)
        difference = relative(kept.predict(x, verbose=0), expected)
        ok = kept.layers[-1].name == feature and difference <= 1e-5
        results.append(("ok" if ok else "FAIL", f"{name}: cut after {kept.layers[-1].name} (expected {feature}), "
                        f"relative {difference:.2g} vs Keras's feature model"))
    L = keras.layers
    inputs = keras.Input((10,))
    mlp = keras.Model(inputs, L.Dense(3)(L.Dense(8)(L.Dense(16, activation="relu")(inputs))), name="mlp")
    source, cut = os.path.join(folder, "mlp.keras"), os.path.join(folder, "mlp_cut.keras")
    mlp.save(source)
    result = scion("cut", source, "--drop-top", "-o", cut)
    lines = result.stderr.strip().splitlines()
    ok = (result.returncode == 1 and len(lines) == 1 and all(layer.name in lines[0] for layer in mlp.layers[1:])
          and not os.path.exists(cut))
    results.append(("ok" if ok else "FAIL", f"mlp (Dense x3): refused: {lines[0] if lines else '(no message)'}"))
    return results


def main():
    global SCION
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                        ".build", "debug", "scion"))
    parser.add_argument("--all", action="store_true", help="also the families' siblings (slower)")
    parser.add_argument("--keras2", action="store_true", help="tf_keras's applications as .h5 (fixtures venv)")
    args = parser.parse_args()
    SCION = args.scion
    counts = {"ok": 0, "FAIL": 0}
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        jobs = [(check_family, case) for case in FAMILIES + (SIBLINGS if args.all else [])]
        jobs += [] if KERAS2 else [(check_text, ())]
        for check, case in jobs:
            begun = time.time()
            try:
                results = check(folder, *case)
            except Exception as error:  # noqa: BLE001 - a crash is a failure of this case
                results = [("FAIL", f"{case[0] if case else 'text'}: {type(error).__name__}: {str(error)[:300]}")]
            for status, message in results:
                counts[status] += 1
                print(f"{status:4} drop-top {message}", flush=True)
            if os.environ.get("SCION_TIMING"):
                print(f"     {time.time() - begun:.1f} s", flush=True)
            for leftover in os.listdir(folder):
                os.remove(os.path.join(folder, leftover))
    print(f"drop-top: {counts['ok']} passed, {counts['FAIL']} failed in {time.time() - started:.0f} s")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
