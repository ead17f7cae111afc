"""Transfer-learning surgery (`scion cut`, `scion edit`) checked against Keras 3 and onnxruntime.

Keras models (fixtures, or the full-size keras.applications with --applications):
  1. `cut --after FEATURE` (the layer include_top=False, pooling="avg" ends at) written as .keras and
     .onnx must give what Keras's own feature model gives: keras.Model(model.input,
     model.get_layer(FEATURE).output) on the source model.
  2. `edit --drop-top --head gap,dense:N:softmax --freeze-base` must load in Keras with the head's
     parameters as the only trainable ones and the total of the model Keras builds the same way
     (base cut at TOP, GlobalAveragePooling2D, Dense(N, softmax), base.trainable = False); its
     outputs, in Keras and in onnxruntime, must equal softmax(mean(features) @ W + b) computed from
     Keras's TOP features and the head's written weights (the pooled features compared too).
ONNX models (tf2onnx's, torch's): cut at a node name and graft a head; the cut must give what
onnxruntime gives for that node's output on the source, in onnxruntime and in Keras. torch's text
encoders: `edit --drop-top --head gap,...` must pool their (batch, steps, features) over the steps.
`--drop-top` against keras.applications (check_drop_top.py, run in a child process with Keras's numpy
backend, which builds the models about 6x faster than JAX): every family's include_top=True model cut
by Scion must keep exactly the layers of its include_top=False model; also a text model and a refusal.

Usage: KERAS_BACKEND=jax /opt/scion-oracle-venv/bin/python Tests/Interop/check_surgery.py [--applications]
Prints one line per check and "surgery: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import keras  # noqa: E402
from fixture_arrays import arrays  # noqa: E402

ort.set_default_logger_severity(3)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures")

# (source, reference folder, name, FEATURE layer or None, TOP layer --drop-top must find)
KERAS_CASES = [
    ("keras2/mobilenet_v2.h5", "keras2", "mobilenet_v2", "global_average_pooling2d", "out_relu"),
    ("keras3/mobilenet_v2.keras", "keras3", "mobilenet_v2", "global_average_pooling2d", "out_relu"),
    # A ViT whose attention is keras.ops: its token features end at an operation node (`x + mlp`),
    # its pooling is `keras.ops.mean` over the tokens.
    ("keras3/kerasops_vit.keras", "keras3", "kerasops_vit", "mean", "add_2"),
]
APPLICATION_CASES = [
    ("applications/keras2/ResNet50.h5", "applications/keras2", "ResNet50", "avg_pool", "conv5_block3_out"),
    ("applications/keras2/MobileNetV2.h5", "applications/keras2", "MobileNetV2", "global_average_pooling2d", "out_relu"),
    ("applications/keras3/InceptionV3.keras", "applications/keras3", "InceptionV3", "avg_pool", "mixed10"),
    ("applications/keras3/EfficientNetB0.keras", "applications/keras3", "EfficientNetB0", "avg_pool", "top_activation"),
    ("applications/keras2/VGG16.h5", "applications/keras2", "VGG16", None, "block5_pool"),
]
# (source, node to cut after)
ONNX_CASES = [
    ("tf2onnx/mobilenet_v2.onnx", "mobilenetv2_0.25_32/global_average_pooling2d/Mean"),
    ("torch/tiny_resnet.onnx", "/pool/GlobalAveragePool"),
]
# (source, node whose output `cut --drop-top` must end at): the classifier's pooling/Flatten input.
ONNX_DROP_TOP = [
    ("torch/tiny_resnet.onnx", "/layer2/Relu_1"),
    ("torch/tiny_densenet.onnx", "/Relu"),
    ("torch/tiny_vgg.onnx", "/features/features.5/MaxPool"),
    ("tf2onnx/mobilenet_v2.onnx", "mobilenetv2_0.25_32/out_relu/Relu6"),
]
CLASSES = 3


def relative(got, expected):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(got - expected))) / (float(np.max(np.abs(expected))) or 1.0)


def scion(*arguments):
    result = subprocess.run([SCION, *arguments, "--force"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError((result.stderr.strip().splitlines() or ["failed"])[-1])


def run_onnx(path, x, extra_output=None):
    model = onnx.load(path)
    if extra_output:
        model.graph.output.insert(0, onnx.helper.make_tensor_value_info(extra_output, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def weight_count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def node_output(model, name):
    """The output of a layer or of an operation node (a keras.ops call, which get_layer does not find)."""
    return next(operation for operation in model.operations if operation.name == name).output


def check_keras_case(folder, source, references, name, feature, top):
    results = []
    path = os.path.join(FIXTURES, source)
    if not os.path.exists(path):
        return [("skip", f"{source}: not generated (make -C fixtures applications)")]
    x = arrays(os.path.join(FIXTURES, references), name, "input")[0]
    reference_path = path
    if references.endswith("keras2"):
        # Keras 3 refuses many Keras 2 files; its view of one is Scion's conversion, which
        # check_keras.py shows predicts what tf_keras predicts.
        reference_path = os.path.join(folder, f"{name}_source.keras")
        scion("convert", path, reference_path)
    original = keras.models.load_model(reference_path, compile=False)
    if feature:
        expected = keras.Model(original.inputs, node_output(original, feature)).predict(x, verbose=0)
        for suffix in ("keras", "onnx"):
            out = os.path.join(folder, f"{name}_cut.{suffix}")
            scion("cut", path, "--after", feature, "-o", out)
            got = keras.models.load_model(out, compile=False).predict(x, verbose=0) if suffix == "keras" else run_onnx(out, x)
            difference = relative(got, expected)
            results.append(("ok" if difference <= 1e-4 else "fail",
                            f"{source} cut --after {feature} -> .{suffix}: relative {difference:.2g} vs Keras's feature model"))
    # The recipe in one step, against the same model built in Keras.
    base = keras.Model(original.inputs, node_output(original, top))
    features = base.predict(x, verbose=0)
    base.trainable = False
    # Images (N, H, W, C) or token sequences (N, T, C): pooled over every axis between.
    pooling = keras.layers.GlobalAveragePooling2D if features.ndim == 4 else keras.layers.GlobalAveragePooling1D
    pooled = pooling()(base.output)
    built = keras.Model(base.inputs, keras.layers.Dense(CLASSES, activation="softmax")(pooled))
    grafted_keras = os.path.join(folder, f"{name}_grafted.keras")
    grafted_onnx = os.path.join(folder, f"{name}_grafted.onnx")
    for out in (grafted_keras, grafted_onnx):
        scion("edit", path, "--drop-top", "--head", f"gap,dense:{CLASSES}:softmax", "--freeze-base", "--seed", "0", "-o", out)
    grafted = keras.models.load_model(grafted_keras, compile=False)
    head = CLASSES * (features.shape[-1] + 1)
    counts = (grafted.count_params(), weight_count(grafted.trainable_weights))
    expected_counts = (built.count_params(), weight_count(built.trainable_weights))
    results.append(("ok" if counts == expected_counts and counts[1] == head else "fail",
                    f"{source} edit --drop-top --head gap,dense:{CLASSES}:softmax --freeze-base: params {counts[0]:,} "
                    f"/ trainable {counts[1]:,}; Keras's own: {expected_counts[0]:,} / {expected_counts[1]:,}"))
    kernel, bias = grafted.layers[-1].get_weights()
    mean = features.mean(axis=tuple(range(1, features.ndim - 1)))
    logits = mean.astype(np.float64) @ kernel + bias
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    pooled_got = keras.Model(grafted.inputs, grafted.layers[-1].input).predict(x, verbose=0)
    for label, got in (("Keras", grafted.predict(x, verbose=0)), ("onnxruntime", run_onnx(grafted_onnx, x))):
        difference = max(relative(got, probabilities), relative(pooled_got, mean))
        results.append(("ok" if difference <= 1e-4 else "fail",
                        f"{source} grafted, in {label}: relative {difference:.2g} vs Keras's features through the head"))
    return results


def check_onnx_case(folder, source, node):
    path = os.path.join(FIXTURES, source)
    name = os.path.basename(source)[:-5]
    x = arrays(os.path.dirname(path), name, "input")[0] if arrays(os.path.dirname(path), name, "input") else \
        arrays(os.path.join(FIXTURES, "keras2"), name, "input")[0]
    model = onnx.load(path)
    value = next(n.output[0] for n in model.graph.node if n.name == node)
    expected = run_onnx(path, x, extra_output=value)
    results = []
    for suffix in ("onnx", "keras"):
        out = os.path.join(folder, f"{name}_cut.{suffix}")
        scion("cut", path, "--after", node, "-o", out)
        got = run_onnx(out, x) if suffix == "onnx" else keras.models.load_model(out, compile=False).predict(x, verbose=0)
        difference = relative(got, expected)
        results.append(("ok" if difference <= 1e-4 else "fail",
                        f"{source} cut --after {node} -> .{suffix}: relative {difference:.2g} vs onnxruntime on the source"))
    grafted = {}
    for suffix in ("onnx", "keras"):
        out = os.path.join(folder, f"{name}_grafted.{suffix}")
        scion("edit", path, "--after", node, "--head", f"flatten,dense:{CLASSES}:softmax", "--freeze-base", "--seed", "0",
              "-o", out)
        grafted[suffix] = out
    keras_model = keras.models.load_model(grafted["keras"], compile=False)
    channels = int(np.prod(expected.shape[1:]))
    trainable = weight_count(keras_model.trainable_weights)
    difference = relative(keras_model.predict(x, verbose=0), run_onnx(grafted["onnx"], x))
    ok = difference <= 1e-4 and trainable == CLASSES * (channels + 1)
    results.append(("ok" if ok else "fail", f"{source} grafted: Keras vs onnxruntime relative {difference:.2g}, "
                    f"trainable {trainable} (head: {CLASSES * (channels + 1)})"))
    return results


def check_onnx_drop_top(folder, source, node):
    """`cut --drop-top` of an ONNX export ends where its classifier starts: onnxruntime gives the
    source's value of that node."""
    path = os.path.join(FIXTURES, source)
    name = os.path.basename(source)[:-5]
    folder_arrays = arrays(os.path.dirname(path), name, "input") or arrays(os.path.join(FIXTURES, "keras2"), name, "input")
    x = folder_arrays[0]
    value = next(n.output[0] for n in onnx.load(path).graph.node if n.name == node)
    out = os.path.join(folder, f"{name}_top.onnx")
    scion("cut", path, "--drop-top", "-o", out)
    difference = relative(run_onnx(out, x), run_onnx(path, x, extra_output=value))
    return [("ok" if difference <= 1e-5 else "fail",
             f"{source} cut --drop-top: relative {difference:.2g} vs onnxruntime's {node} on the source")]


