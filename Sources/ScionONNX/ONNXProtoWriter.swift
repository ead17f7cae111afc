#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CProtobufC
import ONNXProto

/// Writes a model without ever holding all of it serialized, or all its weights, in memory.
///
/// protobuf-c can only pack a whole message, and ModelProto.graph is one length-delimited field
/// holding every initializer. But protobuf lets a message's fields come in any order and lets a
/// repeated field be split, so the file is written as:
///
///     ModelProto packed without its graph
///     graph key (field 7) + length of the whole graph
///         GraphProto packed without its initializers
///         for each initializer: key (field 5) + length,
///             TensorProto packed without raw_data, then raw_data's key (field 9) + length + bytes
///
/// Every length is known before anything is written: protobuf-c sizes the packed parts, and each
/// initializer's byte count is known without reading it. Each initializer's bytes are then read
/// just before they are written and dropped right after.
struct ONNXProtoStreamWriter {
    let file: String

    private struct Initializer {
        var tensor: ONNXTensor
        var header: UnsafeMutablePointer<Onnx__TensorProto>
        var payload: ONNXProtoPayload?
        /// Bytes of the TensorProto: header plus the raw_data field.
        var length: Int
    }

    private static let graphField = 7
    private static let initializerField = 5
    private static let rawDataField = 9

    func write(_ model: ONNXModel, to path: String) throws {
        let arena = ONNXProtoArena()
        let encoder = ONNXProtoEncoder(file: file, arena: arena)
        let modelMessage = encoder.model(model)
        let graphMessage = try encoder.graph(model.graph, depth: 0, includeInitializers: false)

        var initializers: [Initializer] = []
        var graphLength = onnx__graph_proto__get_packed_size(graphMessage)
        for tensor in model.graph.initializers {
            let (header, payload) = try encoder.tensorHeader(tensor)
            var length = onnx__tensor_proto__get_packed_size(header)
            if let payload {
                length = try sum(length, Self.fieldLength(contentLength: payload.byteCount), tensor: tensor)
            }
            graphLength = try sum(graphLength, Self.fieldLength(contentLength: length), tensor: tensor)
            initializers.append(Initializer(tensor: tensor, header: header, payload: payload, length: length))
        }

        let output = try ONNXProtoFileOutput(path: path, file: file)
        do {
            try output.pack { onnx__model_proto__pack_to_buffer(modelMessage, $0) }
            output.appendKey(field: Self.graphField, length: graphLength)
            try output.pack { onnx__graph_proto__pack_to_buffer(graphMessage, $0) }
            for initializer in initializers {
                output.appendKey(field: Self.initializerField, length: initializer.length)
                try output.pack { onnx__tensor_proto__pack_to_buffer(initializer.header, $0) }
                if let payload = initializer.payload {
                    output.appendKey(field: Self.rawDataField, length: payload.byteCount)
                    let bytes = try encoder.read(payload, of: initializer.tensor)
                    bytes.withUnsafeBytes { output.append($0) }
                    try output.check()
                }
            }
            try output.finish()
        } catch {
            output.abandon()
            throw error
        }
    }

    /// Bytes a length-delimited field takes: key, length varint, contents. Every field Scion
    /// streams has a number below 16, so its key is one byte.
    static func fieldLength(contentLength: Int) -> Int {
        1 + varintLength(UInt64(contentLength)) + contentLength
    }

    static func varintLength(_ value: UInt64) -> Int {
        var length = 1
        var rest = value >> 7
        while rest != 0 {
            length += 1
            rest >>= 7
        }
        return length
    }

    private func sum(_ first: Int, _ second: Int, tensor: ONNXTensor) throws -> Int {
        let total = first.addingReportingOverflow(second)
        guard !total.overflow else {
            throw ONNXError(.writeFailed, file: file, subject: "tensor '\(tensor.name)'", "the model is too large to write")
        }
        return total.partialValue
    }
}

/// A file written through a buffer of its own, taking both protobuf-c's many small appends (through
/// a `ScionProtoSink`) and large weight buffers (directly). The first write error is kept and
/// reported at the next check, since protobuf-c's append callback cannot throw.
final class ONNXProtoFileOutput {
    private let descriptor: Int32
    private let path: String
    private let file: String
    private var buffer: [UInt8] = []
    private let bufferCapacity = 1 << 20
    private var failure: String?
    private var isClosed = false

    init(path: String, file: String) throws {
        self.path = path
        self.file = file
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ONNXError(.writeFailed, file: file, "cannot create \(path): \(systemErrorDescription())")
        }
        buffer.reserveCapacity(bufferCapacity)
    }

    deinit {
        if !isClosed { close(descriptor) }
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil, !bytes.isEmpty else { return }
        if buffer.count + bytes.count > bufferCapacity {
            flush()
            if bytes.count >= bufferCapacity {
                writeFully(bytes)
                return
            }
        }
        buffer.append(contentsOf: bytes)
    }

    /// The key of a length-delimited field (wire type 2) followed by the length.
    func appendKey(field: Int, length: Int) {
        var bytes: [UInt8] = []
        for var value in [UInt64(field << 3 | 2), UInt64(length)] {
            while value >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
        }
        bytes.withUnsafeBytes { append($0) }
    }

    /// Runs a protobuf-c `*_pack_to_buffer` call with this file as its buffer.
    func pack(_ body: (UnsafeMutablePointer<ProtobufCBuffer>) -> Int) throws {
        let sink = UnsafeMutablePointer<ScionProtoSink>.allocate(capacity: 1)
        defer { sink.deallocate() }
        let append: @convention(c) (UnsafeMutablePointer<ProtobufCBuffer>?, Int, UnsafePointer<UInt8>?) -> Void = {
            buffer, length, data in
            guard let buffer, let data, length > 0,
                  let context = scion_proto_sink_from_buffer(buffer)?.pointee.context else { return }
            let output = Unmanaged<ONNXProtoFileOutput>.fromOpaque(context).takeUnretainedValue()
            output.append(UnsafeRawBufferPointer(start: data, count: length))
        }
        sink.initialize(to: ScionProtoSink(base: ProtobufCBuffer(append: append),
                                           context: Unmanaged.passUnretained(self).toOpaque()))
        _ = withExtendedLifetime(self) { body(scion_proto_sink_buffer(sink)) }
        try check()
    }

    /// Throws the first write error, if any.
    func check() throws {
        if let failure {
            throw ONNXError(.writeFailed, file: file, "writing \(path) failed: \(failure)")
        }
    }

    func finish() throws {
        flush()
        try check()
        isClosed = true
        guard close(descriptor) == 0 else {
            throw ONNXError(.writeFailed, file: file, "writing \(path) failed: \(systemErrorDescription())")
        }
    }

    /// Closes and removes the partial file after a failure.
    func abandon() {
        if !isClosed {
            isClosed = true
            close(descriptor)
        }
        unlink(path)
    }

    private func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { writeFully($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count, failure == nil {
            let written = write(descriptor, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                failure = systemErrorDescription()
            } else {
                offset += written
            }
        }
    }
}
