/// Everything that can go wrong reading or writing ONNX, naming the file and the node, tensor or
/// field concerned.
package struct ONNXError: Error, CustomStringConvertible, Equatable, Sendable {
    package enum Kind: String, Sendable {
        /// Not a protobuf ModelProto at all, or truncated.
        case invalidProtobuf
        /// A tensor's declared shape, type or bytes do not agree, or external data is unsafe.
        case invalidTensor
        /// Nodes, edges or names that do not form a valid graph.
        case invalidGraph
        /// An op or attribute form Scion does not support here.
        case unsupported
        /// Writing failed.
        case writeFailed
    }

    package var kind: Kind
    package var file: String
    package var subject: String
    package var reason: String

    package init(_ kind: Kind, file: String, subject: String = "", _ reason: String) {
        self.kind = kind; self.file = file; self.subject = subject; self.reason = reason
    }

    package var description: String { subject.isEmpty ? "\(file): \(reason)" : "\(file): \(subject): \(reason)" }
}
