import CProtobufC
import Foundation
import ONNXProto

/// Packs one ONNX node (attributes, subgraphs and all) into a string and back, so an op the reader
/// keeps opaque is written out exactly as it was read: the IR's `OpaqueAttributes.configuration` is a
/// string, and re-encoding the NodeProto with protobuf-c is the one representation that loses nothing.
enum ONNXNodePacking {
    /// Marks a configuration holding a packed NodeProto (base64 follows).
    static let prefix = "onnx-node:"

    static func pack(_ node: ONNXNode, file: String) throws -> String {
        let arena = ONNXProtoArena()
        let message = try ONNXProtoEncoder(file: file, arena: arena).node(node, index: 0, depth: 0)
        let size = onnx__node_proto__get_packed_size(message)
        var bytes = [UInt8](repeating: 0, count: size)
        let written = bytes.withUnsafeMutableBufferPointer { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            return onnx__node_proto__pack(message, base)
        }
        guard written == size else {
            throw ONNXError(.invalidGraph, file: file, subject: node.name, "the node could not be packed to be kept as it is")
        }
        return prefix + Data(bytes).base64EncodedString()
    }

    static func unpack(_ configuration: String, file: String, subject: String) throws -> ONNXNode {
        guard configuration.hasPrefix(prefix),
              let data = Data(base64Encoded: String(configuration.dropFirst(prefix.count))) else {
            throw ONNXError(.invalidGraph, file: file, subject: subject, "the kept ONNX node is not readable")
        }
        let bytes = [UInt8](data)
        guard let message = bytes.withUnsafeBufferPointer({ buffer -> UnsafeMutablePointer<Onnx__NodeProto>? in
            guard let base = buffer.baseAddress else { return nil }
            return onnx__node_proto__unpack(nil, buffer.count, base)
        }) else {
            throw ONNXError(.invalidGraph, file: file, subject: subject, "the kept ONNX node is not readable")
        }
        defer { onnx__node_proto__free_unpacked(message, nil) }
        return try ONNXProtoDecoder(file: file).node(message, index: 0, depth: 0)
    }
}

/// Reading an ONNX node kept opaque, for code outside this module (the executor's fallback for
/// dynamic-shape ops).
package enum ONNXOpaqueNode {
    /// The node's scalar numeric attributes (ints and floats), or nil when `configuration` is not a
    /// packed ONNX node.
    package static func numericAttributes(_ configuration: String) -> [String: Double]? {
        guard let node = try? ONNXNodePacking.unpack(configuration, file: "", subject: "") else { return nil }
        var result: [String: Double] = [:]
        for attribute in node.attributes {
            switch attribute.value {
            case .int(let value): result[attribute.name] = Double(value)
            case .float(let value): result[attribute.name] = Double(value)
            default: break
            }
        }
        return result
    }

    /// The node's integer-list attributes (`kernel_shape`, `pads`...).
    package static func integerListAttributes(_ configuration: String) -> [String: [Int]]? {
        guard let node = try? ONNXNodePacking.unpack(configuration, file: "", subject: "") else { return nil }
        var result: [String: [Int]] = [:]
        for attribute in node.attributes {
            if case .ints(let values) = attribute.value { result[attribute.name] = values.map { Int(truncatingIfNeeded: $0) } }
        }
        return result
    }
}
