import ScionIR
import ScionRuntime

/// Two models run on the same inputs, layer by layer: where do their numbers part? What tf2onnx's
/// users ask for when a converted model disagrees (onnx/tensorflow-onnx#2096).
///
/// Both models are brought to one normal form (`ComparableGraph`, with BatchNormalization folded
/// into the convolution before it, as tf2onnx exports it) and their layers matched by name, then by
/// structure (`LayerMatching`: same position, same kind, same output shape), so a Keras model
/// compares with its tf2onnx or torch export, or with Scion's own conversion, under different
/// names. A matched layer is compared at its output, the value after its fused activation; when
/// both sides folded the same steps into it (Conv, BN, ReLU) each step is compared too. Values held
/// channels-first on one side are compared in the other's layout. The outputs are always compared,
/// matched or not; when no layer matched, that is all that was compared, and the report says so.
public struct ModelComparison: Encodable, Sendable {
    /// One pair of values compared: a layer (or step) of the reference and its counterpart.
    public struct LayerError: Encodable, Sendable, Equatable {
        /// The reference model's layer.
        public var layer: String
        /// The candidate's layer it was matched with.
        public var candidateLayer: String
        /// `name` or `structure`.
        public var matchedBy: String
        /// Shape of the compared values (the reference's).
        public var shape: [Int]
        /// Largest absolute difference between the two.
        public var maxAbs: Double
        /// `maxAbs / max |reference|`.
        public var maxRel: Double
        /// `maxRel` is at most the tolerance.
        public var withinTolerance: Bool
    }

    /// One model output compared with the candidate's, matched or not.
    public struct OutputError: Encodable, Sendable, Equatable {
        /// The reference's output.
        public var name: String
        /// The candidate's output it was compared with.
        public var candidateName: String
        /// The reference output's shape.
        public var shape: [Int]
        /// The candidate output's shape.
        public var candidateShape: [Int]
        /// Nil when the shapes differ (nothing to subtract).
        public var maxAbs: Double?
        /// `maxAbs / max |reference|`; nil when the shapes differ.
        public var maxRel: Double?
        /// Fraction of rows (all axes but the last) whose largest element is at the same index; nil
        /// for outputs with one value per row or shapes that differ.
        public var argmaxAgreement: Double?
        /// The shapes agree and `maxRel` is at most the tolerance.
        public var withinTolerance: Bool
        /// The two outputs cannot be subtracted: their shapes differ (beyond one being the other's
        /// channels-first form).
        public var shapesDiffer: Bool
    }

    /// The largest relative difference (`maxRel`) that still agrees.
    public var tolerance: Double
    /// What the models ran on, as the caller describes it (`2 random samples (seed 0)`, file names).
    public var inputs: String?
    /// Layers paired between the models, and how.
    public var layersMatched = 0
    /// Of those, the layers paired by name.
    public var matchedByName = 0
    /// Of those, the layers paired by structure (position, kind, output shape).
    public var matchedByStructure = 0
    /// Layers of each model after its normal form (fused activations, folded BatchNormalization).
    public var referenceLayers = 0
    /// The candidate's layers, counted the same way.
    public var candidateLayers = 0
    /// Layers of each model left without a counterpart: nothing was compared there.
    public var unmatchedReference: [String] = []
    /// The candidate's layers left without a counterpart.
    public var unmatchedCandidate: [String] = []
    /// Pairs of values compared (a matched layer and the steps both sides folded into it).
    public var layersCompared: Int { layers.count }
    /// Compared pairs in the reference model's order.
    public var layers: [LayerError] = []
    /// Every output of the reference, compared with the candidate's.
    public var outputs: [OutputError] = []
    /// The first compared pair whose values differ beyond the tolerance.
    public var firstDivergence: LayerError?
    /// What limited the comparison (a model not read as Keras layers, matched layers skipped).
    public var notes: [String] = []

    /// True when every output is within the tolerance and no compared layer diverges.
    public var agrees: Bool { outputs.allSatisfy(\.withinTolerance) && firstDivergence == nil && !outputs.isEmpty }

    enum CodingKeys: String, CodingKey {
        case tolerance, inputs, layersMatched, matchedByName, matchedByStructure, referenceLayers, candidateLayers, unmatchedReference
        case unmatchedCandidate, layersCompared, layers
        case outputs, firstDivergence, notes, agrees
    }

