import ScionIR
import ScionPasses
import ScionRuntime

/// Two models run on the same inputs, layer by layer: where do their numbers part? What tf2onnx's
/// users ask for when a converted model disagrees (onnx/tensorflow-onnx#2096).
///
/// Both graphs are brought to Keras's layers and layout first (an ONNX graph through
/// `KerasLayersPass`, when it maps), so a Keras model and its ONNX export are compared value by
/// value under the same layer names; every layer the two share (same name, same output shape) is
/// tapped and compared in the first model's order.
public struct ModelComparison: Encodable, Sendable {
    public struct LayerError: Encodable, Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var maxAbsDifference: Double
        /// `maxAbsDifference / max |reference|`.
        public var relative: Double
        public var withinTolerance: Bool
    }

    public var tolerance: Double
    /// Shared layers in the first model's order.
    public var layers: [LayerError] = []
    public var outputs: [LayerError] = []
    /// The first shared layer whose outputs differ beyond the tolerance.
    public var firstDivergence: String?

    public var agrees: Bool { outputs.allSatisfy(\.withinTolerance) && firstDivergence == nil }

    public init(_ reference: Model, _ candidate: Model, inputs: [RuntimeTensor], tolerance: Double = 1e-4) throws {
        self.tolerance = tolerance
        let a = Self.kerasView(reference.graph), b = Self.kerasView(candidate.graph)
        // A layer compares with its namesake when both compute the same kind of thing: a Dense with a
        // fused softmax in Keras is a Dense then a Softmax in ONNX, and its logits are not probabilities.
        let nodesB = Dictionary(b.nodes.filter { $0.outputs.count == 1 }.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let shared = a.nodes.filter { node in
            guard node.outputs.count == 1, let other = nodesB[node.name] else { return false }
            return node.op.typeName == other.op.typeName && Self.fusedActivation(node.op) == Self.fusedActivation(other.op)
        }.map(\.name)
        let runA = try Model.executor(for: a, taps: shared), runB = try Model.executor(for: b, taps: shared)
        guard inputs.count == a.inputs.count, inputs.count == b.inputs.count else {
            throw ScionError(file: reference.path, "takes \(a.inputs.count) input(s), the other model \(b.inputs.count); \(inputs.count) given")
        }
        let valuesA = try runA.run(Dictionary(uniqueKeysWithValues: zip(runA.graph.inputs.map(\.name), inputs)))
        let valuesB = try runB.run(Dictionary(uniqueKeysWithValues: zip(runB.graph.inputs.map(\.name), inputs)))
        for name in shared {
            guard let left = runA.taps[name].flatMap({ valuesA[$0] }), let right = runB.taps[name].flatMap({ valuesB[$0] }),
                  left.shape == right.shape else { continue }
            let error = Self.error(name, reference: left, candidate: right, tolerance: tolerance)
            layers.append(error)
            if !error.withinTolerance && firstDivergence == nil { firstDivergence = name }
        }
        for (outputA, outputB) in zip(a.outputs, b.outputs) {
            guard let left = valuesA[outputA], let right = valuesB[outputB] else { continue }
            outputs.append(Self.error(outputA, reference: left, candidate: right, tolerance: tolerance))
        }
    }

    static func fusedActivation(_ op: Op) -> Activation? {
        switch op {
        case .dense(let a): a.activation
        case .conv(let a): a.activation
        case .depthwiseConv(let a): a.activation
        case .separableConv(let a): a.depthwise.activation
        case .convTranspose(let a): a.activation
        default: nil
        }
    }

    static func kerasView(_ graph: Graph) -> Graph {
        var view = graph
        if (try? KerasLayersPass().run(&view)) == nil { return graph }
        return view
    }

    static func error(_ name: String, reference: RuntimeTensor, candidate: RuntimeTensor, tolerance: Double) -> LayerError {
        guard reference.shape == candidate.shape else {
            return LayerError(name: name, shape: candidate.shape, maxAbsDifference: .infinity, relative: .infinity, withinTolerance: false)
        }
        var worst = 0.0, scale = 0.0
        for (x, y) in zip(reference.data, candidate.data) {
            worst = max(worst, abs(Double(x) - Double(y)))
            scale = max(scale, abs(Double(x)))
        }
        if reference.data.contains(where: { $0.isNaN }) != candidate.data.contains(where: { $0.isNaN }) { worst = .infinity }
        let relative = worst / (scale > 0 ? scale : 1)
        return LayerError(name: name, shape: reference.shape, maxAbsDifference: worst, relative: relative,
                          withinTolerance: relative <= tolerance)
    }

    /// The report a person reads.
    public func text(maximum: Int = 20) -> String {
        var lines = ["Layers compared: \(layers.count) (shared names, same shapes); tolerance \(tolerance) relative"]
        if let firstDivergence, let index = layers.firstIndex(where: { $0.name == firstDivergence }) {
            lines.append("First divergence: \(firstDivergence)")
            let start = max(0, index - 3)
            for layer in layers[start..<min(layers.count, index + maximum - 3)] {
                lines.append("  \(layer.withinTolerance ? " " : "!") \(layer.name) \(layer.shape): max |a-b| \(layer.maxAbsDifference), relative \(layer.relative)")
            }
        } else {
            let worst = layers.max { $0.relative < $1.relative }
            lines.append("No layer diverges" + (worst.map { "; largest relative difference \($0.relative) at \($0.name)" } ?? ""))
        }
        for output in outputs {
            lines.append("Output \(output.name) \(output.shape): max |a-b| \(output.maxAbsDifference), relative \(output.relative)"
                + (output.withinTolerance ? "" : "  (beyond tolerance)"))
        }
        return lines.joined(separator: "\n")
    }
}
