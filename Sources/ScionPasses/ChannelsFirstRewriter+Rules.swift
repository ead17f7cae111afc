import ScionIR

/// Which form each op needs its inputs in, and which form its consumers want each value in.
extension ChannelsFirstRewriter {
    /// What a node needs from the layout of its inputs.
    enum Rule: Equatable {
        /// A channels-last spatial op (convolution, pooling, padding, cropping, upsampling): becomes
        /// channels-first, reads its input channels-first and writes channels-first (rank 2 for a
        /// global pooling without `keepDimensions`, the same in both forms).
        case spatial
        /// Depends on the memory order of its input (Reshape, Permute, Dense on rank > 2, Embedding,
        /// opaque layers, a channels-first op in a channels-last graph...): reads and writes the
        /// original order, attributes untouched.
        case original
        /// Elementwise or per-axis: runs on either form when every input of rank 3 or more has it,
        /// with its axis attributes rewritten for channels-first; writes the form it read.
        case flexible
        /// Per-axis, but ONNX can only express it channels-first: a BatchNormalization over the
        /// channels of a value of rank 3 or more (ONNX normalizes axis 1). Reads and writes
        /// channels-first, its axis rewritten to 1.
        case channelsFirstOnly
        /// A Reshape. `readsChannelsFirst`: every non-batch axis but the channels has length 1, so
        /// both forms have the same memory order and the channels-first value can be reshaped as
        /// is. `writesChannelsFirst`: the result is `[N, 1, ..., 1, C]`, which the reshape can produce
        /// channels-first (`[N, C, 1, ..., 1]`) by permuting its target shape.
        case reshape(readsChannelsFirst: Bool, writesChannelsFirst: Bool)
        case flatten(FlattenPlan)
    }

    /// How a Flatten of a channels-first value can avoid a Transpose.
    struct FlattenPlan: Equatable {
        /// Every non-batch axis but the channels has length 1: flattening channels-first gives the
        /// same features in the same order.
        var channelsOnly: Bool
        /// The Dense that reads the flattened features (through ops that keep each feature in
        /// place) and can permute its kernel rows instead, with the shape flattened.
        var dense: Int?
        var features: FlattenedFeatures?
    }

    /// Layout of a spatial op; nil for ops without one.
    static func spatialLayout(of op: Op) -> Layout? { op.spatialLayout }

    func rule(for index: Int) -> Rule {
        let node = source.nodes[index]
        if let layout = Self.spatialLayout(of: node.op) {
            return layout == .channelsLast ? .spatial : .original
        }
        switch node.op {
        case .reshape:
            let input = node.inputs.first.flatMap { shape(of: $0) }
            let output = node.outputs.first.flatMap { shape(of: $0) }
            return .reshape(readsChannelsFirst: input.map(Self.hasOnlyChannels) ?? false,
                            writesChannelsFirst: output.map(Self.hasOnlyChannels) ?? false)
        case .flatten:
            return .flatten(flattenPlan(for: node))
        case .dense:
            // Dense multiplies the last axis: on rank 2 that is the same in both forms; on NHWC
            // features (ConvNeXt) it must see the channels last.
            let inputRank = node.inputs.first.flatMap { rank(of: $0) }
            return inputRank.map { $0 <= 2 } == true ? .flexible : .original
        case .permute, .embedding, .opaque, .transpose:
            return .original
        // Ops only ONNX files bring: they never appear in channels-last Keras graphs, and when one does
        // it keeps the order it was written for.
        case .constant, .gemm, .matMul, .unary, .comparison, .select, .reduce, .gather, .cast, .squeeze, .unsqueeze,
             .slice, .split, .pad, .clip, .resize, .localResponseNormalization, .coercedSoftmax:
            return .original
        case .batchNormalization, .groupNormalization:
            guard canRunChannelsFirst(node) else { return .original }
            let inputRank = node.inputs.first.flatMap { rank(of: $0) } ?? 0
            return inputRank >= 3 ? .channelsFirstOnly : .flexible
        case .activation, .dropout, .identity, .stochasticDepth, .elementwise, .concatenate,
             .rescaling, .normalization, .layerScale, .scaledResidual, .layerNormalization, .prelu:
            return canRunChannelsFirst(node) ? .flexible : .original
        case .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling:
            return .spatial
        }
    }

    /// True for `[N, 1, ..., 1, C]` of rank 3 or more: channels-first it is `[N, C, 1, ..., 1]`, the
    /// same elements in the same memory order.
    static func hasOnlyChannels(_ shape: Shape) -> Bool {
        shape.rank >= 3 && shape.dimensions.dropFirst().dropLast().allSatisfy { $0 == 1 }
    }

