#ifndef SCION_ONNXPROTO_H
#define SCION_ONNXPROTO_H
/* Umbrella header of the ONNXProto target: the C structs and functions protoc-c generated from
 * proto/onnx.proto (scripts/generate-onnx-proto.sh), and the output sink the streaming writer
 * packs through. */
#include "onnx.pb-c.h"
#include "ONNXProtoSink.h"
#endif
