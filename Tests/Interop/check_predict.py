"""`scion predict` and `scion evaluate` against Keras 3, onnxruntime and NumPy on the same arrays.

- predict: per-sample class probabilities (`--json --top C`, all classes) equal Keras's
  `model.predict` (softmax or sigmoid applied when the model ends in logits) and onnxruntime's run
  of ONNX files, within 1e-4 relative: the digits CNN (.h5 and .keras, softmax), Keras 3 fixtures
  ending in logits (GroupNormalization, a ViT), the transfer-learning guide's one-unit logit (binary,
  with its own Rescaling layer, which predict must report), torch exports in ONNX (logits, softmax).
- evaluate: loss, accuracy and top-5 accuracy equal Keras's `model.evaluate` compiled with the loss
  Scion says it used (sparse categorical or binary cross-entropy, from logits or not) and the
  matching metrics; per-class precision/recall/F1/support and the confusion matrix equal a NumPy
  computation from the same predictions; the report's SVG parses as XML with hostile class names.
- preprocessing: every keras.applications family's `preprocess_input` (and the four modes) on the
  same raw arrays, channels-last (a Keras model) and channels-first (its ONNX conversion); the
  values are read back exactly through a model whose logits are the preprocessed pixels plus a zero.
- class names: finetune --class-names writes .keras, .h5 and ONNX files that Keras 3 and onnxruntime
  still load and run; predict, evaluate and inspect read the names back; finetune --test equals
  evaluate of the written model.
- refusals: wrong input shape, labels out of range, a names count that is not the class count: one
  `error:` line naming the file, exit 1.

Usage: KERAS_BACKEND=jax .build/oracle-venv/bin/python Tests/Interop/check_predict.py [--scion PATH]
Prints one line per case and "predict: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
import keras  # noqa: E402
import onnxruntime  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGITS = os.path.join(ROOT, "Sources", "ScionCommand", "Resources", "digits")
FAMILIES = ["convnext", "densenet", "efficientnet", "efficientnet_v2", "inception_resnet_v2", "inception_v3", "mobilenet",
            "mobilenet_v2", "mobilenet_v3", "nasnet", "resnet", "resnet50", "resnet_v2", "vgg16", "vgg19", "xception"]


def fixture(*parts):
    return os.path.join(ROOT, "fixtures", *parts)


def relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) / (float(np.max(np.abs(b))) or 1.0)


def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


class Checker:
    def __init__(self, scion, folder):
        self.scion, self.folder = scion, folder
        self.passed = self.failed = 0

    def path(self, name):
        return os.path.join(self.folder, name)

    def run(self, *arguments):
        return subprocess.run([self.scion, *arguments], capture_output=True, text=True)

    def json(self, *arguments):
        result = self.run(*arguments, "--json")
        if result.returncode != 0:
            raise RuntimeError(f"scion {' '.join(arguments[:2])}: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def report(self, name, ok, detail):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    def case(self, name, body):
        started, cpu = time.monotonic(), time.process_time()
        try:
            ok, detail = body()
        except Exception as error:  # a crash of one case is that case's failure
            ok, detail = False, f"{type(error).__name__}: {error}"
        self.report(name, ok, detail + (f" [{time.monotonic() - started:.1f} s, {time.process_time() - cpu:.1f} s CPU here]" if os.environ.get("CHECK_TIMES") else ""))

    def probabilities(self, model, inputs, classes, *extra):
        """predict's probabilities as a [samples, classes] matrix, every class asked for."""
        listing = self.json("predict", model, inputs, "--top", str(classes), *extra)
        matrix = np.zeros((len(listing), classes))
        for row, sample in enumerate(listing):
            for entry in sample["predictions"]:
                matrix[row, entry["index"]] = entry["probability"]
        return matrix, [sample["file"] for sample in listing]


LOADED = {}


def loaded(path):
    """Each Keras model loaded once: loading builds (and compiles) its layers, seconds per model."""
    if path not in LOADED:
        LOADED[path] = keras.saving.load_model(path, compile=False)
    return LOADED[path]