    /// Whether a flexible op can run on channels-first inputs: every input's rank is known, inputs of
    /// rank 3 or more share one rank (a lower-rank operand would broadcast against different axes),
    /// and the op's axes have a channels-first equivalent an ONNX writer can map.
    func canRunChannelsFirst(_ node: Node) -> Bool {
        let ranks = node.inputs.map { rank(of: $0) }
        guard ranks.allSatisfy({ $0 != nil }) else { return false }
        let known = ranks.compactMap { $0 }
        guard let rank = known.max() else { return false }
        if rank <= 2 { return true }
        guard known.allSatisfy({ $0 == rank }) else { return false }
        let fits = { (axis: Int) in ChannelsFirstAxes.channelsFirstPosition(of: axis, rank: rank) != nil }
        switch node.op {
        case .activation(let activation):
            return activation.axis.map(fits) ?? true
        case .groupNormalization(let a):
            // ONNX's instance and group normalizations take channels at axis 1, like BatchNormalization.
            return a.axis == -1 || a.axis == rank - 1
        case .batchNormalization(let a):
            // ONNX BatchNormalization normalizes axis 1: channels-first, that is the channel axis.
            // A Keras one over another axis stays in the original order, where its axis means what
            // Keras meant (axis 1 there maps directly too).
            return a.axis == -1 || a.axis == rank - 1
        case .concatenate(let a):
            return fits(a.axis)
        case .rescaling(let a):
            return !Self.isPerChannel(a) || fits(a.axis)
        case .layerScale(let a):
            return fits(a.axis)
        case .normalization(let a):
            // One kept axis: statistics are a vector along it, unchanged. Several: they would have
            // to be permuted as a block; keep the original order instead.
            return a.axes.count <= 1 && a.axes.allSatisfy(fits)
        case .layerNormalization(let a):
            // ONNX LayerNormalization normalizes trailing axes. Channels-first, that holds only when
            // the channels are not normalized and the normalized axes stay at the end.
            let resolved = a.axes.map { $0 < 0 ? $0 + rank : $0 }
            guard resolved.allSatisfy({ (0..<rank).contains($0) }), !resolved.contains(rank - 1) else { return false }
            let moved = resolved.compactMap { ChannelsFirstAxes.channelsFirstPosition(of: $0, rank: rank) }.sorted()
            return moved == Array((rank - moved.count)..<rank)
        case .prelu:
            // Alpha `[spatial..., C]` is permuted in place: only when no other node reads it.
            guard let alpha = sourceParameter(of: node, role: .alpha) else { return false }
            return alpha.shape.count == rank - 1 && parameterUses[alpha.name] == 1
        default:
            return true
        }
    }

    static func isPerChannel(_ attributes: RescalingAttributes) -> Bool {
        attributes.scale.count > 1 || attributes.offset.count > 1
    }

    /// The source graph's parameter playing `role` in a source node (before any change: a shared
    /// layer's second call must see the same kernel as its first).
    func sourceParameter(of node: Node, role: ParameterRole) -> Parameter? {
        source.parameter(of: node, role: role)
    }

    /// Flatten of a channels-first value: a plain channels-first flatten when only the channels are
    /// longer than 1, or one whose Dense reader permutes its kernel rows (the classic trap: Keras
    /// flattened NHWC, so Dense rows are numbered `(h, w, c)`).
    func flattenPlan(for node: Node) -> FlattenPlan {
        guard let input = node.inputs.first, let inputShape = shape(of: input), inputShape.rank >= 3 else {
            return FlattenPlan(channelsOnly: false)
        }
        var plan = FlattenPlan(channelsOnly: Self.hasOnlyChannels(inputShape))
        let dimensions = inputShape.dimensions.dropFirst().compactMap { $0 }
        guard dimensions.count == inputShape.rank - 1, let channels = dimensions.last,
              let (dense, firstRow) = featureKeepingReader(of: node) else { return plan }
        plan.dense = dense
        plan.features = FlattenedFeatures(spatial: Array(dimensions.dropLast()), channels: channels, firstRow: firstRow)
        return plan
    }

