import ScionIR

/// Which layer of one model is which layer of the other.
///
/// First by name: the same name, or the same once spelled as Scion writes Keras names (`base/conv1`
/// becomes `base_conv1`, `/stem/stem.0/Conv` becomes `layer_stem_stem.0_Conv`), each unique on both
/// sides. Then by structure, for models whose names differ (a Keras model and its tf2onnx or torch
/// export): walking the first model in topological order, a layer whose inputs are all matched pairs
/// with the one unmatched layer of the other model that reads the matching values, is of the same
/// kind and has the same output shape. When several qualify (branches reading one value), the one
/// whose name contains this one's, then the one with the same weight shapes, then the first in the
/// other model's order wins. Model inputs pair in order.
struct LayerMatching {
    enum Method: String, Encodable, Sendable { case name, structure }

    struct Pair {
        var a: Int
        var b: Int
        var method: Method
    }

    /// How strict "of the same kind" is: `diff` wants the same layer type, `compare` the same family
    /// (a SeparableConv exported as two convolutions still compares at its output).
    enum Kind { case type, family }

    private(set) var pairs: [Pair] = []
    private(set) var pairOfA: [Int: Int] = [:]
    private(set) var pairOfB: [Int: Int] = [:]
    /// Values of the first model and their counterparts in the second.
    private(set) var values: [String: String] = [:]

    init(_ a: ComparableGraph, _ b: ComparableGraph, kind: Kind) {
        for (x, y) in zip(a.inputs, b.inputs) { values[x.name] = y.name }
        matchByName(a, b)
        var progress = true
        while progress {
            progress = false
            for index in a.layers.indices where pairOfA[index] == nil && values[a.layers[index].output] == nil {
                if let other = structuralMatch(index, a, b, kind: kind) {
                    add(Pair(a: index, b: other, method: .structure), a, b)
                    progress = true
                } else if kind == .family, let input = a.layers[index].inputs.first, let mapped = values[input],
                          Self.onlyReshapes(a.layers[index], in: a) {
                    // A reshape only adding or dropping axes of length 1 (tf2onnx's ExpandDims
                    // around a Conv1D) is transparent: what reads it reads the same numbers.
                    values[a.layers[index].output] = mapped
                    progress = true
                }
            }
        }
        pairs.sort { $0.a < $1.a }
    }

    var byName: Int { pairs.filter { $0.method == .name }.count }
    var byStructure: Int { pairs.filter { $0.method == .structure }.count }

    private mutating func add(_ pair: Pair, _ a: ComparableGraph, _ b: ComparableGraph) {
        pairs.append(pair)
        pairOfA[pair.a] = pair.b
        pairOfB[pair.b] = pair.a
        values[a.layers[pair.a].output] = b.layers[pair.b].output
        for (x, y) in zip(a.layers[pair.a].otherOutputs, b.layers[pair.b].otherOutputs) { values[x] = y }
    }

