import Foundation
import ScionIR

/// The check made after fine-tuning, computed once and then shown everywhere (the terminal line,
/// `--json`, the HTML report), so the three can never disagree: the written file is read back and
/// every tensor of the model training started from is compared with it, byte for byte. A tensor no
/// phase trained (frozen) must be byte-identical; a trained one may differ.
///
/// Both models are compared in Keras's layers and layout (an ONNX file is mapped back, as `scion
/// diff` does), so an ONNX output is checked against a Keras input kernel by kernel.
public struct TrainingVerification: Sendable, Encodable {
    /// One tensor of the reference, compared with the written file.
    public struct Tensor: Sendable, Encodable, Equatable {
        /// The parameter's name (`conv1/kernel`).
        public var name: String
        /// Some phase trained it (or it holds the moving statistics of a BatchNormalization that
        /// trained): allowed to differ.
        public var trained: Bool
        /// CRC-32 of its bytes (8 hex digits) in the model given.
        public var crc32Before: String
        /// CRC-32 in the written file; nil when the file lacks the tensor.
        public var crc32After: String?
        /// The bytes are the same (a CRC match alone could be a collision).
        public var identical: Bool
        /// Largest absolute element difference when the float tensors differ.
        public var maxAbsDelta: Double?
    }

    /// The model training started from, and the file as written and read back.
    public var reference: String
    /// The written file, as read back.
    public var file: String
    /// Every tensor of the reference, in its order.
    public var tensors: [Tensor]

    /// The tensors no phase trained: each must be byte-identical in the written file.
    public var frozen: [Tensor] { tensors.filter { !$0.trained } }
    /// The tensors a phase trained: allowed to differ.
    public var trained: [Tensor] { tensors.filter(\.trained) }
    /// Frozen tensors that differ or are missing in the written file: any one fails the run.
    public var violations: [Tensor] { frozen.filter { !$0.identical } }
    /// True when no frozen tensor differs or is missing.
    public var passed: Bool { violations.isEmpty }

    /// `trained`: every tensor a phase was allowed to change (`FineTuning.mutable`); `referenceName`
    /// names a reference that exists only in memory (the demo's grafted model).
    public init(reference: Model, written: Model, trained: Set<String>, referenceName: String? = nil) throws {
        self.reference = referenceName ?? reference.path
        file = written.path
        let before = try ModelDiff.comparable(reference), after = try ModelDiff.comparable(written)
        tensors = try before.parameters.all.map { parameter in
            let bytes = try parameter.storage.bytes(keep: false)
            var tensor = Tensor(name: parameter.name, trained: trained.contains(parameter.name), crc32Before: crc32Text(bytes),
                                crc32After: nil, identical: false, maxAbsDelta: nil)
            // The Keras writers flatten a nested model's scope (`base/conv1/kernel` is written as layer
            // `base_conv1`): the same tensor under its flattened name.
            guard let other = after.parameters[parameter.name] ?? after.parameters[Self.flattenedScope(parameter.name)] else {
                return tensor
            }
            let written = try other.storage.bytes(keep: false)
            tensor.crc32After = crc32Text(written)
            tensor.identical = parameter.shape == other.shape && parameter.dtype == other.dtype && bytes == written
            if !tensor.identical, parameter.dtype == .float32, other.dtype == .float32, bytes.count == written.count {
                tensor.maxAbsDelta = Self.maxAbsDelta(bytes, written)
            }
            return tensor
        }
    }

    /// `scope/layer/weight` as the Keras writers name it once nested models are flattened:
    /// `scope_layer/weight`.
    static func flattenedScope(_ name: String) -> String {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count > 2, let weight = parts.last else { return name }
        return parts.dropLast().joined(separator: "_") + "/" + weight
    }

    /// A verification of tensors computed elsewhere (tests, other front ends).
    package init(reference: String, file: String, tensors: [Tensor]) {
        self.reference = reference
        self.file = file
        self.tensors = tensors
    }

    static func maxAbsDelta(_ a: [UInt8], _ b: [UInt8]) -> Double {
        a.withUnsafeBytes { left in
            b.withUnsafeBytes { right in
                zip(left.bindMemory(to: Float.self), right.bindMemory(to: Float.self)).reduce(0.0) { max($0, abs(Double($1.0) - Double($1.1))) }
            }
        }
    }

    /// A file as a sentence names it: its last component.
    package static func name(_ path: String) -> String { (path as NSString).lastPathComponent }

    /// Names, the first `limit` of them, then how many more.
    static func list(_ names: [String], limit: Int = 6) -> String {
        names.prefix(limit).joined(separator: ", ") + (names.count > limit ? " and \(names.count - limit) more" : "")
    }

    /// One sentence for the terminal, the same facts as the report's table:
    /// `digits_5_9.keras: 16 frozen tensors byte-identical to grafted.keras (CRC-32 of each before and after); 4 trained, 4 changed: ...`
    public var summary: String {
        let changed = trained.filter { !$0.identical }
        let trainedPart = "\(trained.count) trained, \(changed.count) changed" + (changed.isEmpty ? "" : ": " + Self.list(changed.map(\.name)))
        guard passed else {
            let details = violations.prefix(4).map { tensor in
                guard let after = tensor.crc32After else { return "\(tensor.name) (missing)" }
                return "\(tensor.name) (CRC-32 \(tensor.crc32Before) before, \(after) after"
                    + (tensor.maxAbsDelta.map { ", max |delta| \(Readable.number($0))" } ?? "") + ")"
            }
            return "\(Self.name(file)): \(violations.count) of \(frozen.count) frozen tensors differ from \(Self.name(reference)): "
                + details.joined(separator: ", ") + (violations.count > 4 ? " and \(violations.count - 4) more" : "")
        }
        return "\(Self.name(file)): \(frozen.count) frozen tensor\(frozen.count == 1 ? "" : "s") byte-identical to \(Self.name(reference)) "
            + "(CRC-32 of each, before and after); \(trainedPart)"
    }

    enum CodingKeys: String, CodingKey { case reference, file, passed, frozen, trained }

    /// Encodes `reference`, `file`, `passed`, and the `frozen` and `trained` tensors.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(reference, forKey: .reference)
        try container.encode(file, forKey: .file)
        try container.encode(passed, forKey: .passed)
        try container.encode(frozen, forKey: .frozen)
        try container.encode(trained, forKey: .trained)
    }
}