def keras_probabilities(model, x):
    """Keras's predictions as per-class probabilities: softmax or sigmoid when the model ends in logits."""
    # Called eagerly: these models are tiny, and compiling a predict function costs seconds each.
    raw = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), np.float64)
    activation = getattr(model.layers[-1], "activation", None)
    name = getattr(activation, "__name__", "")
    if raw.shape[-1] == 1:
        p = raw[:, 0] if name == "sigmoid" else sigmoid(raw[:, 0])
        return np.stack([1 - p, p], axis=1)
    return raw if name == "softmax" else softmax(raw)


def check_predict_keras(checker, name, model_path, x):
    def body():
        inputs = checker.path(f"{name}.npy")
        np.save(inputs, x)
        model = loaded(model_path)
        expected = keras_probabilities(model, x)
        got, files = checker.probabilities(model_path, inputs, expected.shape[1])
        difference = relative(got, expected)
        names_ok = files == [f"{inputs}[{i}]" for i in range(len(x))]
        return difference <= 1e-4 and names_ok, f"max relative difference {difference:.2e} over {got.shape}"
    checker.case(f"predict {name} vs Keras", body)


def check_predict_onnx(checker, name, model_path, x, logits):
    def body():
        inputs = checker.path(f"{name}.npy")
        np.save(inputs, x)
        session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        raw = session.run(None, {session.get_inputs()[0].name: x})[0]
        expected = softmax(raw) if logits else np.asarray(raw, np.float64)
        got, _ = checker.probabilities(model_path, inputs, expected.shape[1])
        difference = relative(got, expected)
        return difference <= 1e-4, f"max relative difference {difference:.2e} over {got.shape}"
    checker.case(f"predict {name} vs onnxruntime", body)


def numpy_scores(probabilities, labels, classes):
    """Per-class precision/recall/F1/support and the confusion matrix (rows true), as scikit-learn defines them."""
    predicted = probabilities.argmax(axis=1)
    matrix = np.zeros((classes, classes), np.int64)
    for truth, guess in zip(labels, predicted):
        matrix[truth, guess] += 1
    rows = []
    for k in range(classes):
        tp, predicted_k, actual_k = matrix[k, k], matrix[:, k].sum(), matrix[k, :].sum()
        precision = tp / predicted_k if predicted_k else 0.0
        recall = tp / actual_k if actual_k else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((precision, recall, f1, int(actual_k)))
    return rows, matrix


def check_evaluate(checker, name, model_path, x, y, keras_model=None, onnx_logits=None, classes=None):
    """evaluate against Keras's evaluate (Keras models) or NumPy on onnxruntime's outputs (ONNX)."""
    def body():
        data = checker.path(f"{name}_test.npz")
        np.savez(data, x=x, y=y)
        result = checker.json("evaluate", model_path, "--data", data)
        if keras_model is not None:
            model = keras_model
            binary = model.output_shape[-1] == 1
            from_logits = "from logits" in result["lossFunction"]
            if binary:
                loss = keras.losses.BinaryCrossentropy(from_logits=from_logits)
                metrics = [keras.metrics.BinaryAccuracy(threshold=0.0 if from_logits else 0.5)]
            else:
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
                metrics = [keras.metrics.SparseCategoricalAccuracy(), keras.metrics.SparseTopKCategoricalAccuracy(k=5)]
            model.compile(loss=loss, metrics=metrics, jit_compile=False)
            values = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
            expected_loss = values["loss"]
            expected_accuracy = values.get("binary_accuracy", values.get("sparse_categorical_accuracy"))
            expected_top5 = values.get("sparse_top_k_categorical_accuracy")
            probabilities = keras_probabilities(model, x)
        else:
            session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
            raw = np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0], np.float64)
            probabilities = softmax(raw) if onnx_logits else raw
            picked = probabilities[np.arange(len(y)), y]
            if onnx_logits:
                expected_loss = float(np.mean(-np.log(picked)))
            else:  # Keras's from-probabilities form: normalised, clipped
                expected_loss = float(np.mean(-np.log(np.clip(picked / raw.sum(axis=1), 1e-7, 1 - 1e-7))))
            expected_accuracy = float(np.mean(probabilities.argmax(axis=1) == y))
            rank = (probabilities > picked[:, None]).sum(axis=1)
            expected_top5 = float(np.mean(rank < 5))
        count = probabilities.shape[1]
        rows, matrix = numpy_scores(probabilities, y, count)
        problems = []
        if relative(result["loss"], expected_loss) > 1e-4:
            problems.append(f"loss {result['loss']} vs {expected_loss}")
        if abs(result["accuracy"] - expected_accuracy) > 1e-6:
            problems.append(f"accuracy {result['accuracy']} vs {expected_accuracy}")
        if expected_top5 is not None and abs(result["top5Accuracy"] - expected_top5) > 1e-6:
            problems.append(f"top-5 {result['top5Accuracy']} vs {expected_top5}")
        got_rows = [(c["precision"], c["recall"], c["f1"], c["support"]) for c in result["perClass"]]
        if relative(got_rows, rows) > 1e-9:
            problems.append(f"per-class {got_rows} vs {rows}")
        if result["confusionMatrix"] != matrix.tolist():
            problems.append(f"confusion matrix {result['confusionMatrix']} vs {matrix.tolist()}")
        if result["samples"] != len(x) or result["skipped"] != 0 or len(result["classes"]) != count:
            problems.append("samples/skipped/classes")
        detail = (f"loss {result['loss']:.6f}, accuracy {result['accuracy']:.4f}, top-5 {result['top5Accuracy']}, "
                  f"{result['lossFunction']}")
        return not problems, "; ".join(problems) or detail
    checker.case(f"evaluate {name}", body)


