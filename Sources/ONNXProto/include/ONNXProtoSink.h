#ifndef SCION_ONNXPROTO_SINK_H
#define SCION_ONNXPROTO_SINK_H
/* A protobuf-c output buffer that hands every piece protobuf-c packs to Swift, so a message can be
 * packed straight into the file being written instead of into one buffer the size of the message.
 * protobuf-c calls `base.append` with a pointer to `base`; since `base` is the first member, that
 * pointer is also the ScionProtoSink, and `context` carries the Swift writer. The two inline
 * functions make these conversions in C, where they are well defined, rather than in Swift. */
#include <protobuf-c/protobuf-c.h>

typedef struct ScionProtoSink {
    ProtobufCBuffer base;
    void *context;
} ScionProtoSink;

static inline ProtobufCBuffer *scion_proto_sink_buffer(ScionProtoSink *sink) {
    return &sink->base;
}

static inline ScionProtoSink *scion_proto_sink_from_buffer(ProtobufCBuffer *buffer) {
    return (ScionProtoSink *)buffer;
}
#endif
