import ScionIR

/// Ops that run on either form (their axis attributes rewritten), and the Reshape and Flatten
/// special cases.
extension LayoutRewriter {
    /// A flexible op reads every input of rank 3 or more in `form` (`chooseForm` picks it for a
    /// `.flexible` rule). In converted form its axis attributes are rewritten (`convertedOp`).
    mutating func rewriteFlexible(_ node: Node, index: Int, form: Form) throws {
        var op = node.op
        let valueRank = node.inputs.compactMap { rank(of: $0) }.max() ?? 0
        if form == .converted, valueRank >= 3 {
            op = try convertedOp(node, rank: valueRank)
        } else if direction.writesKerasLayers, case .rescaling(var a) = node.op, Self.isPerChannel(a) {
            // Per-feature values of a rank-2 value run along its last axis, which Keras uses.
            a.axis = -1
            op = .rescaling(a)
        }
        if direction.writesKerasLayers, case .activation(let activation) = op, let axis = activation.axis,
           valueRank > 0, axis == valueRank - 1 {
            // Keras names log_softmax and sparsemax only over the last axis, written -1.
            op = .activation(activation.withAxis(-1))
        }
        for features in pendingRowPermutations[index] ?? [] {
            try permuteFlattenedRows(of: node, features: features)
        }
        try emit(node, form: form, op: op)
    }

