import ScionIR

/// Which axis of a value holds the batch and which the features, read from the layers that
/// produce it. An ONNX graph says nothing about this per tensor: a rank-3 tensor can be a
/// channels-first `(N, C, W)` from a Conv1d or a features-last `(N, steps, features)` from a
/// transformer, and torch's recurrent layers leave `(steps, N, features)` behind. A head grafted on
/// the value must pool, project and normalise the right axes, so it asks here instead of assuming
/// the file format's convention.
///
/// ```
///  Conv / Pool / BatchNormalization(axis 1) ...     (N, C, H, W)        channels-first
///  MatMul / Gemm / LayerNormalization / attention   (N, steps, F)       features-last
///  Embedding (Gather of a weight table)             (N, steps, F)       features-last
///  ONNX GRU/LSTM Y                                  (steps, dirs, N, H) batch on axis 2
///  Transpose, Reshape, Squeeze...                   the roles move with the axes
/// ```
public struct AxisRoles: Equatable, Sendable {
    /// The batch axis.
    public var batch: Int
    /// The feature (channel) axis; nil when only the batch axis is known (a model input).
    public var features: Int?
    /// The value's rank.
    public var rank: Int

    /// Batch first, channels second: what ONNX's spatial ops read and write.
    public var isChannelsFirst: Bool { batch == 0 && features == 1 && rank >= 3 }
    /// Batch first, features last: a sequence `(N, steps, features)` or a channels-last map.
    public var isFeaturesLast: Bool { batch == 0 && features == rank - 1 && rank >= 2 }

    /// The roles of `value` in `graph`; nil when the layers producing it do not say (an opaque
    /// layer, a Reshape that moves the features...).
    public static func of(_ value: String, in graph: Graph) -> AxisRoles? {
        var reader = AxisRoleReader(graph: graph)
        return reader.roles(of: value)
    }
}

/// Walks back from a value through the layers producing it, remembering what it found.
struct AxisRoleReader {
    let graph: Graph
    private let producers: [String: Int]
    private var found: [String: AxisRoles?] = [:]

    init(graph: Graph) {
        self.graph = graph
        self.producers = graph.producers
    }

    /// How many layers back the walk goes: convolutions answer at once, but a transformer's
    /// LayerNormalization asks its input for the batch axis, and so on back to the Embedding. Deeper
    /// than this the answer is unknown (a LayerNormalization then assumes the batch first) rather
    /// than a stack overflow on a graph of thousands of nodes.
    static let depthLimit = 128
    private var depth = 0

    mutating func roles(of value: String) -> AxisRoles? {
        if let known = found[value] { return known }
        guard depth < Self.depthLimit else { return nil }
        // Marked unknown first: a cycle (there should be none) ends as unknown, not in a loop.
        found[value] = .some(nil)
        depth += 1
        let result = derive(value)
        depth -= 1
        found[value] = result
        return result
    }

    private func rank(_ value: String) -> Int? { graph.values[value]?.shape?.rank }

