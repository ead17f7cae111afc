import ScionIR
import ScionPasses

/// What changed between two models, by layer and tensor names: the report `scion diff` prints.
///
/// Works across formats: a graph read from ONNX is first mapped to Keras layers and layout
/// (`KerasLayersPass`), so a Keras model and its ONNX export compare layer by layer, their kernels in
/// one layout. Weights are read one tensor pair at a time.
public struct ModelDiff: Encodable, Sendable {
    public struct Layer: Encodable, Sendable, Equatable {
        public var name: String
        public var type: String
    }

    public struct Change: Encodable, Sendable, Equatable {
        public var name: String
        /// `type`, `config` or `weights shapes`.
        public var what: String
        public var before: String
        public var after: String
    }

    public struct WeightChange: Encodable, Sendable, Equatable {
        public var name: String
        /// Largest absolute difference of the elements (float tensors); nil when only the bytes
        /// could be compared, or the shapes differ.
        public var maxAbsDelta: Double?
        public var shapeBefore: [Int]
        public var shapeAfter: [Int]
    }

    public struct TrainabilityChange: Encodable, Sendable, Equatable {
        public var name: String
        public var before: Bool
        public var after: Bool
    }

    public var removed: [Layer] = []
    public var added: [Layer] = []
    public var changed: [Change] = []
    /// Tensors present in both under the same name whose values differ.
    public var weightsChanged: [WeightChange] = []
    /// Tensors present in both, and how many of those are equal.
    public var weightsCompared = 0
    public var weightsUnchanged = 0
    public var trainabilityChanged: [TrainabilityChange] = []

    public var isEmpty: Bool {
        removed.isEmpty && added.isEmpty && changed.isEmpty && weightsChanged.isEmpty && trainabilityChanged.isEmpty
    }

    public init(_ before: Model, _ after: Model) throws {
        let a = try Self.comparable(before), b = try Self.comparable(after)
        let nodesA = Dictionary(a.nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let nodesB = Dictionary(b.nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        removed = a.nodes.filter { nodesB[$0.name] == nil }.map { Layer(name: $0.name, type: $0.op.typeName) }
        added = b.nodes.filter { nodesA[$0.name] == nil }.map { Layer(name: $0.name, type: $0.op.typeName) }
        for node in a.nodes {
            guard let other = nodesB[node.name] else { continue }
            if node.op.typeName != other.op.typeName {
                changed.append(Change(name: node.name, what: "type", before: node.op.typeName, after: other.op.typeName))
            } else if Self.canonical(node.op, a.values[node.outputs.first ?? ""]?.shape?.rank)
                        != Self.canonical(other.op, b.values[other.outputs.first ?? ""]?.shape?.rank) {
                changed.append(Change(name: node.name, what: "config", before: "\(node.op)", after: "\(other.op)"))
            }
            // Only layers with weights: a weightless layer's flag changes nothing (and ONNX does not
            // record it).
            if node.trainable != other.trainable, !node.parameters.isEmpty {
                trainabilityChanged.append(TrainabilityChange(name: node.name, before: node.trainable, after: other.trainable))
            }
        }
        for parameter in a.parameters.all {
            guard let other = b.parameters[parameter.name] else { continue }
            weightsCompared += 1
            if let change = try Self.compare(parameter, other) {
                weightsChanged.append(change)
            } else {
                weightsUnchanged += 1
            }
        }
    }

    /// The op with equivalent spellings made equal: an axis counted from the end or the start, `same`
    /// and `valid` for a 1x1 stride-1 convolution (the same computation).
    static func canonical(_ op: Op, _ rank: Int?) -> Op {
        let resolve = { (axis: Int) -> Int in
            guard let rank else { return axis }
            return axis == rank - 1 ? -1 : axis
        }
        switch op {
        case .batchNormalization(var a):
            a.axis = resolve(a.axis)
            return .batchNormalization(a)
        case .concatenate(var a):
            a.axis = resolve(a.axis)
            return .concatenate(a)
        case .conv(var a) where a.kernelSize.allSatisfy { $0 == 1 } && a.strides.allSatisfy { $0 == 1 } && a.padding == .same:
            a.padding = .valid
            return .conv(a)
        default:
            return op
        }
    }

    /// The graph in Keras's layers and layout (ONNX graphs mapped back), shapes inferred.
    static func comparable(_ model: Model) throws -> Graph {
        var graph = model.graph
        guard graph.hasArchitecture else { return graph }
        do {
            try KerasLayersPass().run(&graph)
        } catch is PassError {
            // Not expressible as Keras layers: compare the graph as it is read.
            graph = model.graph
        }
        return graph
    }

    /// Nil when equal; the largest absolute element difference for float tensors of one shape.
    static func compare(_ a: Parameter, _ b: Parameter) throws -> WeightChange? {
        guard a.shape == b.shape, a.dtype == b.dtype else {
            return WeightChange(name: a.name, maxAbsDelta: nil, shapeBefore: a.shape, shapeAfter: b.shape)
        }
        let bytesA = try a.storage.bytes(keep: false), bytesB = try b.storage.bytes(keep: false)
        if bytesA == bytesB { return nil }
        var delta: Double?
        if a.dtype == .float32, bytesA.count == bytesB.count {
            delta = bytesA.withUnsafeBytes { left in
                bytesB.withUnsafeBytes { right in
                    zip(left.bindMemory(to: Float.self), right.bindMemory(to: Float.self))
                        .reduce(0.0) { max($0, abs(Double($1.0) - Double($1.1))) }
                }
            }
            // +0 and -0, or equal NaN payloads, differ in bytes only.
            if delta == 0 { return nil }
        }
        return WeightChange(name: a.name, maxAbsDelta: delta, shapeBefore: a.shape, shapeAfter: b.shape)
    }

    /// A few lines a person reads: each section with its count, long lists shortened.
    public func text(maximum: Int = 12) -> String {
        func list<T>(_ items: [T], _ line: (T) -> String) -> [String] {
            var lines = items.prefix(maximum).map { "  " + line($0) }
            if items.count > maximum { lines.append("  ... and \(items.count - maximum) more") }
            return lines
        }
        var lines: [String] = []
        lines.append("Removed layers: \(removed.count)")
        lines += list(removed) { "- \($0.name) (\($0.type))" }
        lines.append("Added layers: \(added.count)")
        lines += list(added) { "+ \($0.name) (\($0.type))" }
        lines.append("Changed layers: \(changed.count)")
        lines += list(changed) { "~ \($0.name): \($0.what) \($0.before) -> \($0.after)" }
        lines.append("Weights in both: \(weightsCompared), unchanged: \(weightsUnchanged), changed: \(weightsChanged.count)")
        lines += list(weightsChanged) { change in
            change.shapeBefore != change.shapeAfter ? "~ \(change.name): shape \(change.shapeBefore) -> \(change.shapeAfter)"
                : "~ \(change.name): max |delta| \(change.maxAbsDelta.map { "\($0)" } ?? "(bytes differ)")"
        }
        lines.append("Trainability changed: \(trainabilityChanged.count) layers")
        lines += list(trainabilityChanged) { "~ \($0.name): \($0.before ? "trainable" : "frozen") -> \($0.after ? "trainable" : "frozen")" }
        return lines.joined(separator: "\n")
    }
}
