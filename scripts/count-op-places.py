#!/usr/bin/env python3
"""Count the places the compiler lists when a new op is added (docs/adding-an-op.md).

    python3 scripts/count-op-places.py [Op|ONNXOperation]

Exports HEAD into a temporary folder, adds `case probe` to the enum (Sources/ScionIR/Op.swift), then
builds repeatedly: at every "switch must be exhaustive" it inserts `case .probe: fatalError()` (or
`.onnx(.probe)` in a switch over an `Op`) after the switch's opening brace and records the place,
until the build passes. Prints the places (file:line). A clean debug build per run: a few minutes."""
import re, subprocess, sys, collections, tempfile, shutil
enum = sys.argv[1] if len(sys.argv) > 1 else "Op"
root = tempfile.mkdtemp(prefix="scion-op-places-")
subprocess.run(f"git archive HEAD | tar -x -C {root}", shell=True, check=True)
op = f"{root}/Sources/ScionIR/Op.swift"
s = open(op).read()
s = s.replace(f"public enum {enum}: Equatable, Sendable {{\n", f"public enum {enum}: Equatable, Sendable {{\n    case probe\n", 1)
open(op, "w").write(s)
places = []
for attempt in range(60):
    r = subprocess.run(["swift", "build"], cwd=root, capture_output=True, text=True)
    log = r.stdout + r.stderr
    errors = sorted(set(re.findall(r"^(/[^:\n]+\.swift):(\d+):(\d+): error: (.*)$", log, re.M)))
    if not errors:
        break
    exhaustive = [(f, int(l), int(c)) for f, l, c, m in errors if "switch must be exhaustive" in m]
    other = [(f, l, m) for f, l, c, m in errors if "switch must be exhaustive" not in m]
    if not exhaustive:
        print("other errors:", other[:10]); break
    byfile = collections.defaultdict(list)
    for f, l, c in exhaustive: byfile[f].append((l, c))
    for f, spots in byfile.items():
        text = open(f).read()
        lines = text.split("\n")
        offsets = [0]
        for line in lines: offsets.append(offsets[-1] + len(line) + 1)
        for l, c in sorted(spots, reverse=True):
            i = offsets[l - 1] + c - 1
            j = text.index("{", i)
            subject = text[i:j].strip().removeprefix("switch").strip()
            owner = re.findall(r"(?:extension|enum) (\w+)", text[:i])
            over_op = bool(re.search(r"(\bop|\.op)\s*$", subject.strip())) or (subject.strip() == "self" and owner and owner[-1] == "Op")
            case = ".probe" if enum == "Op" or not over_op else ".onnx(.probe)"
            text = text[:j + 1] + f"\ncase {case}: fatalError()" + text[j + 1:]
            places.append(f"{f[len(root) + 1:]}:{l}")
        open(f, "w").write(text)
print(f"{len(places)} places in {len(set(p.split(':')[0] for p in places))} files")
for p in sorted(places): print("  " + p)
shutil.rmtree(root)