    private mutating func matchByName(_ a: ComparableGraph, _ b: ComparableGraph) {
        func table(_ graph: ComparableGraph) -> [String: [Int]] {
            var result: [String: [Int]] = [:]
            for (index, layer) in graph.layers.enumerated() { result[Self.kerasName(layer.name), default: []].append(index) }
            return result
        }
        let exactB = Dictionary(b.layers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        let cleanA = table(a), cleanB = table(b)
        for (index, layer) in a.layers.enumerated() {
            if let other = exactB[layer.name], pairOfB[other] == nil {
                add(Pair(a: index, b: other, method: .name), a, b)
            } else if let mine = cleanA[Self.kerasName(layer.name)], mine.count == 1,
                      let theirs = cleanB[Self.kerasName(layer.name)], theirs.count == 1, pairOfB[theirs[0]] == nil {
                add(Pair(a: index, b: theirs[0], method: .name), a, b)
            }
        }
    }

    private func structuralMatch(_ index: Int, _ a: ComparableGraph, _ b: ComparableGraph, kind: Kind) -> Int? {
        let layer = a.layers[index]
        let mapped = layer.inputs.compactMap { values[$0] }
        guard mapped.count == layer.inputs.count, !mapped.isEmpty else { return nil }
        // In `compare`, the other model's reshapes that only add or drop axes of length 1 are looked
        // through (its value after them is the same numbers).
        let reachable = mapped.map { kind == .family ? Self.throughReshapes($0, in: b) : [$0] }
        let commutative = Self.isCommutative(layer.op)
        let candidates = b.layers.indices.filter { other in
            guard pairOfB[other] == nil else { return false }
            let candidate = b.layers[other]
            guard candidate.inputs.count == mapped.count else { return false }
            let reads = zip(candidate.inputs, reachable).allSatisfy { $1.contains($0) }
                || commutative && candidate.inputs.sorted() == mapped.sorted()
            guard reads else { return false }
            switch kind {
            case .type:
                guard candidate.op.typeName == layer.op.typeName else { return false }
                return Self.sameShape(a.shape(layer.output), b.shape(candidate.output))
            case .family:
                guard ComparableGraph.family(candidate.op) == ComparableGraph.family(layer.op) else { return false }
                // Different work is a counterpart only when neither model finishes it later: then
                // the two really compute different things there (a head's activation changed).
                if !Self.sameWork(layer, candidate) && (Self.finishedLater(index, in: a) || Self.finishedLater(other, in: b)) {
                    return false
                }
                return Self.sameNumbers(a.shape(layer.output), b.shape(candidate.output))
            }
        }
        if candidates.isEmpty, kind == .family, case .elementwise(.average) = layer.op {
            return averageOfSum(mapped, count: layer.inputs.count, in: b)
        }
        guard candidates.count > 1 else { return candidates.first }
        if let named = candidates.first(where: { Self.mentions(b.layers[$0].name, layer.name) }) { return named }
        let weights = layer.parameters.map(\.shape)
        return candidates.first { b.layers[$0].parameters.map(\.shape) == weights } ?? candidates.first
    }

    /// Output shapes agree when both are known and equal, or one is the channels-first form of the
    /// other (a graph kept in ONNX's layout), or either is unknown.
    static func sameShape(_ x: Shape?, _ y: Shape?) -> Bool {
        guard let x, let y else { return true }
        if x == y { return true }
        guard x.rank == y.rank, x.rank >= 3 else { return false }
        let channelsFirst = [x[0], x[x.rank - 1]] + x.dimensions[1..<(x.rank - 1)]
        let channelsLast = [x[0]] + x.dimensions[2...] + [x[1]]
        return y.dimensions == channelsFirst || y.dimensions == channelsLast
    }

    /// The other model's Rescaling by 1/n of a sum of the same n values: an Average whose sum is
    /// shared with another layer (tf2onnx computes `a + b + c` once for an Add and an Average).
    private func averageOfSum(_ inputs: [String], count: Int, in b: ComparableGraph) -> Int? {
        b.layers.indices.first { index in
            guard pairOfB[index] == nil, case .rescaling(let r) = b.layers[index].op, r.scale.count == 1, r.offset == [0],
                  abs(r.scale[0] * Float(count) - 1) <= 1e-6, let sum = b.layers[index].inputs.first.flatMap({ b.producer(of: $0) }),
                  case .elementwise(.add) = b.layers[sum].op else { return false }
            return b.layers[sum].inputs.sorted() == inputs.sorted()
        }
    }

    /// Two layers of one family compute the same value only when both end with the same fused
    /// activation and both add a bias (their own or a folded BatchNormalization's) or neither does:
    /// a convolution whose bias and ReLU come later in the other model is not its counterpart yet.
    static func sameWork(_ x: ComparableGraph.Layer, _ y: ComparableGraph.Layer) -> Bool {
        func work(_ layer: ComparableGraph.Layer) -> (Activation?, Bool?) {
            let folded = layer.steps.contains { $0.family == "BatchNormalization" }
            return (layer.op.fusedActivation, layer.op.useBias.map { $0 || folded })
        }
        let (left, right) = (work(x), work(y))
        return left.0 == right.0 && left.1 == right.1
    }

    /// True when a bias or an activation is applied to the layer's output further on, through
    /// transposes and reshapes only (tf2onnx's Conv1D: Conv2D, transpose, squeeze, bias, ReLU).
    static func finishedLater(_ index: Int, in graph: ComparableGraph) -> Bool {
        var frontier = [graph.layers[index].output]
        var seen = Set(frontier)
        while let value = frontier.popLast() {
            for reader in graph.readers(of: value) {
                let layer = graph.layers[reader]
                if Self.finishesLayer(layer.op) { return true }
                if onlyReshapes(layer, in: graph), seen.insert(layer.output).inserted { frontier.append(layer.output) }
            }
        }
        return false
    }

    /// Ops that add a bias or apply an activation to what a convolution or Dense computed: where the
    /// other model's layer finishes the work of a layer exported without them.
    static func finishesLayer(_ op: Op) -> Bool {
        switch op {
        case .rescaling, .activation, .batchNormalization, .prelu:
            true
        case .resizing:
            false
        // Layers of their own (a bias of their own is `sameWork`'s business).
        case .dense, .conv, .depthwiseConv, .separableConv, .convTranspose, .onnx(.gemm), .onnx(.matMul), .embedding, .masking, .recurrent,
             .pool, .globalPool, .zeroPadding, .cropping, .upSampling, .layerNormalization, .multiHeadAttention,
             .einsumDense, .unitNormalization, .attention,
             .groupNormalization,
             .normalization, .layerScale, .onnx(.localResponseNormalization):
            false
        // Activations ONNX spells as ops of their own are not looked for.
        case .onnx(.clip), .onnx(.coercedSoftmax), .onnx(.unary):
            false
        // Moves and merges of values; reshapes are walked through by `onlyReshapes`.
        case .flatten, .reshape, .permute, .transpose, .onnx(.squeeze), .onnx(.unsqueeze), .onnx(.slice), .onnx(.split),
             .onnx(.pad), .onnx(.resize), .onnx(.gather), .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedReshape), .elementwise, .concatenate, .scaledResidual, .onnx(.comparison), .onnx(.select),
             .onnx(.reduce):
            false
        case .dropout, .stochasticDepth, .identity, .augmentation, .onnx(.constant), .onnx(.cast), .opaque,
             .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization):
            false
        }
    }

    /// Shapes that hold the same numbers in the same order, or in one layout and the other: equal
    /// once axes of length 1 are dropped, directly or after moving the channels.
    static func sameNumbers(_ x: Shape?, _ y: Shape?) -> Bool {
        guard let x, let y else { return true }
        if sameShape(x, y) { return true }
        func squeezed(_ shape: Shape) -> [Int?] { [shape[0]] + shape.dimensions.dropFirst().filter { $0 != 1 } }
        if squeezed(x) == squeezed(y) { return true }
        guard y.rank >= 3 else { return false }
        let channelsLast = Shape([y[0]] + y.dimensions[2...] + [y[1]])
        return squeezed(x) == squeezed(channelsLast)
    }

    /// A layer that only moves the numbers the way `compare` looks through: adding or dropping axes
    /// of length 1, or moving the channels between the channels-first and channels-last places
    /// (tf2onnx's transposes around a BatchNormalization or an activation it keeps in NCHW).
    static func onlyReshapes(_ layer: ComparableGraph.Layer, in graph: ComparableGraph) -> Bool {
        guard layer.inputs.count == 1 else { return false }
        if case .transpose(let a) = layer.op {
            let rank = a.permutation.count
            return rank >= 3 && (a.permutation == [0] + Array(2..<rank) + [1] || a.permutation == [0, rank - 1] + Array(1..<(rank - 1)))
        }
        guard ComparableGraph.family(layer.op) == "reshape",
              let input = graph.shape(layer.inputs[0]), let output = graph.shape(layer.output) else { return false }
        return input.dimensions.filter { $0 != 1 } == output.dimensions.filter { $0 != 1 }
    }

    /// `value` and the values reshapes of only axes of length 1 make of it.
    static func throughReshapes(_ value: String, in graph: ComparableGraph) -> Set<String> {
        var result: Set<String> = [value]
        var frontier = [value]
        while let current = frontier.popLast() {
            for index in graph.readers(of: current) where onlyReshapes(graph.layers[index], in: graph) {
                if result.insert(graph.layers[index].output).inserted { frontier.append(graph.layers[index].output) }
            }
        }
        return result
    }

    /// True when `other` names `name` as one of its parts: tf2onnx's `model/conv2d_3/Conv2D` (or, as
    /// Keras layer names, `model_conv2d_3_Conv2D`) for `conv2d_3`.
    static func mentions(_ other: String, _ name: String) -> Bool {
        if other == name || other.split(separator: "/").contains(Substring(name)) { return true }
        let padded = "_" + kerasName(other) + "_"
        return padded.contains("_" + kerasName(name) + "_")
    }

    /// Ops whose inputs are matched in any order: the merges whose result does not depend on it.
    static func isCommutative(_ op: Op) -> Bool {
        switch op {
        case .elementwise(let operation):
            switch operation {
            case .add, .multiply, .average, .maximum, .minimum: true
            case .subtract, .divide, .power: false
            }
        // Only Keras's merge layers are matched with their inputs in any order (ONNX comparisons are
        // written in the order they were read on both sides).
        case .onnx(.comparison), .concatenate, .scaledResidual, .onnx(.select), .onnx(.gemm), .onnx(.matMul):
            false
        case .dense, .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling, .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .groupNormalization,
             .normalization, .rescaling, .resizing, .layerScale, .onnx(.localResponseNormalization), .activation, .prelu,
             .onnx(.clip),
             .onnx(.coercedSoftmax), .onnx(.unary), .embedding, .masking, .recurrent:
            false
        case .flatten, .reshape, .permute, .transpose, .onnx(.squeeze), .onnx(.unsqueeze), .onnx(.slice), .onnx(.split),
             .onnx(.pad), .onnx(.resize), .onnx(.gather), .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedReshape), .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization),
             .onnx(.reduce), .dropout, .stochasticDepth, .identity, .augmentation, .onnx(.constant), .onnx(.cast),
             .opaque:
            false
        }
    }

    /// A name as Scion's Keras writer spells it: characters TensorFlow refuses in a scope become
    /// `_`, and a name starting with `_` or `-` gets `layer` in front (`KerasModelPlan`).
    static func kerasName(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        var cleaned = String(name.map { allowed.contains($0) ? $0 : "_" })
        if let first = cleaned.first, first == "_" || first == "-" { cleaned = "layer" + cleaned }
        return cleaned
    }
}
