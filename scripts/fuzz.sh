#!/usr/bin/env bash
# Fuzzes Scion's readers with libFuzzer under AddressSanitizer: the ONNX reader, the Keras config
# parser, the .keras archive reader (zip, config, weights' HDF5), .npy/.npz and the JPEG/PNG decoders. Each target first
# runs every file of the hostile corpus once (regressions), then fuzzes for FUZZ_SECONDS from seeds
# taken from the fixtures. A crash, a leak-free hang (-timeout) or an allocation over -rss_limit_mb
# fails the run and leaves the input in .build/fuzz/artifacts. docs/hostile-inputs.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
build=.build/fuzz
for target in FuzzONNX FuzzKerasConfig FuzzKerasArchive FuzzNumpy FuzzImage; do
    SCION_FUZZ=1 swift build --scratch-path "$build" -Xswiftc -sanitize=fuzzer,address --product "$target" 2>&1 \
        | grep -E "error|Build of product" || true
    [ -x "$build/debug/$target" ] || { echo "$target was not built" >&2; exit 1; }
done
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
mkdir -p "$seeds"/{FuzzONNX,FuzzKerasConfig,FuzzKerasArchive,FuzzNumpy,FuzzImage} "$build/artifacts"
find fixtures/tf2onnx fixtures/torch -name '*.onnx' -size -64k -exec cp {} "$seeds/FuzzONNX/" \;
# config.json of each archive (python3's zipfile: no unzip needed on a fresh machine).
configs() { python3 -c 'import sys, zipfile, os
for archive in sys.argv[2:]:
    with zipfile.ZipFile(archive) as z, open(os.path.join(sys.argv[1], os.path.basename(archive) + ".json"), "wb") as f:
        f.write(z.read("config.json"))' "$@"; }
configs "$seeds/FuzzKerasConfig" fixtures/keras3/*.keras
find fixtures/keras3 -name '*.keras' -size -40k -exec cp {} "$seeds/FuzzKerasArchive/" \;
find fixtures/keras3 -name '*.input.npy' -size -16k -exec cp {} "$seeds/FuzzNumpy/" \;
cp Tests/Hostile/train_nan.npz "$seeds/FuzzNumpy/"
# Every mode of the image fixtures (gray, palette, 16-bit, alpha PNGs; progressive, CMYK, EXIF JPEGs).
find fixtures/images/digits -type f \( -name '*.png' -o -iname '*.jp*g' \) -exec cp {} "$seeds/FuzzImage/" \;
mkdir -p "$seeds/hostile-configs"
configs "$seeds/hostile-configs" Tests/Hostile/config_*.keras
declare -A hostile=([FuzzONNX]="Tests/Hostile/*.onnx" [FuzzKerasConfig]="$seeds/hostile-configs/*.json" [FuzzKerasArchive]="Tests/Hostile/*.keras"
                    [FuzzNumpy]="Tests/Hostile/*.npy Tests/Hostile/*.npz" [FuzzImage]="Tests/Hostile/image_*.png Tests/Hostile/image_*.jpg")
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0"
# One target per core at a time: the targets share nothing, and each gets its whole FUZZ_SECONDS.
# Each writes its lines and its verdict to files, printed in order when all are done.
fuzz_target() {
    local target=$1 status=0
    local binary="$build/debug/$target" out="$build/$target.summary"
    local options=(-rss_limit_mb=3072 -timeout=20 -artifact_prefix="$build/artifacts/$target-")
    # CI passes FUZZ_SEED so that a red run can be replayed; by hand each run explores afresh.
    [ -z "${FUZZ_SEED:-}" ] || options+=(-seed="$FUZZ_SEED")
    local files=(${hostile[$target]})
    : > "$out"
    if [ ${#files[@]} -gt 0 ]; then
        "$binary" "${options[@]}" "${files[@]}" > "$build/$target.hostile.log" 2>&1 || { echo "$target: a hostile corpus file fails (log: $build/$target.hostile.log)" >> "$out"; status=1; }
    fi
    local work; work=$(mktemp -d)
    # The image decoders are small (about 900 inputs/s here): half the time keeps CI's budget.
    local target_seconds=$seconds
    [ "$target" != FuzzImage ] || target_seconds=$(( (seconds + 1) / 2 ))
    if "$binary" "${options[@]}" -max_total_time="$target_seconds" -print_final_stats=1 "$work" "$seeds/$target" > "$build/$target.log" 2>&1; then
        local runs; runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$build/$target.log" | grep -oE "[0-9]+$" || echo "?")
        echo "fuzz $target: ok, $runs inputs in ${target_seconds} s, ${#files[@]} hostile files" >> "$out"
    else
        { echo "fuzz $target: FAILED (log: $build/$target.log; input in $build/artifacts)"; tail -30 "$build/$target.log"; } >> "$out"
        status=1
    fi
    rm -rf "$work"
    echo $status > "$build/$target.status"
}
targets=(FuzzONNX FuzzKerasConfig FuzzKerasArchive FuzzNumpy FuzzImage)
for target in "${targets[@]}"; do
    rm -f "$build/$target.status"
    fuzz_target "$target" &
    while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n || true; done
done
wait
status=0 passed=0 failed=0
for target in "${targets[@]}"; do
    cat "$build/$target.summary"
    if [ "$(cat "$build/$target.status" 2>/dev/null)" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
done
echo "fuzz: $passed passed, $failed failed, 0 skipped"
exit $status
