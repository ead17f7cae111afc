#!/bin/sh
# Regenerates Sources/ONNXProto from proto/onnx.proto with protoc-c (Debian: protobuf-c-compiler).
# The generated files are committed, so building Scion never needs protoc-c; run this only after
# editing proto/onnx.proto, and commit the result.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
output="$root/Sources/ONNXProto"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v protoc-c >/dev/null 2>&1 || {
    echo "protoc-c not found (apt-get install protobuf-c-compiler)" >&2
    exit 1
}

protoc-c --proto_path="$root/proto" --c_out="$work" "$root/proto/onnx.proto"

mkdir -p "$output/include"
# SwiftPM puts include/ on the header search path, so the source includes the header by its bare
# name rather than the path protoc-c assumes relative to the .proto file.
sed 's|^#include ".*onnx\.pb-c\.h"|#include "onnx.pb-c.h"|' "$work/onnx.pb-c.c" > "$output/onnx.pb-c.c"
cp "$work/onnx.pb-c.h" "$output/include/onnx.pb-c.h"
echo "wrote $output/onnx.pb-c.c and $output/include/onnx.pb-c.h"
