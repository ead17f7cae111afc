#!/usr/bin/env python3
"""Image-folder throughput: decode + resize + the frozen base's features, Scion against Keras.

A folder of N JPEGs (4 class folders; smooth random scenes with shapes and sensor-like noise, at phone
photo sizes 640x480 to 1024x768, both orientations, written by Pillow at quality 90) is generated once
(cached in --folder). Both sides run keras.applications MobileNetV2 cut at its global pooling (the
1280 features a frozen base hands a head), resizing to 224x224 bilinear, mobilenet_v2 preprocessing:

- Scion: `scion finetune` of the base + a Dense(4) head, base frozen, one epoch, release build; its
  plan's `prefixSeconds` is the streamed pass that decodes, resizes, preprocesses and runs the base
  once per image (the feature cache), timed inside the process. The whole process's time and peak RSS
  (/usr/bin/time) are reported too: the folder decodes to N x 224 x 224 x 3 float32 (1.2 GB for 2,000)
  but is never held whole.
- Keras 3.15 (TensorFlow backend: image_dataset_from_directory is tf.data, absent from the JAX-only
  oracle venv; run this script with the fixtures venv): image_dataset_from_directory(batch_size=64,
  image_size=(224, 224)) mapped through preprocess_input, then model.predict(dataset) of the same base
  loaded from the same .keras file, timed from the loaded model.

Fastest of --repeat runs each, side by side in one run. The CPU seconds (user + system: Scion's whole
process, Keras's dataset + predict) are printed too, per image: on a shared machine they say more than
the wall time about the work each side does.

--image-side adds the same comparison with a trivial network (Input, GlobalAveragePooling2D, Dense(4)):
Scion's feature pass is then decoding, resizing and preprocessing alone, against Keras iterating its
image_dataset_from_directory + preprocess_input pipeline without a model.

--scion BINARY (repeatable) compares several builds (main's against a branch's), run alternately;
--no-keras times Scion alone (TensorFlow not needed then: any venv with numpy and Pillow, but Keras
is still needed to write the cut base, so use the fixtures venv).

Usage: /opt/scion-fixtures-venv/bin/python bench/images_bench.py [--images 2000] [--repeat 2]
       [--folder /tmp/scion_images_bench] [--model /work/apps/keras3/MobileNetV2.keras]
       [--scion .build/release/scion ...] [--image-side] [--no-keras]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCION = os.path.join(ROOT, ".build", "release", "scion")
SIZES = [(640, 480), (800, 600), (1024, 768), (480, 640), (600, 800), (768, 1024)]
CLASSES = ["beach", "forest", "city", "snow"]


def make_folder(folder, count):
    marker = os.path.join(folder, f".complete-{count}")
    if os.path.exists(marker):
        return
    random = np.random.default_rng(0)
    for index in range(count):
        name = CLASSES[index % len(CLASSES)]
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        width, height = SIZES[random.integers(len(SIZES))]
        # A smooth scene: a coarse random colour field upscaled, then shapes, blur and noise.
        coarse = random.integers(0, 256, (random.integers(3, 8), random.integers(3, 8), 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(random.integers(3, 9)):
            x, y = random.integers(0, width), random.integers(0, height)
            r = random.integers(20, max(21, width // 4))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in random.integers(0, 256, 3)))
        image = image.filter(ImageFilter.GaussianBlur(2))
        pixels = np.asarray(image, dtype=np.int16) + random.normal(0, 6, (height, width, 3)).astype(np.int16)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, name, f"{name}_{index:05d}.jpg"), quality=90)
    open(marker, "w").close()


def scion_run(binary, grafted, folder, work):
    """(features pass s, whole process s, peak RSS MiB, cached, CPU s of the whole process)."""
    output = os.path.join(work, "out.keras")
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", binary, "finetune", grafted, "--data", folder, "--epochs", "1",
                             "--preprocess", "mobilenet_v2", "--batch-size", "64", "-o", output, "--force", "--json"],
                            check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    report = json.loads(result.stdout)
    peak_kb, user, system = result.stderr.strip().splitlines()[-1].split()
    return report["phases"][0]["prefixSeconds"], seconds, int(peak_kb) / 1024, report["phases"][0]["cached"], float(user) + float(system)


def keras_run(base_path, folder, predict=True):
    """(seconds, features shape, CPU s): the dataset and predict, or (predict=False) the dataset alone."""
    import keras
    import tensorflow as tf
    base = keras.models.load_model(base_path, compile=False)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    dataset = keras.utils.image_dataset_from_directory(folder, batch_size=64, image_size=(224, 224), shuffle=False, verbose=False)
    dataset = dataset.map(lambda x, y: keras.applications.mobilenet_v2.preprocess_input(x)).prefetch(tf.data.AUTOTUNE)
    if predict:
        features = base.predict(dataset, verbose=0)
    else:
        features = np.concatenate([batch.numpy().mean(axis=(1, 2)) for batch in dataset])
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    keras.backend.clear_session()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, features.shape, cpu


def compare(label, binaries, grafted, base_path, folder, work, args, predict=True):
    """Runs every Scion binary and Keras alternately --repeat times; prints the table's rows."""
    n = args.images
    scion_best, keras_best = {}, None
    for _ in range(args.repeat):
        for binary in binaries:
            run = scion_run(binary, grafted, folder, work)
            print(f"{label} scion {binary}: features pass {run[0]:.1f} s, whole process {run[1]:.1f} s (CPU {run[4]:.1f} s, "
                  f"{1000 * run[4] / n:.1f} ms an image), peak RSS {run[2]:.0f} MiB, cached {run[3]}, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
            if binary not in scion_best or run[0] < scion_best[binary][0]:
                scion_best[binary] = run
        if not args.no_keras:
            seconds, shape, cpu = keras_run(base_path, folder, predict=predict)
            print(f"{label} keras: image_dataset_from_directory{' + predict' if predict else ''} {seconds:.1f} s (CPU {cpu:.1f} s, "
                  f"{1000 * cpu / n:.1f} ms an image), features {shape}, load {os.getloadavg()[0]:.1f}", flush=True)
            if keras_best is None or seconds < keras_best[0]:
                keras_best = (seconds, cpu)
    rows = []
    for binary, run in scion_best.items():
        versus = f"{keras_best[0] / run[0]:.2f}x" if keras_best else "-"
        rows.append(f"| {label} | {binary} | {n / run[0]:.0f} | {1000 * run[4] / n:.1f} | {run[1]:.1f} | {run[2]:.0f} | {versus} |")
    if keras_best:
        rows.append(f"| {label} | Keras | {n / keras_best[0]:.0f} | {1000 * keras_best[1] / n:.1f} | | | |")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--folder", default="/tmp/scion_images_bench")
    parser.add_argument("--model", default="/work/apps/keras3/MobileNetV2.keras")
    parser.add_argument("--scion", action="append", help="a scion binary (repeatable; default: this checkout's release build)")
    parser.add_argument("--image-side", action="store_true", help="also compare with a trivial network (the image side alone)")
    parser.add_argument("--no-keras", action="store_true", help="time Scion only")
    args = parser.parse_args()
    binaries = args.scion or [SCION]
    folder = os.path.join(args.folder, str(args.images))
    started = time.perf_counter()
    make_folder(folder, args.images)
    print(f"folder {folder}: {args.images} JPEGs ({time.perf_counter() - started:.0f} s to make or find)", flush=True)
    work = tempfile.mkdtemp()
    grafted = os.path.join(work, "grafted.keras")
    subprocess.run([binaries[0], "edit", args.model, "--drop-top", "--head", f"gap,dense:{len(CLASSES)}:softmax", "--freeze-base",
                    "--seed", "0", "-o", grafted, "--force"], check=True, capture_output=True)
    # Keras's side: the same file's base, cut at the pooling Scion's head starts from.
    import keras
    grafted_model = keras.models.load_model(grafted, compile=False)
    base = keras.Model(grafted_model.inputs, grafted_model.layers[-2].output)
    base_path = os.path.join(work, "base.keras")
    base.save(base_path)
    keras.backend.clear_session()
    rows = compare("MobileNetV2", binaries, grafted, base_path, folder, work, args)
    if args.image_side:
        # A network that costs nothing: Scion's frozen prefix is the pooling, Keras iterates its dataset.
        trivial = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.GlobalAveragePooling2D(),
                                    keras.layers.Dense(len(CLASSES), activation="softmax")])
        trivial_path = os.path.join(work, "trivial.keras")
        trivial.save(trivial_path)
        keras.backend.clear_session()
        rows += compare("image side", binaries, trivial_path, trivial_path, folder, work, args, predict=False)
    print()
    print(f"{args.images} images; wall: the features pass (Scion) or dataset + predict (Keras), fastest of {args.repeat}; "
          "CPU: whole process (Scion) or dataset + predict (Keras)")
    print("| network | side | images/s | CPU ms an image | Scion whole process (s) | Scion peak RSS (MiB) | Scion against Keras (wall) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
