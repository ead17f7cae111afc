#!/usr/bin/env python3
"""Transfer-learning accuracy: the same recipes in Keras 3's `fit()` and in `scion finetune`.

Task (Sources/ScionCommand/Resources/digits/, made by fixtures/make_digits.py): a CNN pretrained on digits 0-4 re-used for
digits 5-9 with 20 images per class (fewshot.npz, or its first --per-class images of each class, as
`scion demo` takes them); accuracy on the other 796 images (test.npz).
Both sides start from the very same files, so their initial weights are identical; what can differ
is only the training (shuffling order, arithmetic, and whatever Scion gets wrong).

Recipes, each for every seed:
  head       base frozen, new Dense(5) head trained: Adam 1e-2, batch 16, 30 epochs
  two-phase  "head", then the top 4 base layers unfrozen (BatchNormalization stays frozen, so it
             keeps running in inference mode), fresh Adam 1e-3, 20 more epochs
  scratch    digits_scratch.keras (fresh initial weights, same graph), everything trainable
             (BatchNormalization trains on batch statistics): Adam 1e-2, batch 16, 50 epochs
  scratch-full-batch  "scratch" with one batch of all the training images per epoch: no shuffling
             order to differ, so both tools should reach the same weights and the same accuracy
(the first three are the recipe `scion demo` runs).

Keras side: load_model, set the trainable flags, compile, fit(shuffle=True) after
keras.utils.set_random_seed(seed); accuracy = argmax of predict() on test.npz. Time: the fit() calls.
Scion side: `scion finetune --json`; accuracy = argmax of `scion run OUT.keras` on test.npz (not the
trainer's own number). Time: the whole finetune process.

Usage (repo root; needs a release build: swift build -c release):
  KERAS_BACKEND=jax .build/oracle-venv/bin/python bench/finetune_accuracy.py
      [--seeds 0,1,2,3,4] [--recipes head,two-phase,scratch] [--scion .build/release/scion]
      [--keras-only] [--keep WORK_DIR] [--json PATH]
--keras-only still calls `scion edit` (the grafted start file is made by Scion for both sides).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np  # noqa: E402
import keras  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "Sources", "ScionCommand", "Resources", "digits")   # scion demo's resources
RECIPES = ("head", "two-phase", "scratch", "scratch-full-batch")
BATCH, EPOCHS, LR = 16, 30, 1e-2
UNFREEZE_TOP, FT_EPOCHS, FT_LR = 4, 20, 1e-3


def load(name):
    data = np.load(os.path.join(DIGITS, name))
    return data["x"], data["y"]


def accuracy(probabilities, y):
    return float(np.mean(np.argmax(probabilities, axis=-1) == y))


# ------------------------------------------------------------------ Keras side

def split(model, trainable_in_file):
    """Base and head in Keras's terms: the head is what the start file marks trainable (scion edit
    --freeze-base freezes all but the new head); the base is the rest, without the InputLayer,
    in model.layers order."""
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    head = [l for l in layers if trainable_in_file[l.name]]
    base = [l for l in layers if not trainable_in_file[l.name]]
    return base, head


def batch_size(recipe, samples):
    return samples if recipe == "scratch-full-batch" else BATCH


def fit(model, x, y, lr, epochs, batch):
    """compile + fit; returns the wall-clock seconds of fit() (JAX tracing included)."""
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
    return time.perf_counter() - start


def keras_run(recipe, start_file, seed, train, test):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras.saving.load_model(start_file, compile=False)
    info = {}
    batch = batch_size(recipe, len(train[1]))
    if recipe.startswith("scratch"):
        for layer in model.layers:
            layer.trainable = True
        seconds = fit(model, *train, LR, EPOCHS + FT_EPOCHS, batch)
    else:
        base, head = split(model, {l.name: l.trainable for l in model.layers})
        for layer in base:
            layer.trainable = False
        for layer in head:
            layer.trainable = True
        seconds = fit(model, *train, LR, EPOCHS, batch)
        if recipe == "two-phase":
            top = base[-UNFREEZE_TOP:]
            thawed = [l for l in top if not isinstance(l, keras.layers.BatchNormalization)]
            for layer in thawed:
                layer.trainable = True
            info = {"base_layers": len(base), "top": [l.name for l in top],
                    "unfrozen": [l.name for l in thawed],
                    "unfrozen_with_weights": [l.name for l in thawed if l.weights]}
            seconds += fit(model, *train, FT_LR, FT_EPOCHS, batch)   # fresh Adam: compile() makes a new one
    info["trainable_params"] = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return accuracy(model.predict(test[0], verbose=0), test[1]), seconds, info


# ------------------------------------------------------------------ Scion side

def scion_run(scion, recipe, start_file, seed, work, train_file, samples, test_x_file, test_y):
    out = os.path.join(work, f"scion-{recipe}-{seed}.keras")
    epochs = EPOCHS + FT_EPOCHS if recipe.startswith("scratch") else EPOCHS
    # No --validation: Keras's fit() is timed without one too.
    command = [scion, "finetune", start_file, "--data", train_file, "--epochs", str(epochs),
               "--batch-size", str(batch_size(recipe, samples)), "--learning-rate", str(LR), "--optimizer", "adam",
               "--seed", str(seed)]
    if recipe == "two-phase":
        command += ["--unfreeze-top", str(UNFREEZE_TOP), "--fine-tune-epochs", str(FT_EPOCHS),
                    "--fine-tune-learning-rate", str(FT_LR)]
    command += ["-o", out, "--json", "--force"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return None, seconds, {"error": " ".join(message[-3:]) if message else f"exit {done.returncode}"}
    predictions = os.path.join(work, f"scion-{recipe}-{seed}.pred.npy")
    subprocess.run([scion, "run", out, "--input", test_x_file, "--output", predictions, "--force"],
                   check=True, capture_output=True)
    info = {}
    try:   # kept for the record only
        info["trainer_last_loss"] = json.loads(done.stdout)["history"][-1]["loss"]
    except (ValueError, KeyError, IndexError):
        pass
    return accuracy(np.load(predictions), test_y), seconds, info


# ------------------------------------------------------------------ driver

def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def cell(mean, std):
    return "n/a" if mean is None else f"{100 * mean:.1f} ± {100 * std:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated: " + ", ".join(RECIPES))
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "release", "scion"))
    parser.add_argument("--keras-only", action="store_true", help="skip `scion finetune` (still uses `scion edit`)")
    parser.add_argument("--keep", metavar="WORK_DIR", help="work here and keep the files")
    parser.add_argument("--json", metavar="PATH", help="write the raw numbers here")
    parser.add_argument("--per-class", type=int, default=20, help="training images per class (1 to 20)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    recipes = args.recipes.split(",")
    unknown = set(recipes) - set(RECIPES)
    if unknown:
        parser.error(f"unknown recipe(s): {', '.join(sorted(unknown))}")

    work = args.keep or tempfile.mkdtemp(prefix="finetune_accuracy-")
    os.makedirs(work, exist_ok=True)
    train, test = load("fewshot.npz"), load("test.npz")
    # The first --per-class images of each class, in file order (as `scion demo` picks them).
    chosen = sorted(i for k in range(5) for i in np.where(train[1] == k)[0][:args.per_class])
    train = (train[0][chosen], train[1][chosen])
    train_file = os.path.join(work, "train.npz")
    np.savez(train_file, x=train[0], y=train[1])
    test_x_file = os.path.join(work, "test_x.npy")
    np.save(test_x_file, test[0])

    runs = []
    for seed in seeds:
        # The grafted start file, one per seed (the seed draws the new head's weights). scion edit
        # --drop-top cuts like include_top=False, i.e. before `gap` too, so cut after `gap` by name.
        grafted = os.path.join(work, f"grafted-{seed}.keras")
        subprocess.run([args.scion, "edit", os.path.join(DIGITS, "digits_cnn.keras"), "--after", "gap",
                        "--head", "dense:5:softmax", "--freeze-base", "--seed", str(seed), "-o", grafted,
                        "--force"], check=True, capture_output=True)
        for recipe in recipes:
            start_file = os.path.join(DIGITS, "digits_scratch.keras") if recipe.startswith("scratch") else grafted
            run = {"recipe": recipe, "seed": seed}
            run["keras_accuracy"], run["keras_seconds"], run["keras_info"] = keras_run(
                recipe, start_file, seed, train, test)
            if not args.keras_only:
                run["scion_accuracy"], run["scion_seconds"], run["scion_info"] = scion_run(
                    args.scion, recipe, start_file, seed, work, train_file, len(train[1]), test_x_file, test[1])
            runs.append(run)
            scion_note = "" if args.keras_only else (
                f", scion {run['scion_accuracy']:.4f}" if run["scion_accuracy"] is not None
                else f", scion failed: {run['scion_info']['error']}")
            print(f"# {recipe} seed {seed}: keras {run['keras_accuracy']:.4f}{scion_note}", file=sys.stderr)

    rows = []
    print(f"Digits 5-9 from a 0-4 CNN: {len(train[1])} training images, {len(test[1])} test images; "
          f"seeds {args.seeds}; accuracy in % (mean ± sample std over seeds).\n")
    print("| recipe | Keras | Scion | Scion − Keras (points) | Keras fit (s) | Scion finetune (s) |")
    print("|---|---|---|---|---|---|")
    for recipe in recipes:
        mine = [r for r in runs if r["recipe"] == recipe]
        k_mean, k_std = summary([r["keras_accuracy"] for r in mine])
        s_mean, s_std = summary([r.get("scion_accuracy") for r in mine])
        k_time = float(np.mean([r["keras_seconds"] for r in mine]))
        s_times = [r["scion_seconds"] for r in mine if r.get("scion_accuracy") is not None]
        s_time = float(np.mean(s_times)) if s_times else None
        difference = None if s_mean is None else 100 * (s_mean - k_mean)
        rows.append({"recipe": recipe, "keras_mean": k_mean, "keras_std": k_std, "scion_mean": s_mean,
                     "scion_std": s_std, "difference_points": difference, "keras_seconds": k_time,
                     "scion_seconds": s_time})
        print(f"| {recipe} | {cell(k_mean, k_std)} | {cell(s_mean, s_std)} | "
              f"{'n/a' if difference is None else f'{difference:+.1f}'} | {k_time:.2f} | "
              f"{'n/a' if s_time is None else f'{s_time:.2f}'} |")
    errors = {(r["recipe"], r["scion_info"]["error"]) for r in runs if "error" in r.get("scion_info", {})}
    for recipe, error in sorted(errors):
        print(f"\n{recipe}: scion finetune failed: {error}")
    thawed = next((r["keras_info"] for r in runs if r["recipe"] == "two-phase"), None)
    if thawed:
        print(f"\ntwo-phase, Keras: {thawed['base_layers']} base layers; top {UNFREEZE_TOP} = "
              f"{', '.join(thawed['top'])}; unfrozen: {', '.join(thawed['unfrozen'])} "
              f"(with weights: {', '.join(thawed['unfrozen_with_weights']) or 'none'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": seeds, "recipes": rows, "runs": runs}, f, indent=1)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