# (source, name of its stored arrays) of torch TransformerEncoder(batch_first=True) exports: their
# features are (batch, steps, features), which `gap` must pool over the steps.
SEQUENCE_CASES = [("torch/encoder_ts.onnx", "encoder"), ("torch/encoder_dynamo.onnx", "encoder")]


def check_onnx_sequence(folder, source, name):
    """`edit --drop-top --head gap,dense:3:softmax --freeze-base` on a torch text encoder: the head
    reads the encoder's (batch, steps, features) output averaged over the steps (torch's x.mean(1),
    Keras's GlobalAveragePooling1D), in Keras and in onnxruntime, from onnxruntime's features."""
    path = os.path.join(FIXTURES, source)
    x = arrays(os.path.dirname(path), name, "input")[0]
    cut = os.path.join(folder, f"{name}_sequence_top.onnx")
    scion("cut", path, "--drop-top", "-o", cut)
    value = onnx.load(cut).graph.output[0].name
    features = run_onnx(path, x, extra_output=value).astype(np.float64)
    grafted = {}
    for suffix in ("onnx", "keras"):
        grafted[suffix] = os.path.join(folder, f"{name}_sequence_grafted.{suffix}")
        scion("edit", path, "--drop-top", "--head", f"gap,dense:{CLASSES}:softmax", "--freeze-base", "--seed", "0",
              "-o", grafted[suffix])
    model = keras.models.load_model(grafted["keras"], compile=False)
    kernel, bias = model.get_layer("dense").get_weights()
    logits = features.mean(axis=1) @ kernel + bias
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    head = CLASSES * (features.shape[-1] + 1)
    # Counted by layer: Keras 3 leaves a loaded frozen MultiHeadAttention's query/key/value sublayers
    # in model.trainable_weights (built after `trainable: false` is applied), which Scion cannot change.
    trainable = sum(weight_count(layer.weights) for layer in model.layers if layer.trainable and layer.weights)
    results = [("ok" if trainable == head else "fail",
                f"{source} edit --drop-top --head gap,dense:{CLASSES}:softmax: trainable {trainable} (head on "
                f"{features.shape[-1]} features: {head}), cut at {value} {features.shape}")]
    for label, got in (("Keras", model.predict(x, verbose=0)), ("onnxruntime", run_onnx(grafted["onnx"], x))):
        difference = relative(got, probabilities)
        results.append(("ok" if difference <= 1e-4 else "fail",
                        f"{source} sequence grafted, in {label}: relative {difference:.2g} vs softmax(mean over the steps "
                        f"of onnxruntime's features @ W + b)"))
    return results


