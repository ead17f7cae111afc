"""Today's PyTorch exports (issue 16) through Scion, against onnxruntime on the exported file.

For each fixtures/torch/NAME_{ts,dynamo}.onnx (make_torch_transformers.py: torch's TorchScript exporter at
opset 17 and its dynamo exporter, both with a dynamic batch axis):
  run b2      `scion run` on the stored batch of 2 (NAME.input.npy) vs onnxruntime and vs torch's own output
  run b3      `scion run` on rows 0, 1, 0 of it (a batch size the exporter never saw) vs onnxruntime
  run other size  for NAME_any_size (height and width dynamic): `scion run` on NAME.input_size.npy (another
              image size) vs onnxruntime and torch's output_size.npy; the round trip also runs it
  round trip  `scion convert X.onnx Y.onnx`, Y in onnxruntime at batch 2 and 3 vs X in onnxruntime
  keras       `scion convert X.onnx Y.keras`, loaded by Keras 3 (compile=False), batch 2 and 3 run as one batch of 5,
              vs onnxruntime; `scion inspect Y.keras` must count Keras's parameters, trainable and not, as Keras does
and once, for vit_dynamo:
  finetune    `scion finetune` of ViT's head alone (plain SGD, lr 0.1, 3 full-batch steps, cross-entropy)
              vs the head torch trained the same way (vit.finetune_*.npy, written by torch)
and once, for learned_tokens_ts:
  keras finetune  `scion finetune` of the converted .keras, every layer trained (the weights broadcast over
              the batch, Dense kernels there, too: class and distillation tokens, registers, position
              embedding, bias vector; SGD lr 0.1, 3 full-batch steps, mse to fixed targets) vs Keras's fit()
              of the same file: every tensor, and each broadcast weight must move
Tolerance: max|a-b| <= 1e-4 * max|b| (also on the values before a final Softmax, when there is one).

NOT_YET lists what Scion cannot do today with a fragment of the reason it prints; such a case counts as
skipped. A listed case that passes, or fails for another reason, is a failure, so the list stays honest.

Usage: KERAS_BACKEND=jax .build/oracle-venv/bin/python Tests/Interop/check_torch.py [--scion PATH] [NAME...]
Prints one line per case and "torch: P passed, F failed, S skipped"; exits 1 on failures.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import numpy_helper  # noqa: E402
import keras  # noqa: E402
from check_onnx_keras import keras_predict, relative, run_onnxruntime  # noqa: E402

ort.set_default_logger_severity(3)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FOLDER = os.path.join(ROOT, "fixtures", "torch")
TOLERANCE = 1e-4

RUNS = ("run b2", "run b3")
SHAPE = "Shape has no Keras layer"  # lengths computed from Shape at run time


def not_yet(names, checks, reason):
    return {(name, check): reason for name in names for check in checks}


# (fixture, check) -> a fragment of the reason Scion gives today.
NOT_YET = {
    # opset 23 (make_torch_opset23.py): the learned attention bias is a constant operand of Attention.
    ("opset23_block_dynamo", "keras"): "Attention reads the constant 'bias'; Keras layers take no constant operands",
    # Height and width dynamic: the channel shuffle's Reshape reads lengths computed from Shape at run time.
    **not_yet(["shufflenet_any_size_ts", "shufflenet_any_size_dynamo"], ["keras"], SHAPE),
}


class Failure(Exception):
    """A check's finding, with the message to print."""