def check_preprocessing(checker):
    """Every family's preprocess_input, read back through a model whose logits are the pixels and a zero."""
    shape = (2, 2, 3)
    inputs = keras.Input(shape)
    flat = keras.layers.Flatten()(inputs)
    values = int(np.prod(shape))
    kernel = np.concatenate([np.eye(values, dtype=np.float32), np.zeros((values, 1), np.float32)], axis=1)
    outputs = keras.layers.Dense(values + 1, name="pixels_and_zero")(flat)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([kernel, np.zeros(values + 1, np.float32)])
    keras_path, onnx_path = checker.path("pixels.keras"), checker.path("pixels.onnx")
    model.save(keras_path)
    # The same readout over NCHW pixels, as an ONNX file of its own (a converted Keras model keeps its NHWC input).
    import onnx
    from onnx import helper
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["pixels"], ["flat"]), helper.make_node("MatMul", ["flat", "kernel"], ["logits"])], "pixels",
        [helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, ["batch", shape[2], shape[0], shape[1]])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", values + 1])],
        [onnx.numpy_helper.from_array(kernel, "kernel")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), onnx_path)
    raw = np.random.default_rng(7).integers(0, 256, (3,) + shape).astype(np.float32)
    layouts = [("channels_last", keras_path, raw), ("channels_first", onnx_path, np.ascontiguousarray(raw.transpose(0, 3, 1, 2)))]
    for layout, path, x in layouts:
        inputs_path = checker.path(f"raw_{layout}.npy")
        np.save(inputs_path, x)
        # The family names pick a mode whatever the layout: every name channels-last, the modes channels-first.
        for name in ["caffe", "tf", "torch", "none"] + (FAMILIES if layout == "channels_last" else []):
            def body(name=name, layout=layout, path=path, x=x, inputs_path=inputs_path):
                if name in ("caffe", "tf", "torch"):
                    expected = keras.applications.imagenet_utils.preprocess_input(x.copy(), data_format=layout, mode=name)
                elif name == "none":
                    expected = x
                else:
                    module = getattr(keras.applications, name)
                    try:
                        expected = module.preprocess_input(x.copy(), data_format=layout)
                    except TypeError:  # EfficientNet's and ConvNeXt's take no data_format: they return x
                        expected = module.preprocess_input(x.copy())
                probabilities, _ = checker.probabilities(path, inputs_path, values + 1, "--preprocess", name)
                with np.errstate(divide="ignore"):
                    logits = np.log(probabilities)
                recovered = (logits[:, :values] - logits[:, values:]).reshape(x.shape)
                difference = relative(recovered, np.asarray(expected, np.float64))
                return difference <= 1e-4, f"max relative difference {difference:.2e}"
            checker.case(f"preprocess {name} ({layout})", body)