# (source, reference folder) of the sequence tagger: its TimeDistributed Dense is a per-step classifier.
TAGGER_CASES = [("keras3/time_distributed_tagger.keras", "keras3"), ("keras2/time_distributed_tagger.h5", "keras2")]


def check_tagger_case(folder, source, references):
    """`edit --drop-top --head dense:6:softmax` on a sequence tagger: the TimeDistributed Dropout and
    Dense go, the new per-step Dense reads the LSTM's sequence; Keras loads it and agrees with its
    own features through the grafted weights."""
    path = os.path.join(FIXTURES, source)
    x = arrays(os.path.join(FIXTURES, references), "time_distributed_tagger", "input")[0]
    reference_path = os.path.join(folder, "tagger_source.keras")
    scion("convert", path, reference_path)
    original = keras.models.load_model(reference_path, compile=False)
    features = keras.Model(original.inputs, original.get_layer("lstm_seq").output).predict(x, verbose=0)
    results = []
    grafted_keras, grafted_onnx = os.path.join(folder, "tagger_grafted.keras"), os.path.join(folder, "tagger_grafted.onnx")
    for out in (grafted_keras, grafted_onnx):
        scion("edit", path, "--drop-top", "--head", "dense:6:softmax", "--freeze-base", "--seed", "0", "-o", out)
    grafted = keras.models.load_model(grafted_keras, compile=False)
    kernel, bias = grafted.layers[-1].get_weights()
    logits = features.astype(np.float64) @ kernel + bias
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    counts = (grafted.count_params(), weight_count(grafted.trainable_weights))
    expected = (original.count_params() - 24 + 36, 36)  # the tagger's Dense(4) off, Dense(6) on 5 features
    results.append(("ok" if counts == expected else "fail",
                    f"{source} edit --drop-top --head dense:6:softmax --freeze-base: params {counts[0]:,} / trainable "
                    f"{counts[1]:,} (expected {expected[0]:,} / {expected[1]:,})"))
    for label, got in (("Keras", grafted.predict(x, verbose=0)), ("onnxruntime", run_onnx(grafted_onnx, x))):
        difference = relative(got, probabilities)
        results.append(("ok" if difference <= 1e-4 else "fail",
                        f"{source} tagger grafted, in {label}: relative {difference:.2g} vs Keras's LSTM sequence through the head"))
    return results