    /// Encodes every field above, and `layersCompared` and `agrees`; `firstDivergence` is null when nothing diverges.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(tolerance, forKey: .tolerance)
        try container.encode(inputs, forKey: .inputs)
        try container.encode(layersMatched, forKey: .layersMatched)
        try container.encode(matchedByName, forKey: .matchedByName)
        try container.encode(matchedByStructure, forKey: .matchedByStructure)
        try container.encode(referenceLayers, forKey: .referenceLayers)
        try container.encode(candidateLayers, forKey: .candidateLayers)
        try container.encode(unmatchedReference, forKey: .unmatchedReference)
        try container.encode(unmatchedCandidate, forKey: .unmatchedCandidate)
        try container.encode(layersCompared, forKey: .layersCompared)
        try container.encode(layers, forKey: .layers)
        try container.encode(outputs, forKey: .outputs)
        // `null` when nothing diverges, rather than a missing key.
        try container.encode(firstDivergence, forKey: .firstDivergence)
        try container.encode(notes, forKey: .notes)
        try container.encode(agrees, forKey: .agrees)
    }

    /// Runs both models on `inputs` (in the reference's input order). An array that does not fit a
    /// model is refused naming that model.
    public init(_ reference: Model, _ candidate: Model, inputs: [RuntimeTensor], tolerance: Double = 1e-4) throws {
        self.tolerance = tolerance
        try Self.checkInputs(inputs, reference, candidate)
        var options = ComparableGraph.Options()
        options.foldBatchNormalization = true
        options.inferenceOnly = true
        let a = ComparableGraph(reference, options: options), b = ComparableGraph(candidate, options: options)
        for (model, graph) in [(reference, a), (candidate, b)] {
            let note = graph.unmapped.map { "\(model.path) is compared as ONNX ops, not Keras layers (\($0))" }
            if let note, !notes.contains(note) { notes.append(note) }
        }
        let matching = LayerMatching(a, b, kind: .family)
        layersMatched = matching.pairs.count
        matchedByName = matching.byName
        matchedByStructure = matching.byStructure
        referenceLayers = a.layers.count
        candidateLayers = b.layers.count
        // Transposes and reshapes that were looked through compute nothing to compare.
        unmatchedReference = a.layers.indices.filter { matching.pairOfA[$0] == nil && !LayerMatching.onlyReshapes(a.layers[$0], in: a) }
            .map { a.layers[$0].name }
        unmatchedCandidate = b.layers.indices.filter { matching.pairOfB[$0] == nil && !LayerMatching.onlyReshapes(b.layers[$0], in: b) }
            .map { b.layers[$0].name }

        // The values to compare: each matched layer's output, and its steps when both sides have the
        // same steps (same kinds, same count).
        // A pair compared at its output only is named as the layer (`block_5_project`, whose BN was
        // folded in), step by step as each step's node.
        typealias Tap = (name: String, step: ComparableGraph.Step)
        var pairs: [(a: Tap, b: Tap, method: LayerMatching.Method)] = []
        var reordered = 0
        for pair in matching.pairs {
            let x = a.layers[pair.a], y = b.layers[pair.b]
            if x.reordered || y.reordered { reordered += 1; continue }
            if x.steps.map(\.family) == y.steps.map(\.family) {
                pairs += zip(x.steps, y.steps).map { (($0.node, $0), ($1.node, $1), pair.method) }
            } else if let last = x.steps.last, let other = y.steps.last {
                pairs.append(((x.name, last), (y.name, other), pair.method))
            }
        }
        if reordered > 0 {
            notes.append("\(reordered) matched layer(s) hold their elements in another order (a Flatten of channels-first data): not compared")
        }
        let valuesA = try Self.run(reference, a.graph, taps: pairs.map(\.a.step.node), inputs: inputs)
        let valuesB = try Self.run(candidate, b.graph, taps: pairs.map(\.b.step.node), inputs: inputs)
        var skipped = 0
        for (x, y, method) in pairs {
            guard let left = valuesA[x.step.output], let right = valuesB[y.step.output],
                  let aligned = Self.aligned(right, to: left.shape) else { skipped += 1; continue }
            let (worst, relative) = Self.difference(left, aligned)
            let error = LayerError(layer: x.name, candidateLayer: y.name, matchedBy: method.rawValue, shape: left.shape,
                                   maxAbs: worst, maxRel: relative, withinTolerance: relative <= tolerance)
            layers.append(error)
            if !error.withinTolerance && firstDivergence == nil { firstDivergence = error }
        }
        if skipped > 0 { notes.append("\(skipped) matched value(s) have shapes that differ: not compared") }
        if a.graph.outputs.count != b.graph.outputs.count {
            notes.append("the models return \(a.graph.outputs.count) and \(b.graph.outputs.count) outputs: the first \(min(a.graph.outputs.count, b.graph.outputs.count)) compared")
        }
        for (outputA, outputB) in zip(a.graph.outputs, b.graph.outputs) {
            guard let left = valuesA[outputA], let right = valuesB[outputB] else { continue }
            outputs.append(Self.outputError(outputA, outputB, left, right, tolerance: tolerance))
        }
    }

    /// Each array against each model's declared inputs: the model that refuses it is named.
    static func checkInputs(_ inputs: [RuntimeTensor], _ reference: Model, _ candidate: Model) throws {
        func names(_ model: Model) -> String { model.graph.inputs.map(\.name).joined(separator: ", ") }
        guard reference.graph.inputs.count == candidate.graph.inputs.count else {
            throw ScionError(file: candidate.path, "takes \(candidate.graph.inputs.count) input(s) (\(names(candidate))), the reference "
                + "\(reference.path) \(reference.graph.inputs.count) (\(names(reference))): they cannot run on the same arrays")
        }
        for model in [reference, candidate] {
            let declared = model.graph.inputs
            guard declared.count == inputs.count else {
                throw ScionError(file: model.path, "takes \(declared.count) input(s) (\(declared.map(\.name).joined(separator: ", "))); "
                    + "\(inputs.count) array(s) given")
            }
            for (input, tensor) in zip(declared, inputs) {
                guard let shape = input.shape else { continue }
                let fits = shape.rank == tensor.rank && zip(shape.dimensions, tensor.shape).allSatisfy { $0 == nil || $0 == $1 }
                guard fits else {
                    throw ScionError(file: model.path, "input '\(input.name)' takes shape \(shape), the array given has shape \(tensor.shape)")
                }
            }
        }
    }

    /// Runs one model's comparable graph, its errors naming the model's file.
    static func run(_ model: Model, _ graph: Graph, taps: [String], inputs: [RuntimeTensor]) throws -> [String: RuntimeTensor] {
        do {
            let executor = try Model.executor(for: graph, taps: Array(Set(taps)))
            return try executor.run(Dictionary(uniqueKeysWithValues: zip(executor.graph.inputs.map(\.name), inputs)))
        } catch let error as RuntimeError {
            throw ScionError(file: model.path, error.description)
        }
    }

    /// `tensor` in the layout of a value of shape `shape`: as it is when the shapes agree; moved from
    /// channels-first to channels-last (or back) when that makes them agree; reshaped when they differ
    /// only by axes of length 1 (a Conv1D's [N, L, C] against a Conv2D's [N, 1, L, C]); nil otherwise.
    static func aligned(_ tensor: RuntimeTensor, to shape: [Int]) -> RuntimeTensor? {
        if tensor.shape == shape { return tensor }
        func squeezed(_ dimensions: [Int]) -> [Int] { dimensions.filter { $0 != 1 } }
        let rank = tensor.rank
        var layouts = [tensor]
        if rank >= 3 {
            let toLast = [0] + Array(2..<rank) + [1], toFirst = [0, rank - 1] + Array(1..<(rank - 1))
            layouts += [tensor.transposed(toLast), tensor.transposed(toFirst)]
        }
        for candidate in layouts where candidate.shape == shape { return candidate }
        guard tensor.shape.first == shape.first else { return nil }
        for candidate in layouts where squeezed(candidate.shape) == squeezed(shape) {
            return RuntimeTensor(shape: shape, data: candidate.data)
        }
        return nil
    }

    /// Largest absolute difference, and that over the reference's largest magnitude. A NaN on one
    /// side only is an infinite difference.
    static func difference(_ reference: RuntimeTensor, _ candidate: RuntimeTensor) -> (Double, Double) {
        var worst = 0.0, scale = 0.0
        for (x, y) in zip(reference.data, candidate.data) {
            if x.isNaN != y.isNaN { worst = .infinity; continue }
            if x.isNaN { continue }
            worst = max(worst, abs(Double(x) - Double(y)))
            scale = max(scale, abs(Double(x)))
        }
        return (worst, worst / (scale > 0 ? scale : 1))
    }

    static func outputError(_ name: String, _ candidateName: String, _ left: RuntimeTensor, _ right: RuntimeTensor,
                            tolerance: Double) -> OutputError {
        guard let aligned = aligned(right, to: left.shape) else {
            return OutputError(name: name, candidateName: candidateName, shape: left.shape, candidateShape: right.shape,
                               maxAbs: nil, maxRel: nil, argmaxAgreement: nil, withinTolerance: false, shapesDiffer: true)
        }
        let (worst, relative) = difference(left, aligned)
        return OutputError(name: name, candidateName: candidateName, shape: left.shape, candidateShape: right.shape,
                           maxAbs: worst, maxRel: relative, argmaxAgreement: argmaxAgreement(left, aligned),
                           withinTolerance: relative <= tolerance, shapesDiffer: false)
    }

    /// Fraction of rows (every axis but the last) whose largest element sits at the same index.
    static func argmaxAgreement(_ a: RuntimeTensor, _ b: RuntimeTensor) -> Double? {
        guard let width = a.shape.last, width > 1, a.count == b.count, a.count > 0 else { return nil }
        let rows = a.count / width
        var agree = 0
        for row in 0..<rows {
            let range = (row * width)..<((row + 1) * width)
            let left = range.max { a.data[$0] < a.data[$1] }, right = range.max { b.data[$0] < b.data[$1] }
            if left == right { agree += 1 }
        }
        return Double(agree) / Double(rows)
    }
}