def check_class_names(checker):
    """finetune --class-names: the names travel through .keras, .h5 and ONNX, Keras and onnxruntime still load them."""
    names = ["five", "six", "seven", "eight", "nine"]
    trained = checker.path("named.keras")
    test = os.path.join(DIGITS, "test.npz")
    result = subprocess.run([checker.scion, "finetune", os.path.join(DIGITS, "digits_scratch.keras"), "--data",
                             os.path.join(DIGITS, "fewshot.npz"), "--epochs", "2", "-o", trained, "--class-names", ",".join(names),
                             "--test", test, "--json", "--force"], capture_output=True, text=True)
    if result.returncode != 0:
        checker.report("finetune --class-names --test", False, result.stderr.strip())
        return
    tested = json.loads(result.stdout)["test"]

    def finetune_test():
        evaluated = checker.json("evaluate", trained, "--data", test)
        same = all(relative(tested[key], evaluated[key]) <= 1e-9 for key in ("loss", "accuracy", "top5Accuracy"))
        return same and tested["classes"] == names, f"test loss {tested['loss']:.6f}, accuracy {tested['accuracy']:.4f}"
    checker.case("finetune --test equals evaluate of the written model", finetune_test)

    data = np.load(test)
    x, y = data["x"][:40], data["y"][:40].astype(np.int64)
    for extension in ("keras", "h5", "onnx"):
        def body(extension=extension):
            path = trained if extension == "keras" else checker.path(f"named.{extension}")
            if extension != "keras":
                converted = checker.run("convert", trained, path, "--force")
                if converted.returncode != 0:
                    return False, converted.stderr.strip()
            inspected = checker.json("inspect", path)
            if inspected["classNames"] != names:
                return False, f"inspect classNames {inspected['classNames']}"
            inputs = checker.path(f"named_{extension}.npy")
            np.save(inputs, x)
            listing = checker.json("predict", path, inputs, "--top", "1")
            if extension == "onnx":
                import onnx
                onnx.checker.check_model(onnx.load(path))
                session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
                expected = session.run(None, {session.get_inputs()[0].name: x})[0]
                stored = {entry.key: entry.value for entry in onnx.load(path).metadata_props}.get("class_names")
                if json.loads(stored or "null") != names:
                    return False, f"metadata_props class_names {stored}"
            else:
                expected = keras.saving.load_model(path, compile=False).predict(x, verbose=0)
            picked = [names[i] for i in np.asarray(expected).argmax(axis=1)]
            got = [sample["predictions"][0]["class"] for sample in listing]
            evaluated = checker.json("evaluate", path, "--data", test)
            return got == picked and evaluated["classes"] == names, f"loaded by {'onnxruntime' if extension == 'onnx' else 'Keras 3'}, names read back"
        checker.case(f"class names in .{extension}", body)


def check_report(checker):
    names = ['a<b', 'x & y', '"quoted"', "it's", "</svg>"]
    def body():
        folder = checker.path("report")
        result = checker.json("evaluate", fixture("digits", "digits_cnn.h5"), "--data", fixture("digits", "pretrain.npz"),
                              "--class-names", ",".join(names), "--report", folder)
        svg = ElementTree.parse(os.path.join(folder, "confusion_matrix.svg")).getroot()
        texts = {element.text for element in svg.iter("{http://www.w3.org/2000/svg}text")}
        page = open(os.path.join(folder, "index.html"), encoding="utf-8").read()
        inline = page[page.index("<svg"):page.index("</svg>", page.index("<svg")) + 6]
        ElementTree.fromstring(inline)
        return all(name in texts for name in names) and result["classes"] == names, "SVG parses as XML, every name escaped"
    checker.case("evaluate --report heat map", body)


