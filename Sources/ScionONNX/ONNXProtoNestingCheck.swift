import CProtobufC
import ONNXProto

/// Measures how deeply the messages of a serialized `ModelProto` nest, before protobuf-c parses it.
///
/// protobuf-c descends into nested messages recursively with no limit, so a small hostile file that
/// nests attribute → graph → node → attribute thousands of times would overflow the stack and crash
/// the process. This walk is iterative: it follows the same descriptors protobuf-c uses to know
/// which length-delimited fields are messages, skips everything else (weights included) without
/// reading it, and refuses a file as soon as the nesting passes the limit.
enum ONNXProtoNestingCheck {
    /// Messages nested deeper than this are refused. Each subgraph level costs three messages
    /// (AttributeProto, GraphProto, NodeProto), and the deepest chain inside a graph is five more
    /// (ValueInfoProto → TypeProto → Tensor → TensorShapeProto → Dimension), so every model within
    /// `ONNXProtoCodec.maximumSubgraphDepth` passes.
    static let maximumMessageDepth = 3 * ONNXProtoCodec.maximumSubgraphDepth + 8

    private struct Frame {
        var descriptor: UnsafePointer<ProtobufCMessageDescriptor>
        /// Offset just past this message's bytes.
        var end: Int
    }

    static func check(_ bytes: UnsafeRawBufferPointer, file: String) throws {
        try withUnsafePointer(to: onnx__model_proto__descriptor) { root in
            try walk(bytes, root: root, file: file)
        }
    }

    private static func walk(_ bytes: UnsafeRawBufferPointer, root: UnsafePointer<ProtobufCMessageDescriptor>,
                             file: String) throws {
        var reader = ONNXWireReader(bytes: bytes)
        var stack = [Frame(descriptor: root, end: bytes.count)]
        func malformed() -> ONNXError {
            ONNXError(.invalidProtobuf, file: file,
                      "not an ONNX model (protobuf parse failed near byte \(reader.position))")
        }
        while let frame = stack.last {
            if reader.position == frame.end {
                stack.removeLast()
                continue
            }
            guard let key = reader.varint(limit: frame.end) else { throw malformed() }
            let fieldNumber = key >> 3
            guard fieldNumber > 0, fieldNumber <= 0x1FFF_FFFF else { throw malformed() }
            switch key & 7 {
            case 0:
                guard reader.varint(limit: frame.end) != nil else { throw malformed() }
            case 1:
                guard reader.skip(8, limit: frame.end) else { throw malformed() }
            case 5:
                guard reader.skip(4, limit: frame.end) else { throw malformed() }
            case 2:
                guard let length = reader.varint(limit: frame.end), length <= UInt64(frame.end - reader.position) else {
                    throw malformed()
                }
                let end = reader.position + Int(length)
                if let field = protobuf_c_message_descriptor_get_field(frame.descriptor, UInt32(fieldNumber)),
                   field.pointee.type == PROTOBUF_C_TYPE_MESSAGE,
                   let child = field.pointee.descriptor {
                    guard stack.count < maximumMessageDepth else {
                        throw ONNXError(.invalidProtobuf, file: file,
                                        "messages nest more than \(maximumMessageDepth) levels deep "
                                            + "(subgraphs nested too deeply?)")
                    }
                    stack.append(Frame(descriptor: child.assumingMemoryBound(to: ProtobufCMessageDescriptor.self),
                                       end: end))
                } else {
                    reader.position = end
                }
            default:
                // Groups (3 and 4) are not used by ONNX and protobuf-c does not read them; 6 and 7
                // do not exist.
                throw malformed()
            }
        }
    }
}

/// Reads protobuf wire primitives from a byte buffer, never past a given limit.
struct ONNXWireReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// A base-128 varint of at most ten bytes, or nil when it runs past `limit` or is too long.
    mutating func varint(limit: Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < limit, shift < 70 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    mutating func skip(_ count: Int, limit: Int) -> Bool {
        guard count <= limit - position else { return false }
        position += count
        return true
    }
}
