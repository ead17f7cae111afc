#!/usr/bin/env python3
"""`scion graph`: how long a large model takes to draw (issue #19's target: DenseNet121, 429 layers,
to SVG in under 2 s with the release build).

Whole process timed (reading the model, summary, Graphviz layout and SVG rendering, the write),
fastest of --runs, since the machine is shared. Also checks the SVG parses and holds every layer.

Make the models first (`fixtures/make_applications.py --keras 3`, into /work/apps/keras3 here).
Then: bench/graph_bench.py [--models DenseNet121 ResNet50 ...] [--folder DIR] [--runs 5]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DenseNet121", "ResNet50", "MobileNetV2", "InceptionV3", "EfficientNetB0"])
    parser.add_argument("--folder", default="/work/apps/keras3")
    parser.add_argument("--scion", default=os.path.join(ROOT, ".build", "release", "scion"))
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    print("| model | layers drawn | SVG KB | scion graph -o .svg (s, fastest of %d) | --fold-repeats (s) | boxes folded |" % arguments.runs)
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in arguments.models:
            model = os.path.join(arguments.folder, name + ".keras")
            row = [name]
            for extra in ([], ["--fold-repeats"]):
                output = os.path.join(folder, name + ("_folded" if extra else "") + ".svg")
                times = []
                for _ in range(arguments.runs):
                    start = time.perf_counter()
                    subprocess.run([arguments.scion, "graph", model, "-o", output, "--force", "-q"] + extra, check=True)
                    times.append(time.perf_counter() - start)
                groups = ElementTree.parse(output).getroot().iter("{http://www.w3.org/2000/svg}g")
                layers = sum(1 for group in groups if "layer" in group.get("class", "").split())
                if not extra:
                    row += [str(layers), "%.0f" % (os.path.getsize(output) / 1024), "%.2f" % min(times)]
                else:
                    row += ["%.2f" % min(times), str(int(row[1]) - layers)]
            print("| " + " | ".join(row) + " |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