def check_refusals(checker):
    digits = fixture("digits", "digits_cnn.h5")
    wrong_shape = checker.path("wrong_shape.npy")
    np.save(wrong_shape, np.zeros((2, 10, 10, 3), np.float32))
    out_of_range = checker.path("out_of_range.npz")
    np.savez(out_of_range, x=np.zeros((3, 8, 8, 1), np.float32), y=np.array([0, 7, 1]))
    cases = [
        ("wrong input shape", ["predict", digits, wrong_shape], wrong_shape),
        ("labels out of range", ["evaluate", digits, "--data", out_of_range], "label 7"),
        ("names count is not the class count", ["predict", digits, wrong_shape, "--class-names", "a,b"], "--class-names gives 2"),
        ("finetune names count", ["finetune", os.path.join(DIGITS, "digits_scratch.keras"), "--data", os.path.join(DIGITS, "fewshot.npz"),
                                  "-o", checker.path("never.keras"), "--class-names", "a,b,c"], "--class-names gives 3"),
    ]
    for name, arguments, expected in cases:
        def body(arguments=arguments, expected=expected):
            result = checker.run(*arguments)
            lines = result.stderr.strip().splitlines()
            ok = result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
            return ok, f"exit {result.returncode}: {result.stderr.strip()}"
        checker.case(f"refuses: {name}", body)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checker = Checker(args.scion, folder)
        pretrain = np.load(fixture("digits", "pretrain.npz"))
        digits_x, digits_y = pretrain["x"], pretrain["y"].astype(np.int64)
        rng = np.random.default_rng(3)

        # Each Keras model is predicted and evaluated on the same arrays: eager JAX compiles its ops per shape.
        digits_h5 = fixture("digits", "digits_cnn.h5")
        check_predict_keras(checker, "digits_cnn.h5", digits_h5, digits_x)
        check_evaluate(checker, "digits_cnn.h5 (softmax)", digits_h5, digits_x, digits_y, keras_model=loaded(digits_h5))
        digits_keras, test = os.path.join(DIGITS, "digits_cnn.keras"), np.load(os.path.join(DIGITS, "test.npz"))
        check_predict_keras(checker, "digits_cnn.keras", digits_keras, test["x"])
        check_evaluate(checker, "digits_cnn.keras on test.npz (softmax)", digits_keras, test["x"], test["y"].astype(np.int64),
                       keras_model=loaded(digits_keras))
        for name, scale in (("group_norm", 1), ("transfer_guide", 255)):  # raw pixels for the guide: it holds its own Rescaling
            path = fixture("keras3", f"{name}.keras")
            model = loaded(path)
            x = rng.random((30,) + tuple(model.input_shape[1:]), dtype=np.float32) * scale
            check_predict_keras(checker, f"{name}.keras (logits)", path, x)
            y = rng.integers(0, max(model.output_shape[-1], 2), 30)
            check_evaluate(checker, f"{name}.keras ({'binary ' if model.output_shape[-1] == 1 else ''}logits)", path, x, y, keras_model=model)

        def own_rescaling():
            result = checker.run("predict", fixture("keras3", "transfer_guide.keras"), fixture("keras3", "transfer_guide.input.npy"))
            said = "scales its own inputs (layer 'rescale')" in result.stdout and "sigmoid applied" in result.stdout
            return result.returncode == 0 and said, result.stdout.splitlines()[1] if result.returncode == 0 else result.stderr.strip()
        checker.case("predict reports a model's own Rescaling and its logit output", own_rescaling)
        # Seeded: a ten-class softmax (top-5 neither 0 nor 1), a one-unit sigmoid.
        keras.utils.set_random_seed(5)
        for name, units, activation in (("ten_classes", 10, "softmax"), ("binary_sigmoid", 1, "sigmoid")):
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(12, activation="relu"), keras.layers.Dense(units, activation=activation)])
            path = checker.path(f"{name}.keras")
            model.save(path)
            LOADED[path] = model
            x = rng.standard_normal((50, 6)).astype(np.float32)
            check_predict_keras(checker, f"{name}.keras", path, x)
            check_evaluate(checker, f"{name}.keras ({activation})", path, x, rng.integers(0, max(units, 2), 50), keras_model=model)
        for name, logits in (("tiny_resnet", True), ("tiny_vgg", False)):
            path = fixture("torch", f"{name}.onnx")
            x = rng.standard_normal((30,) + np.load(fixture("torch", f"{name}.input.npy")).shape[1:]).astype(np.float32)
            check_predict_onnx(checker, f"{name}.onnx", path, x, logits)
            classes = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]).get_outputs()[0].shape[-1]
            check_evaluate(checker, f"{name}.onnx ({'logits' if logits else 'softmax'})", path, x, rng.integers(0, classes, 30), onnx_logits=logits)

        check_preprocessing(checker)
        check_class_names(checker)
        check_report(checker)
        check_refusals(checker)
    print(f"predict: {checker.passed} passed, {checker.failed} failed, 0 skipped")
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
