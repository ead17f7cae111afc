import ScionIR

/// Ops that run on either form, Flatten and Reshape.
extension ChannelsLastRewriter {
    mutating func rewriteFlexible(_ node: Node, index: Int, form: Form) throws {
        var op = node.op
        let valueRank = node.inputs.compactMap { rank(of: $0) }.max() ?? 0
        if form == .channelsLast, valueRank >= 3 {
            op = try rewrittenForChannelsLast(node, rank: valueRank)
        } else if case .rescaling(var a) = node.op, ChannelsFirstRewriter.isPerChannel(a) {
            // Per-feature values of a rank-2 value run along its last axis, which Keras uses.
            a.axis = -1
            op = .rescaling(a)
        }
        if case .activation(let activation) = op, let axis = activation.axis,
           valueRank > 0, axis == valueRank - 1 {
            // Keras names log_softmax and sparsemax only over the last axis, written -1.
            op = .activation(activation.withAxis(-1))
        }
        if let features = pendingRowPermutations[index] {
            try permuteFlattenedRows(of: node, spatial: features.spatial, channels: features.channels)
        }
        try emit(node, form: form, op: op)
    }

    /// The op with its axes where they are in channels-last values of `rank`.
    mutating func rewrittenForChannelsLast(_ node: Node, rank: Int) throws -> Op {
        switch node.op {
        case .activation(let activation):
            return .activation(try remapped(activation, rank: rank, node: node))
        case .batchNormalization(var a):
            a.axis = try position(of: a.axis, rank: rank, node: node)
            return .batchNormalization(a)
        case .groupNormalization(var a):
            a.axis = try position(of: a.axis, rank: rank, node: node)
            return .groupNormalization(a)
        case .concatenate(var a):
            a.axis = try position(of: a.axis, rank: rank, node: node)
            return .concatenate(a)
        case .rescaling(var a):
            if ChannelsFirstRewriter.isPerChannel(a) { a.axis = -1 }
            return .rescaling(a)
        case .prelu(var a):
            try permuteKernel(of: node, role: .alpha, change: "PReLU alpha to channels-last",
                              permutation: ChannelsLastAxes.sampleToChannelsLast(sampleRank: rank - 1))
            a.sharedAxes = try a.sharedAxes.map { try position(of: $0, rank: rank, node: node) }.sorted()
            return .prelu(a)
        default:
            return node.op
        }
    }

    /// Channels-last position of a channels-first axis, written as Keras writes it (-1 for the last).
    func position(of axis: Int, rank: Int, node: Node) throws -> Int {
        guard let moved = ChannelsLastAxes.channelsLastPosition(of: axis, rank: rank) else {
            throw failure(node.name, "axis \(axis) is outside a value of rank \(rank)")
        }
        return moved == rank - 1 ? -1 : moved
    }

    func remapped(_ activation: Activation, rank: Int, node: Node) throws -> Activation {
        guard let axis = activation.axis else { return activation }
        return activation.withAxis(try position(of: axis, rank: rank, node: node))
    }

    /// A Flatten reads the original order when it has it; otherwise it flattens the channels-last
    /// value when that gives the same features (only the channels longer than 1) or when its Dense
    /// reader permutes its kernel rows to match; else it transposes back first.
    mutating func rewriteFlatten(_ node: Node, channelsLast: Bool, dense: Int?) throws {
        guard let input = node.inputs.first, node.inputs.count == 1 else {
            throw failure(node.name, "a Flatten needs exactly one input")
        }
        let op = Op.flatten(FlattenAttributes(layout: .channelsLast))
        if let original = available[input]?.original {
            try emit(node, form: .original, op: op, inputs: [original])
        } else if channelsLast, let last = available[input]?.channelsLast {
            if let dense, let dimensions = shape(of: input)?.dimensions.dropFirst().compactMap({ $0 }), let channels = dimensions.first {
                pendingRowPermutations[dense] = (Array(dimensions.dropFirst()), channels)
            }
            try emit(node, form: .original, op: op, inputs: [last])
        } else {
            try emit(node, form: .original, op: op)
        }
    }

    /// Dense rows after a Flatten of channels-last data: old row `c·S + s` (ONNX flattened
    /// `(c, s...)`) moves to new row `s·C + c`.
    mutating func permuteFlattenedRows(of node: Node, spatial: [Int], channels: Int) throws {
        guard let kernel = sourceParameter(of: node, role: .kernel), kernel.shape.count == 2,
              let rows = (spatial + [channels]).checkedProduct, rows == kernel.shape[0] else {
            throw failure(node.name, "a Dense after a Flatten of \([channels] + spatial) needs a kernel with that many rows")
        }
        try permuteKernel(of: node, role: .kernel, change: "Dense rows for a channels-last Flatten",
                          permutation: ChannelsLastAxes.flattenedRowsToChannelsLast(spatialRank: spatial.count),
                          viewShape: [channels] + spatial + [kernel.shape[1]], newShape: kernel.shape)
    }

    /// A Reshape depends on memory order, so it reads the original order, except when both forms
    /// of its input have the same memory order (`[N, C, 1, ...]`). When its result is
    /// `[N, C, 1, ...]` and its readers want channels-last (squeeze-and-excitation: a Dense, a
    /// Reshape to (C, 1, 1), a Conv), it writes `[N, 1, ..., C]` directly by rotating its target.
    mutating func rewriteReshape(_ node: Node, readsEither: Bool) throws {
        guard case .reshape(var a) = node.op, let input = node.inputs.first, node.inputs.count == 1,
              let output = node.outputs.first else {
            throw failure(node.name, "a Reshape needs exactly one input")
        }
        let inputName: String
        if let original = available[input]?.original {
            inputName = original
        } else if readsEither, let last = available[input]?.channelsLast {
            inputName = last
        } else {
            inputName = try materialize(input, in: .original)
        }
        if let result = shape(of: output), ChannelsFirstRewriter.hasOnlyChannelsFirst(result), demand[output] == .channelsLast,
           let channels = a.targetShape.first {
            a.targetShape = Array(a.targetShape.dropFirst()) + [channels]
            try emit(node, form: .channelsLast, op: .reshape(a), inputs: [inputName])
            return
        }
        try emit(node, form: .original, op: node.op, inputs: [inputName])
    }
}
