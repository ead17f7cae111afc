"""Lists every operator of ONNX's default domain in opsets 7 to 23, for docs/onnx-coverage.md.

Run in the oracle venv (the onnx version of Tests/Interop/requirements.txt):
    .build/oracle-venv/bin/python scripts/list_onnx_ops.py

Writes fixtures/onnx_operators.json: {"onnxVersion": ..., "opsets": [7, 23], "operators": {op_type:
{"sinceVersions": [...], "deprecated": since}}}: an operator is listed when some opset from 7 to 23 has
it, with the opsets in that range (and the last one before it) that introduced a version of it, and
the version that deprecated it, if any. ONNXCoverageTests reads it: every operator listed has a row.
"""
import json
import os

import onnx
from onnx import defs

HERE = os.path.dirname(os.path.abspath(__file__))
FIRST, LAST = 7, 23


def main():
    versions = {}
    latest = {}
    for schema in defs.get_all_schemas_with_history():
        if schema.domain not in ("", "ai.onnx") or schema.since_version > LAST:
            continue
        versions.setdefault(schema.name, set()).add(schema.since_version)
        if schema.name not in latest or latest[schema.name].since_version < schema.since_version:
            latest[schema.name] = schema
    # An operator whose newest version is a deprecation (Upsample from 10, Scatter from 11) is gone
    # from that opset on; one deprecated by opset 7 is in no opset of the range.
    deprecated = {name: schema.since_version for name, schema in latest.items() if schema.deprecated}
    operators = {}
    for name, since in sorted(versions.items()):
        if deprecated.get(name, LAST + 1) <= FIRST:
            continue
        in_range = sorted(v for v in since if v >= FIRST)
        before = [v for v in since if v < FIRST]
        entry = {"sinceVersions": ([max(before)] if before else []) + in_range}
        if name in deprecated:
            entry["deprecated"] = deprecated[name]
        operators[name] = entry
    path = os.path.join(os.path.dirname(HERE), "fixtures", "onnx_operators.json")
    with open(path, "w") as f:
        json.dump({"onnxVersion": onnx.__version__, "opsets": [FIRST, LAST], "operators": operators}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{path}: {len(operators)} operators from onnx {onnx.__version__}")


if __name__ == "__main__":
    main()
