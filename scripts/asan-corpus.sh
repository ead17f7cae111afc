#!/usr/bin/env bash
# The hostile corpus (Tests/Hostile, corpus.json) through a `scion` built with AddressSanitizer:
# each file must end in exit status 1 with one `error:` line naming it, with no sanitizer report
# (an ASan report exits with 23 here, so it cannot pass for a clean error). docs/hostile-inputs.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=.build/asan
swift build --scratch-path "$build" -Xswiftc -sanitize=address --product scion 2>&1 | grep -E "error|Build of product" || true
scion="$build/debug/scion"
[ -x "$scion" ] || { echo "scion was not built with AddressSanitizer" >&2; exit 1; }
export ASAN_OPTIONS="exitcode=23:detect_leaks=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0"
python3 - "$scion" <<'PY'
import json, os, subprocess, sys, tempfile
scion = sys.argv[1]
cases = json.load(open("Tests/Hostile/corpus.json"))
passed = failed = 0
with tempfile.TemporaryDirectory() as out:
    for case in cases:
        path = os.path.join("Tests/Hostile", case["file"])
        args = [a.replace("{file}", path).replace("{output}", os.path.join(out, case["file"])) for a in case["args"]]
        try:
            result = subprocess.run([scion] + args, capture_output=True, text=True, errors="replace", timeout=60)
            lines = result.stderr.strip().splitlines()
            ok = (result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: " + path)
                  and case["expect"] in lines[0])
            detail = lines[0] if len(lines) == 1 else f"exit {result.returncode}, {len(lines)} lines: {result.stderr[-400:]}"
        except subprocess.TimeoutExpired:
            ok, detail = False, "did not finish in 60 s"
        passed += ok
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {case['file']}: {detail}", flush=True)
    left = os.listdir(out)
    if left:
        failed += 1
        print(f"FAIL files written: {left}")
print(f"asan-corpus: {passed} passed, {failed} failed, 0 skipped")
sys.exit(1 if failed else 0)
PY
