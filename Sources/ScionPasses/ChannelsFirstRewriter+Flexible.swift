import ScionIR

/// Ops that run on either form, and the Reshape and Flatten special cases.
extension ChannelsFirstRewriter {
    /// A flexible op reads every input of rank 3 or more in one form: `required` when given, else
    /// the one needing fewer new Transposes; on a tie, the one its output's readers want; else the
    /// original order. In channels-first form its axis attributes are rewritten
    /// (`rewrittenForChannelsFirst`).
    mutating func rewriteFlexible(_ node: Node, index: Int, form required: Form? = nil) throws {
        let inputRanks = node.inputs.compactMap { rank(of: $0) }.filter { $0 >= 3 }
        let form = required ?? chooseForm(node)
        var copy = node
        copy.inputs = try node.inputs.map { try materialize($0, in: form) }
        if form == .channelsFirst, let rank = inputRanks.max() {
            copy.op = try rewrittenForChannelsFirst(node, rank: rank)
        }
        for features in pendingRowPermutations[index] ?? [] {
            try permuteFlattenedRows(of: node, features: features)
        }
        copy.outputs = node.outputs.map { outputName($0, form: form) }
        emit(copy, sourceOutputs: node.outputs, form: form)
    }

    func chooseForm(_ node: Node) -> Form {
        let layered = node.inputs.filter { (rank(of: $0) ?? 3) >= 3 }
        if layered.isEmpty { return .original }
        let missingChannelsFirst = layered.filter { available[$0]?.channelsFirst == nil }.count
        let missingOriginal = layered.filter { available[$0]?.original == nil }.count
        if missingChannelsFirst != missingOriginal {
            return missingChannelsFirst < missingOriginal ? .channelsFirst : .original
        }
        return node.outputs.first.flatMap { demand[$0] } ?? .original
    }

    /// The op with its axes moved to where they are in channels-first values of `rank`: the channel
    /// axis (-1) becomes 1, spatial axis `i` becomes `i + 1`.
    mutating func rewrittenForChannelsFirst(_ node: Node, rank: Int) throws -> Op {
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
            // A scalar scale and offset apply everywhere; per-channel ones run along the channels.
            if Self.isPerChannel(a) { a.axis = try position(of: a.axis, rank: rank, node: node) }
            return .rescaling(a)
        case .layerScale(var a):
            a.axis = try position(of: a.axis, rank: rank, node: node)
            return .layerScale(a)
        case .normalization(var a):
            a.axes = try a.axes.map { try position(of: $0, rank: rank, node: node) }
            return .normalization(a)
        case .layerNormalization(var a):
            a.axes = try a.axes.map { try position(of: $0, rank: rank, node: node) }
            return .layerNormalization(a)
        case .prelu(var a):
            // Alpha is `[spatial..., C]` (one slope per element of a sample, ones along shared
            // axes): permute it to `[C, spatial...]`. Shared axes count from 1 after the batch axis,
            // the same numbering as full-rank axes, so they move like any axis.
            try permuteParameter(of: node, role: .alpha, change: "PReLU alpha to channels-first",
                                 permutation: ChannelsFirstAxes.sampleToChannelsFirst(sampleRank: rank - 1))
            a.sharedAxes = try a.sharedAxes.map { try position(of: $0, rank: rank, node: node) }
            return .prelu(a)
        default:
            return node.op
        }
    }

    /// A Reshape depends on memory order, so it reads the original order, except when its input's
    /// memory order is the same in both forms (`[N, 1, ..., 1, C]`). When its result is
    /// `[N, 1, ..., 1, C]` and its readers want channels-first (a squeeze-and-excitation block:
    /// GlobalAveragePooling, Reshape to (1, 1, C), Conv2D), it writes `[N, C, 1, ..., 1]` directly
    /// by permuting its target shape, so no Transpose is needed on either side.
    mutating func rewriteReshape(_ node: Node, readsChannelsFirst: Bool, writesChannelsFirst: Bool) throws {
        guard case .reshape(var attributes) = node.op, let input = node.inputs.first, node.inputs.count == 1 else {
            throw failure(node.name, "a Reshape needs exactly one input")
        }
        var copy = node
        if let original = available[input]?.original {
            copy.inputs = [original]
        } else if readsChannelsFirst, let channelsFirst = available[input]?.channelsFirst {
            copy.inputs = [channelsFirst]
        } else {
            copy.inputs = [try materialize(input, in: .original)]
        }
        var form = Form.original
        if writesChannelsFirst, let output = node.outputs.first, demand[output] == .channelsFirst,
           let channels = attributes.targetShape.last {
            attributes.targetShape = [channels] + attributes.targetShape.dropLast()
            copy.op = .reshape(attributes)
            form = .channelsFirst
        }
        copy.outputs = node.outputs.map { outputName($0, form: form) }
        emit(copy, sourceOutputs: node.outputs, form: form)
    }

    /// A Flatten reads the original order when it has it. When it has only the channels-first value,
    /// it flattens that (FlattenAttributes layout `.channelsFirst`: features numbered `(c, s...)`)
    /// if the order does not matter (only the channels are longer than 1) or if the Dense reading
    /// the result can permute its kernel rows to match; otherwise it transposes back first.
    mutating func rewriteFlatten(_ node: Node, plan: FlattenPlan) throws {
        guard let input = node.inputs.first, node.inputs.count == 1 else {
            throw failure(node.name, "a Flatten needs exactly one input")
        }
        var copy = node
        if let original = available[input]?.original {
            copy.inputs = [original]
        } else if let channelsFirst = available[input]?.channelsFirst, plan.channelsOnly || plan.dense != nil {
            copy.inputs = [channelsFirst]
            copy.op = .flatten(FlattenAttributes(layout: .channelsFirst))
            if !plan.channelsOnly, let dense = plan.dense, let features = plan.features {
                pendingRowPermutations[dense, default: []].append(features)
            }
        } else {
            copy.inputs = [try materialize(input, in: .original)]
        }
        emit(copy, sourceOutputs: node.outputs, form: .original)
    }

    /// Permutes a Dense kernel's rows for a channels-first Flatten before it: of the rows reading
    /// the flattened features (from `features.firstRow` on), old row `s·C + c` (Keras flattened
    /// `(s..., c)`) moves to new row `c·S + s` (see `ChannelsFirstAxes.flattenedRowsToChannelsFirst`).
    mutating func permuteFlattenedRows(of node: Node, features: FlattenedFeatures) throws {
        guard let kernel = sourceParameter(of: node, role: .kernel), kernel.shape.count == 2 else {
            throw failure(node.name, "a Dense after a Flatten needs a kernel of rank 2")
        }
        let units = kernel.shape[1]
        let view = features.spatial + [features.channels, units]
        guard let rows = (features.spatial + [features.channels]).checkedProduct, features.firstRow >= 0,
              features.firstRow + rows <= kernel.shape[0] else {
            let flattened = features.spatial + [features.channels]
            throw failure(node.name, "kernel \(kernel.shape) has no rows \(features.firstRow)... for flattened shape \(flattened)")
        }
        try permuteParameter(of: node, role: .kernel, change: "Dense rows for a channels-first Flatten",
                             permutation: ChannelsFirstAxes.flattenedRowsToChannelsFirst(spatialRank: features.spatial.count),
                             viewShape: view, newShape: kernel.shape, firstElement: features.firstRow * units)
    }
}