def scion(binary, *arguments):
    result = subprocess.run([binary, *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        if not lines:
            raise Failure(f"exit {result.returncode}, no message")
        # "error: /long/path/NAME.onnx: node 'x': ..." -> "node 'x': ...": the fixture is on the line already.
        message = lines[-1].removeprefix("error: ")
        for argument in arguments:
            message = message.removeprefix(f"{argument}: ")
        raise Failure(message)


def compare(label, got, expected):
    difference = relative(got, expected)
    if difference is None:
        raise Failure(f"{label}: shape {np.shape(got)} != {np.shape(expected)}")
    if difference > TOLERANCE:
        raise Failure(f"{label}: relative difference {difference:.3g}")
    return difference


def onnxruntime_outputs(path, feeds):
    """The first output and, when the model ends in Softmax, its input (None otherwise)."""
    try:
        outputs, pre_softmax = run_onnxruntime(path, feeds)
    except Exception as error:  # noqa: BLE001 - onnxruntime refusing a file Scion wrote is a finding
        raise Failure(f"onnxruntime: {str(error).strip().splitlines()[0][:200]}") from None
    return outputs[0], pre_softmax


class Fixture:
    def __init__(self, path, work, binary):
        self.path, self.work, self.binary = path, work, binary
        self.name = os.path.basename(path)[:-5]
        stem = self.name.rsplit("_", 1)[0]
        x = np.load(os.path.join(FOLDER, f"{stem}.input.npy"))
        self.torch_output = np.load(os.path.join(FOLDER, f"{stem}.output.npy"))
        self.input_name = next(i.name for i in onnx.load(path, load_external_data=False).graph.input)
        self.batches = {2: x, 3: x[[0, 1, 0]]}
        self.torch_outputs = {2: self.torch_output}
        # A model exported with height and width dynamic (NAME_any_size) is also run at another size.
        if os.path.exists(os.path.join(FOLDER, f"{stem}.input_size.npy")):
            self.batches["size"] = np.load(os.path.join(FOLDER, f"{stem}.input_size.npy"))
            self.torch_outputs["size"] = np.load(os.path.join(FOLDER, f"{stem}.output_size.npy"))
        self.expected = {batch: onnxruntime_outputs(path, {self.input_name: x}) for batch, x in self.batches.items()}
        # The reference itself: onnxruntime on torch's export gives torch's numbers.
        for batch, output in self.torch_outputs.items():
            compare(f"{self.name}: onnxruntime vs torch's output", self.expected[batch][0], output)

    def output(self, suffix):
        return os.path.join(self.work, f"{self.name}.{suffix}")

    def run(self, batch):
        x_path, y_path = self.output(f"b{batch}.input.npy"), self.output(f"b{batch}.output.npy")
        np.save(x_path, self.batches[batch])
        scion(self.binary, "run", self.path, "--input", x_path, "-o", y_path, "--force", "-q")
        got = np.load(y_path)
        worst = compare("vs onnxruntime", got, self.expected[batch][0])
        if batch in self.torch_outputs:
            worst = max(worst, compare("vs torch", got, self.torch_outputs[batch]))
        return f"max relative difference {worst:.2g}"

    def round_trip(self):
        written = self.output("scion.onnx")
        scion(self.binary, "convert", self.path, written, "--force")
        worst = 0.0
        for batch, x in self.batches.items():
            got, got_pre = onnxruntime_outputs(written, {self.input_name: x})
            expected, expected_pre = self.expected[batch]
            worst = max(worst, compare(f"input {x.shape}", got, expected))
            if expected_pre is not None and got_pre is not None:
                worst = max(worst, compare(f"input {x.shape} before softmax", got_pre, expected_pre))
        return f"max relative difference {worst:.2g} on inputs " + ", ".join(str(x.shape) for x in self.batches.values())

    def keras(self):
        written = self.output("keras")
        scion(self.binary, "convert", self.path, written, "--force")
        try:
            model = keras.models.load_model(written, compile=False)
        except Exception as error:  # noqa: BLE001 - Keras refusing the file is a finding
            raise Failure(f"Keras load: {type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
        # Both batches in one call (5 rows, a batch size neither exporter saw): Keras compiles the model once
        # per batch size, which costs more than the prediction itself; samples never mix, so rows 0-1 are the
        # batch of 2 and rows 2-4 the batch of 3.
        x = np.concatenate([self.batches[2], self.batches[3]])
        with_pre_softmax = self.expected[2][1] is not None
        try:
            (got,), got_pre = keras_predict(model, [x], with_pre_softmax)
        except Exception as error:  # noqa: BLE001
            raise Failure(f"Keras predict: {type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
        worst = 0.0
        for batch, rows in ((2, slice(0, 2)), (3, slice(2, 5))):
            expected, expected_pre = self.expected[batch]
            worst = max(worst, compare(f"batch {batch}", got[rows], expected))
            if expected_pre is not None:
                worst = max(worst, compare(f"batch {batch} before softmax", got_pre[rows], expected_pre))
        counted = self.inspected_counts(written)
        keras_counts = (model.count_params(), sum(int(np.prod(w.shape)) for w in model.trainable_weights))
        if counted != keras_counts:
            raise Failure(f"scion inspect counts (total, trainable) {counted}, Keras {keras_counts}")
        keras.backend.clear_session()
        return f"max relative difference {worst:.2g} at batch 2 and 3 (one call of 5 rows); {counted[0]} parameters, {counted[1]} trainable, as Keras counts"

    def inspected_counts(self, path):
        result = subprocess.run([self.binary, "inspect", path, "--json"], capture_output=True, text=True)
        if result.returncode != 0:
            raise Failure(f"scion inspect: {result.stderr.strip()[-200:]}")
        report = json.loads(result.stdout)
        return report["totalParams"], report["trainableParams"]

    # The layers (named after torch's weights) holding the weights broadcast over the batch.
    BROADCAST_WEIGHTS = ("class_token", "distillation_token", "registers", "position", "query_bias")

    def keras_finetune(self):
        """The converted model trained end to end by Scion and by Keras's fit(): the broadcast weights
        must train as Keras trains them, and move."""
        start, trained, data = self.output("keras"), self.output("trained.keras"), self.output("finetune.npz")
        random = np.random.default_rng(16)
        x = random.standard_normal((16, *self.batches[2].shape[1:])).astype(np.float32)
        y = random.standard_normal((len(x), self.torch_output.shape[-1])).astype(np.float32)
        np.savez(data, x=x, y=y)
        scion(self.binary, "finetune", start, "--data", data, "--optimizer", "sgd", "--learning-rate", "0.1", "--epochs", "3",
              "--batch-size", str(len(x)), "--loss", "mse", "-o", trained, "--force", "-q")
        model = keras.models.load_model(start, compile=False)
        initial = {layer.name: layer.get_weights() for layer in model.layers}
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        model.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)
        mine = keras.models.load_model(trained, compile=False)
        worst, moved = 0.0, {}
        for layer in model.layers:
            for got, expected, before in zip(mine.get_layer(layer.name).get_weights(), layer.get_weights(), initial[layer.name]):
                worst = max(worst, float(np.max(np.abs(got - expected))) / max(float(np.max(np.abs(expected))), 1e-3))
                if layer.name in self.BROADCAST_WEIGHTS:
                    moved[layer.name] = relative(got, before)
        keras.backend.clear_session()
        if worst > TOLERANCE:
            raise Failure(f"every tensor vs Keras's fit(): relative difference {worst:.3g}")
        # The registers reach the output only through attention: they move least (~6e-3), still 60x the tolerance.
        if len(moved) != len(self.BROADCAST_WEIGHTS) or min(moved.values()) < 10 * TOLERANCE:
            raise Failure(f"the broadcast weights did not all train: {moved}")
        return (f"every tensor vs Keras's fit() max relative difference {worst:.2g}; broadcast weights moved by "
                + ", ".join(f"{name} {value:.2g}" for name, value in moved.items()))

    def finetune(self):
        """ViT's head trained by Scion as torch trained it (make_torch_transformers.train_vit_head).
        Scion's cross-entropy reads probabilities: a Softmax appended to the logits makes its loss
        torch's cross-entropy on logits (the gradient at the logits is p - y either way)."""
        model = onnx.load(self.path)
        head = next(n for n in model.graph.node if "heads.head.weight" in n.input)
        logits = model.graph.output[0]
        head_output = logits.name
        model.graph.node.append(onnx.helper.make_node("Softmax", [head_output], ["probabilities"], axis=-1))
        model.graph.output.remove(logits)
        model.graph.output.append(onnx.helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, None))
        with_softmax, start, trained = self.output("softmax.onnx"), self.output("start.onnx"), self.output("trained.onnx")
        onnx.save(model, with_softmax)
        scion(self.binary, "freeze", with_softmax, "--all", "--unfreeze", f"^{head.name}$", "-o", start, "--force")
        reference = {kind: np.load(os.path.join(FOLDER, f"vit.finetune_{kind}.npy")) for kind in ("x", "y", "weight", "bias")}
        samples = len(reference["x"])
        scion(self.binary, "finetune", start, "--data", os.path.join(FOLDER, "vit.finetune_x.npy"),
              "--labels", os.path.join(FOLDER, "vit.finetune_y.npy"), "--optimizer", "sgd", "--learning-rate", "0.1",
              "--epochs", "3", "--batch-size", str(samples), "--loss", "sparse_categorical_crossentropy",
              "-o", trained, "--force", "-q")
        weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(trained).graph.initializer}
        worst = compare("heads.head.weight", weights["heads.head.weight"], reference["weight"])
        worst = max(worst, compare("heads.head.bias", weights["heads.head.bias"], reference["bias"]))
        initial = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        moved = relative(weights["heads.head.weight"], initial["heads.head.weight"])
        if moved < 100 * TOLERANCE:
            raise Failure(f"the head barely moved in training ({moved:.2g}): the comparison would prove nothing")
        return f"head after 3 SGD steps: max relative difference {worst:.2g} (training moved it by {moved:.2g})"


def outcome(action):
    try:
        return True, action()
    except Failure as failure:
        return False, str(failure)


def executor_checks(path, work, binary):
    """The fixture and its checks that need no Keras (one `scion` process each): these run side by side."""
    try:
        fixture = Fixture(path, work, binary)
    except Failure as failure:  # the file or its references are wrong: nothing to check Scion on
        return None, str(failure), []
    checks = [("run b2", lambda: fixture.run(2)), ("run b3", lambda: fixture.run(3)), ("round trip", fixture.round_trip)]
    if "size" in fixture.batches:
        checks.insert(2, ("run other size", lambda: fixture.run("size")))
    return fixture, None, [(check, outcome(action)) for check, action in checks]


def judged(key, ok, message):
    """The status of one case after NOT_YET: passed, failed or skipped, and the message to print."""
    if key not in NOT_YET:
        return ("passed" if ok else "failed"), message
    if ok:
        return "failed", f"now passes, remove from NOT_YET ({message})"
    if NOT_YET[key] in message:
        return "skipped", f"not yet: {message}"
    return "failed", f"fails for another reason than NOT_YET's {NOT_YET[key]!r}: {message}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "debug", "scion"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="fixtures run side by side")
    parser.add_argument("names", nargs="*", help="fixtures to check (default: every NAME_ts / NAME_dynamo)")
    options = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(FOLDER, "*_ts.onnx")) + glob.glob(os.path.join(FOLDER, "*_dynamo.onnx")))
    if options.names:
        paths = [p for p in paths if os.path.basename(p)[:-5] in options.names]
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    seen = set()
    with tempfile.TemporaryDirectory() as work:
        with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            prepared = list(pool.map(lambda path: executor_checks(path, work, options.scion), paths))
        for fixture, problem, results in prepared:
            if fixture is None:
                print(f"FAIL {problem}", flush=True)
                counts["failed"] += 1
                continue
            # Keras (one JAX runtime) and finetune one at a time, after the side-by-side part.
            later = [("keras", fixture.keras)] + ([("finetune", fixture.finetune)] if fixture.name == "vit_dynamo" else []) \
                + ([("keras finetune", fixture.keras_finetune)] if fixture.name == "learned_tokens_ts" else [])
            for check, result in results + [(check, outcome(action)) for check, action in later]:
                key = (fixture.name, check)
                seen.add(key)
                status, message = judged(key, *result)
                counts[status] += 1
                tag = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[status]
                print(f"{tag} {fixture.name} {check}: {message}", flush=True)
    if not options.names:
        for key in sorted(set(NOT_YET) - seen):
            print(f"FAIL {key}: listed in NOT_YET but not checked (no such fixture)")
            counts["failed"] += 1
    print(f"torch: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