    private mutating func derive(_ value: String) -> AxisRoles? {
        guard let rank = rank(value) else { return nil }
        guard let index = producers[value] else {
            // A model input: every reader of an ONNX model (and Scion's runner) puts the batch first;
            // which axis holds the features only its layers tell.
            return graph.inputs.contains { $0.name == value } ? AxisRoles(batch: 0, features: nil, rank: rank) : nil
        }
        let node = graph.nodes[index]
        let slot = node.outputs.firstIndex(of: value) ?? 0
        let inputs = node.inputs.filter { input in
            producers[input].map { !Self.isConstant(graph.nodes[$0]) } ?? graph.inputs.contains { $0.name == input }
        }
        let channelsFirst = AxisRoles(batch: 0, features: 1, rank: rank)
        // Asked only by the ops that need it, so a convolution answers without walking further back.
        func first(_ reader: inout AxisRoleReader) -> AxisRoles? { inputs.first.flatMap { reader.roles(of: $0) } }

        switch node.op {
        case .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling, .resizing:
            guard let layout = node.op.spatialLayout, rank >= 3 else { return nil }
            return layout == .channelsFirst ? channelsFirst : AxisRoles(batch: 0, features: rank - 1, rank: rank)
        case .batchNormalization(let a):
            return AxisRoles(batch: 0, features: a.axis < 0 ? a.axis + rank : a.axis, rank: rank)
        case .groupNormalization(let a):
            return AxisRoles(batch: 0, features: a.axis < 0 ? a.axis + rank : a.axis, rank: rank)
        case .onnx(.localResponseNormalization), .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization),
             .onnx(.resize), .onnx(.depthSpace):
            return channelsFirst
        case .layerNormalization(let a) where a.axes.map({ $0 < 0 ? $0 + rank : $0 }) == [1] && rank >= 3:
            // Normalising the channels of a channels-first map (torch's LayerNorm2d spelled over axis 1).
            return channelsFirst
        case .dense, .onnx(.gemm), .onnx(.matMul), .einsumDense, .layerNormalization, .onnx(.rmsNormalization),
             .multiHeadAttention, .attention, .onnx(.scaledDotProductAttention), .embedding, .unitNormalization:
            // Features on the last axis; the batch stays where the input had it.
            return AxisRoles(batch: first(&self)?.batch ?? 0, features: rank - 1, rank: rank)
        case .recurrent(let a):
            // ONNX's time-major Y is (steps, directions, N, hidden), its states (directions, N, hidden);
            // Keras's batch-major layer writes (N, steps, units) or (N, units).
            if a.timeMajor { return AxisRoles(batch: slot == 0 ? 2 : 1, features: rank - 1, rank: rank) }
            return AxisRoles(batch: 0, features: rank - 1, rank: rank)
        case .transpose(let a):
            return first(&self).flatMap { Self.permuted($0, by: a.permutation) }
        case .permute(let a):
            return first(&self).flatMap { Self.permuted($0, by: [0] + a.dimensions) }
        case .reshape, .flatten, .onnx(.computedReshape):
            guard let roles = first(&self), let input = inputs.first else { return nil }
            return reshaped(roles, from: input, to: value)
        case .onnx(.squeeze(let a)):
            guard let roles = first(&self) else { return nil }
            let removed = Set(a.axes.map { $0 < 0 ? $0 + roles.rank : $0 })
            return Self.keeping(roles, axes: (0..<roles.rank).filter { !removed.contains($0) })
        case .onnx(.unsqueeze(let a)):
            guard let roles = first(&self) else { return nil }
            let added = Set(a.axes.map { $0 < 0 ? $0 + rank : $0 })
            let kept = (0..<rank).filter { !added.contains($0) }
            guard kept.count == roles.rank else { return nil }
            return AxisRoles(batch: kept[roles.batch], features: roles.features.map { kept[$0] }, rank: rank)
        case .onnx(.reduce(let a)):
            guard let roles = first(&self) else { return nil }
            if a.keepDimensions { return roles }
            let removed = Set((a.axes ?? Array(0..<roles.rank)).map { $0 < 0 ? $0 + roles.rank : $0 })
            return Self.keeping(roles, axes: (0..<roles.rank).filter { !removed.contains($0) })
        // Elementwise or per-axis work that keeps the axes where they are: the first input whose
        // roles are known and whose rank is the output's says (a broadcast bias does not).
        case .activation, .prelu, .dropout, .identity, .rescaling, .normalization, .stochasticDepth, .layerScale,
             .scaledResidual, .masking, .elementwise, .concatenate, .onnx(.unary), .onnx(.cast), .onnx(.clip),
             .onnx(.coercedSoftmax), .onnx(.slice), .onnx(.computedSlice), .onnx(.pad), .onnx(.computedPad),
             .onnx(.split), .onnx(.select), .onnx(.trilu), .onnx(.cumulativeSum), .onnx(.rotaryEmbedding), .augmentation:
            for input in inputs where self.rank(input) == rank {
                if let known = roles(of: input) { return known }
            }
            return nil
        case .onnx(.constant), .onnx(.gather), .onnx(.comparison), .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.scatterND), .onnx(.gatherND),
             .onnx(.gatherElements), .onnx(.einsum), .onnx(.argExtreme), .opaque:
            return nil
        }
    }

    /// Output axis `i` of a transpose is input axis `permutation[i]`.
    static func permuted(_ roles: AxisRoles, by permutation: [Int]) -> AxisRoles? {
        guard permutation.count == roles.rank, let batch = permutation.firstIndex(of: roles.batch) else { return nil }
        return AxisRoles(batch: batch, features: roles.features.flatMap { permutation.firstIndex(of: $0) }, rank: roles.rank)
    }

    /// The roles after removing every axis but `axes` (in order); nil when the batch goes.
    static func keeping(_ roles: AxisRoles, axes: [Int]) -> AxisRoles? {
        guard let batch = axes.firstIndex(of: roles.batch) else { return nil }
        return AxisRoles(batch: batch, features: roles.features.flatMap { axes.firstIndex(of: $0) }, rank: axes.count)
    }

    /// A Reshape keeps the axes of the leading lengths it leaves alone; when it only merges or splits
    /// the trailing axes after them (torch's `(steps, N, 2, H)` → `(steps, N, 2H)` for a bidirectional
    /// layer), the last axis is still the features.
    private func reshaped(_ roles: AxisRoles, from input: String, to output: String) -> AxisRoles? {
        guard let before = graph.values[input]?.shape?.dimensions, let after = graph.values[output]?.shape?.dimensions else { return nil }
        // Unknown lengths on both sides (a dynamic batch) count as kept: Reshape copies them (0) there.
        let kept = zip(before, after).prefix { $0.0 == $0.1 }.count
        guard roles.batch < kept else { return nil }
        if let features = roles.features, features < kept {
            return AxisRoles(batch: roles.batch, features: features, rank: after.count)
        }
        if roles.features == before.count - 1, kept == after.count - 1 {
            return AxisRoles(batch: roles.batch, features: after.count - 1, rank: after.count)
        }
        return AxisRoles(batch: roles.batch, features: nil, rank: after.count)
    }

    static func isConstant(_ node: Node) -> Bool {
        if case .onnx(.constant) = node.op { return true }
        return false
    }
}