    /// The Dense that reads `node`'s output through ops that keep each feature in place (Dropout,
    /// Identity, StochasticDepth, activations: all permutation-equivariant on a rank-2 value) or
    /// put it at a known place (a Concatenate of rank-2 values along the features), each value read
    /// once and none a graph output, with the Dense row the flattened features start at. Nil
    /// otherwise, or when the Dense kernel is shared with another node.
    func featureKeepingReader(of node: Node) -> (dense: Int, firstRow: Int)? {
        guard var value = node.outputs.first else { return nil }
        var firstRow = 0
        while true {
            guard !graphOutputs.contains(value), let readers = consumers[value], readers.count == 1,
                  let reader = readers.first else { return nil }
            let next = source.nodes[reader]
            guard let output = next.outputs.first, next.outputs.count == 1 else { return nil }
            switch next.op {
            case .dense:
                guard let kernel = sourceParameter(of: next, role: .kernel), parameterUses[kernel.name] == 1 else {
                    return nil
                }
                return (reader, firstRow)
            case .dropout, .identity, .stochasticDepth, .activation:
                guard next.inputs.count == 1 else { return nil }
            case .concatenate(let a):
                // Features of the inputs before this one come first.
                guard rank(of: output) == 2, a.axis == -1 || a.axis == 1,
                      let position = next.inputs.firstIndex(of: value) else { return nil }
                let before = next.inputs[..<position].map { shape(of: $0)?.dimensions.last ?? nil }
                guard before.allSatisfy({ $0 != nil }) else { return nil }
                firstRow += before.compactMap { $0 }.reduce(0, +)
            default:
                return nil
            }
            value = output
        }
    }

    // MARK: - Ranks

    mutating func computeRanks(order: [Int]) {
        for input in source.inputs {
            if let rank = input.shape?.rank { ranks[input.name] = rank }
        }
        for index in order {
            let node = source.nodes[index]
            for output in node.outputs {
                if let rank = source.values[output]?.shape?.rank {
                    ranks[output] = rank
                } else if let rank = outputRank(of: node) {
                    ranks[output] = rank
                }
            }
        }
    }

    /// The rank of a node's output when shape inference could not tell (unknown input lengths):
    /// spatial ops know theirs, ops that keep their input's shape keep its rank.
    func outputRank(of node: Node) -> Int? {
        if case .globalPool(let a) = node.op { return a.keepDimensions ? a.rank + 2 : 2 }
        if let spatialRank = Self.spatialRank(of: node.op) { return spatialRank + 2 }
        switch node.op {
        case .activation, .dropout, .identity, .stochasticDepth, .batchNormalization, .elementwise, .concatenate,
             .rescaling, .normalization, .layerScale, .scaledResidual, .layerNormalization, .prelu:
            let inputRanks = node.inputs.map { ranks[$0] }
            guard inputRanks.allSatisfy({ $0 != nil }) else { return nil }
            return inputRanks.compactMap { $0 }.max()
        default:
            return nil
        }
    }

    // MARK: - Demand

    /// Which form each value's consumers would like, walking backwards: a spatial reader votes
    /// channels-first; a reader needing the original order, and a graph output, vote original; a
    /// flexible reader passes on what its own output's readers want. The majority wins; a tie is no
    /// preference. Used to break ties when a flexible node could go either way, and to decide
    /// whether a graph input gets its Transpose up front.
    mutating func computeDemand(order: [Int]) {
        for index in order.reversed() {
            for output in source.nodes[index].outputs {
                demand[output] = tally(output)
            }
        }
        for input in source.inputs {
            demand[input.name] = tally(input.name)
        }
    }

    /// The majority wish of a value's readers (a graph output counts as one reader wanting the
    /// original order); nil on a tie.
    func tally(_ value: String) -> Form? {
        var votes = graphOutputs.contains(value) ? -1 : 0
        for reader in consumers[value] ?? [] {
            guard let readerRule = rules[reader] else { continue }
            switch wish(of: source.nodes[reader], rule: readerRule) {
            case .channelsFirst: votes += 1
            case .original: votes -= 1
            case nil: break
            }
        }
        return votes == 0 ? nil : votes > 0 ? .channelsFirst : .original
    }

    /// The form a node would like its inputs in.
    func wish(of node: Node, rule: Rule) -> Form? {
        switch rule {
        case .spatial, .channelsFirstOnly: .channelsFirst
        case .original: .original
        case .flexible:
            // A flexible op on rank-2 values has no layout to pass on.
            node.outputs.first.flatMap { output in (rank(of: output) ?? 3) <= 2 ? nil : demand[output] }
        case .reshape(let readsChannelsFirst, _): readsChannelsFirst ? nil : .original
        case .flatten(let plan): plan.channelsOnly || plan.dense != nil ? nil : .original
        }
    }
}