    /// The op with its axes moved to where they are in converted values of `rank` (channels-first:
    /// the channel axis -1 becomes 1, spatial axis `i` becomes `i + 1`; channels-last: 1 becomes -1,
    /// spatial axis `i` becomes `i - 1`).
    mutating func convertedOp(_ node: Node, rank: Int) throws -> Op {
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
            // Alpha holds one slope per element of a sample (ones along shared axes): permute it like
            // a sample. Shared axes count from 1 after the batch axis, the same numbering as full-rank
            // axes, so they move like any axis (Keras lists them in ascending order).
            try permuteParameter(of: node, role: .alpha, change: direction.preluAlphaChange,
                                 permutation: direction.samplePermutation(sampleRank: rank - 1))
            a.sharedAxes = try a.sharedAxes.map { try position(of: $0, rank: rank, node: node) }
            if direction.writesKerasLayers { a.sharedAxes.sort() }
            return .prelu(a)
        // No axis attributes: the same op on either form.
        case .dropout, .identity, .stochasticDepth, .elementwise, .scaledResidual, .dense:
            return node.op
        case .augmentation(var a):
            // The same op at inference; its training transforms read the image's axes from here.
            a.layout = direction.targetLayout
            return .augmentation(a)
        // Never flexible (`rule(for:)`): spatial, memory-order and ONNX-only ops.
        case .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling, .resizing, .flatten, .reshape, .permute, .transpose, .embedding, .masking, .recurrent, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .opaque, .onnx:
            return node.op
        }
    }

    /// Converted position of a source axis, or an error naming the node. Going channels-last the
    /// last axis is written as Keras writes it, -1.
    func position(of axis: Int, rank: Int, node: Node) throws -> Int {
        guard let moved = direction.convertedPosition(of: axis, rank: rank) else {
            throw failure(node.name, "axis \(axis) is outside a value of rank \(rank)")
        }
        return direction.writesKerasLayers && moved == rank - 1 ? -1 : moved
    }

    /// An activation with an axis (softmax) applied to a value that is now converted.
    func remapped(_ activation: Activation, rank: Int, node: Node) throws -> Activation {
        guard let axis = activation.axis else { return activation }
        return activation.withAxis(try position(of: axis, rank: rank, node: node))
    }

    /// A Reshape depends on memory order, so it reads the original order, except when its input's
    /// memory order is the same in both forms (`readsConverted`). When its result is such a value and
    /// its readers want the converted form (a squeeze-and-excitation block: GlobalAveragePooling,
    /// Reshape to (1, 1, C), Conv2D), it writes the converted form directly by permuting its target
    /// shape, so no Transpose is needed on either side.
    mutating func rewriteReshape(_ node: Node, readsConverted: Bool, writesConverted: Bool) throws {
        guard case .reshape(var a) = node.op, let input = node.inputs.first, node.inputs.count == 1 else {
            throw failure(node.name, "a Reshape needs exactly one input")
        }
        let inputName: String
        if let original = available[input]?.original {
            inputName = original
        } else if readsConverted, let converted = available[input]?.converted {
            inputName = converted
        } else {
            inputName = try materialize(input, in: .original)
        }
        if writesConverted, let output = node.outputs.first, demand[output] == .converted, !a.targetShape.isEmpty {
            a.targetShape = direction.samplePermutation(sampleRank: a.targetShape.count).map { a.targetShape[$0] }
            try emit(node, form: .converted, op: .reshape(a), inputs: [inputName])
            return
        }
        try emit(node, form: .original, op: node.op, inputs: [inputName])
    }

    /// A Flatten reads the original order when it has it. When it has only the converted value, it
    /// flattens that (FlattenAttributes layout the target's) if the order does not matter (only the
    /// channels are longer than 1) or if the Dense reading the result can permute its kernel rows to
    /// match; otherwise it transposes back first. Going channels-last every Flatten becomes Keras's
    /// (channels-last layout: Keras flattens the memory order).
    mutating func rewriteFlatten(_ node: Node, plan: FlattenPlan) throws {
        guard let input = node.inputs.first, node.inputs.count == 1 else {
            throw failure(node.name, "a Flatten needs exactly one input")
        }
        let convertedFlatten = Op.flatten(FlattenAttributes(layout: direction.targetLayout))
        let originalFlatten = direction.writesKerasLayers ? convertedFlatten : node.op
        if let original = available[input]?.original {
            try emit(node, form: .original, op: originalFlatten, inputs: [original])
        } else if let converted = available[input]?.converted, plan.channelsOnly || plan.dense != nil {
            if !plan.channelsOnly, let dense = plan.dense, let features = plan.features {
                pendingRowPermutations[dense, default: []].append(features)
            }
            try emit(node, form: .original, op: convertedFlatten, inputs: [converted])
        } else {
            try emit(node, form: .original, op: originalFlatten)
        }
    }

    /// Permutes a Dense kernel's rows for a Flatten of converted data before it: of the rows reading
    /// the flattened features (from `features.firstRow` on), viewed as the source sample shape
    /// followed by the units, the rows move by `LayoutDirection.flattenedRowsPermutation`
    /// (channels-first: old row `s·C + c` becomes new row `c·S + s`).
    mutating func permuteFlattenedRows(of node: Node, features: FlattenedFeatures) throws {
        let flattened = direction.sampleShape(spatial: features.spatial, channels: features.channels)
        guard let kernel = sourceParameter(of: node, role: .kernel), kernel.shape.count == 2 else {
            throw failure(node.name, "a Dense after a Flatten needs a kernel of rank 2")
        }
        let units = kernel.shape[1]
        guard let rows = flattened.checkedProduct, features.firstRow >= 0, features.firstRow + rows <= kernel.shape[0] else {
            throw failure(node.name, "kernel \(kernel.shape) has no rows \(features.firstRow)... for flattened shape \(flattened)")
        }
        try permuteParameter(of: node, role: .kernel, change: direction.flattenedRowsChange,
                             permutation: direction.flattenedRowsPermutation(spatialRank: features.spatial.count),
                             viewShape: flattened + [units], newShape: kernel.shape, firstElement: features.firstRow * units)
    }

    /// Replaces the node's parameter with `role` by its bytes permuted lazily (see
    /// `ParameterPermutation.apply`), once however many nodes share it.
    mutating func permuteParameter(of node: Node, role: ParameterRole, change: String, permutation: [Int],
                                   viewShape: [Int]? = nil, newShape: [Int]? = nil, newRole: ParameterRole? = nil,
                                   firstElement: Int? = nil) throws {
        guard let original = sourceParameter(of: node, role: role) else {
            throw failure(node.name, "is missing its '\(role)' weights")
        }
        let request = ParameterPermutation(change: change, permutation: permutation, viewShape: viewShape,
                                           newShape: newShape, newRole: newRole, firstElement: firstElement)
        _ = try request.apply(to: original, in: &parameters, changes: &parameterChanges, pass: passName, node: node.name)
    }
}
