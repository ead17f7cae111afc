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
process, Keras's dataset + predict) are printed too: on a shared machine they say more than the wall
time about the work each side does.

Usage: /opt/scion-fixtures-venv/bin/python bench/images_bench.py [--images 2000] [--repeat 2]
       [--folder /tmp/scion_images_bench] [--model /work/apps/keras3/MobileNetV2.keras]
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


def scion_run(grafted, folder, work):
    output = os.path.join(work, "out.keras")
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", SCION, "finetune", grafted, "--data", folder, "--epochs", "1",
                             "--preprocess", "mobilenet_v2", "--batch-size", "64", "-o", output, "--force", "--json"],
                            check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    report = json.loads(result.stdout)
    peak_kb, user, system = result.stderr.strip().splitlines()[-1].split()
    return report["phases"][0]["prefixSeconds"], seconds, int(peak_kb) / 1024, report["phases"][0]["cached"], float(user) + float(system)


def keras_run(base_path, folder):
    import keras
    import tensorflow as tf
    base = keras.models.load_model(base_path, compile=False)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    dataset = keras.utils.image_dataset_from_directory(folder, batch_size=64, image_size=(224, 224), shuffle=False, verbose=False)
    dataset = dataset.map(lambda x, y: keras.applications.mobilenet_v2.preprocess_input(x)).prefetch(tf.data.AUTOTUNE)
    features = base.predict(dataset, verbose=0)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    keras.backend.clear_session()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, features.shape, cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--folder", default="/tmp/scion_images_bench")
    parser.add_argument("--model", default="/work/apps/keras3/MobileNetV2.keras")
    args = parser.parse_args()
    folder = os.path.join(args.folder, str(args.images))
    started = time.perf_counter()
    make_folder(folder, args.images)
    print(f"folder {folder}: {args.images} JPEGs ({time.perf_counter() - started:.0f} s to make or find)", flush=True)
    work = tempfile.mkdtemp()
    grafted = os.path.join(work, "grafted.keras")
    subprocess.run([SCION, "edit", args.model, "--drop-top", "--head", f"gap,dense:{len(CLASSES)}:softmax", "--freeze-base",
                    "--seed", "0", "-o", grafted, "--force"], check=True, capture_output=True)
    # Keras's side: the same file's base, cut at the pooling Scion's head starts from.
    import keras
    grafted_model = keras.models.load_model(grafted, compile=False)
    base = keras.Model(grafted_model.inputs, grafted_model.layers[-2].output)
    base_path = os.path.join(work, "base.keras")
    base.save(base_path)
    keras.backend.clear_session()
    scion_best, keras_best = None, None
    for _ in range(args.repeat):
        run = scion_run(grafted, folder, work)
        print(f"scion: features pass {run[0]:.1f} s, whole process {run[1]:.1f} s (CPU {run[4]:.1f} s), peak RSS {run[2]:.0f} MiB, "
              f"cached {run[3]}", flush=True)
        scion_best = run if scion_best is None or run[0] < scion_best[0] else scion_best
        seconds, shape, cpu = keras_run(base_path, folder)
        print(f"keras: image_dataset_from_directory + predict {seconds:.1f} s (CPU {cpu:.1f} s), features {shape}", flush=True)
        keras_best = seconds if keras_best is None else min(keras_best, seconds)
    n = args.images
    print()
    print("| images | Scion decode + resize + features (images/s) | Keras image_dataset_from_directory + predict (images/s) | speed-up | Scion whole finetune process (s) | Scion peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    print(f"| {n} | {n / scion_best[0]:.0f} | {n / keras_best:.0f} | {keras_best / scion_best[0]:.2f}x | {scion_best[1]:.1f} | {scion_best[2]:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