def main():
    global SCION
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    parser.add_argument("--applications", action="store_true", help="the full-size keras.applications models instead")
    args = parser.parse_args()
    SCION = args.scion
    counts = {"ok": 0, "fail": 0, "skip": 0}
    with tempfile.TemporaryDirectory() as folder:
        jobs = [(check_keras_case, case) for case in (APPLICATION_CASES if args.applications else KERAS_CASES)]
        if not args.applications:
            jobs += [(check_onnx_case, case) for case in ONNX_CASES]
            jobs += [(check_onnx_drop_top, case) for case in ONNX_DROP_TOP]
            jobs += [(check_tagger_case, case) for case in TAGGER_CASES]
            jobs += [(check_onnx_sequence, case) for case in SEQUENCE_CASES]
        for check, case in jobs:
            try:
                results = check(folder, *case)
            except Exception as error:  # noqa: BLE001 - a crash is a failure of this case
                results = [("fail", f"{case[0]}: {type(error).__name__}: {str(error)[:300]}")]
            for status, message in results:
                counts[status] += 1
                print(f"{ {'ok': 'ok  ', 'fail': 'FAIL', 'skip': 'skip'}[status] } {message}", flush=True)
            keras.backend.clear_session()
    if not args.applications:
        # The applications families, in a process of their own (another Keras backend).
        child = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_drop_top.py"),
                                "--scion", SCION], env=dict(os.environ, KERAS_BACKEND="numpy"), capture_output=True, text=True)
        lines = child.stdout.strip().splitlines()
        for line in lines[:-1]:
            print(line, flush=True)
            status = {"ok": "ok", "FA": "fail", "sk": "skip"}.get(line[:2])
            if status:
                counts[status] += 1
        if child.returncode not in (0, 1) or not lines:
            counts["fail"] += 1
            print(f"FAIL check_drop_top.py crashed: {(child.stderr.strip().splitlines() or ['no output'])[-1]}")
    print(f"surgery: {counts['ok']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
