/// Everything that can go wrong reading or writing ONNX, naming the file and the node, tensor or
/// field concerned.
public struct ONNXError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
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

    public var kind: Kind
    public var file: String
    public var subject: String
    public var reason: String

    public init(_ kind: Kind, file: String, subject: String = "", _ reason: String) {
        self.kind = kind; self.file = file; self.subject = subject; self.reason = reason
    }

    public var description: String { subject.isEmpty ? "\(file): \(reason)" : "\(file): \(subject): \(reason)" }
}
