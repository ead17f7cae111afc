import ScionIR

/// Which form each node needs, and which nodes Keras has no layer for.
extension ChannelsLastRewriter {
    func rule(for index: Int) throws -> Rule {
        let node = source.nodes[index]
        if case .constant = node.op, let output = node.outputs.first {
            // Name the node that reads it: that is the one Keras cannot express.
            let reader = consumers[output]?.first.map { source.nodes[$0] }
            throw failure(reader?.name ?? node.name, "\(reader?.op.typeName ?? "a graph output") reads the constant '\(output)'; "
                + "Keras layers take no constant operands (only scalar or per-channel arithmetic becomes a Rescaling)")
        }
        if let reason = Self.unsupported(node, shapeOf: shape(of:)) {
            throw failure(node.name, "\(node.op.typeName) \(reason)")
        }
        if let layout = ChannelsFirstRewriter.spatialLayout(of: node.op) {
            return layout == .channelsFirst ? .spatial : .original
        }
        let inputRank = node.inputs.first.flatMap { rank(of: $0) }
        switch node.op {
        case .dense:
            return inputRank.map { $0 <= 2 } == true ? .flexible : .original
        case .flatten:
            return flattenRule(node)
        case .reshape:
            let readsEither = node.inputs.first.flatMap { shape(of: $0) }.map(ChannelsFirstRewriter.hasOnlyChannelsFirst) ?? false
            return .reshape(readsEither: readsEither)
        case .transpose(let a):
            guard let rank = inputRank, rank >= 3 else { return .original }
            if a.permutation == ChannelsFirstAxes.toChannelsFirst(rank: rank) { return .layoutTranspose(toChannelsFirst: true) }
            if a.permutation == ChannelsFirstAxes.toChannelsLast(rank: rank) { return .layoutTranspose(toChannelsFirst: false) }
            return .original
        case .rescaling(let a):
            guard (inputRank ?? 0) >= 3 else { return .flexible }
            return ChannelsFirstRewriter.isPerChannel(a) ? (a.axis == 1 ? .channelsLastOnly : .original) : .flexible
        case .prelu:
            guard let rank = inputRank, rank >= 3 else { return .flexible }
            let alpha = source.parameter(of: node, role: .alpha)
            return alpha.map { $0.shape.count == rank - 1 && parameterUses[$0.name] == 1 } == true ? .flexible : .original
        case .activation(let activation):
            // Keras has log-softmax and sparsemax only over the last axis: the form where the axis
            // is last is required.
            guard let rank = inputRank, rank >= 3, let axis = activation.axis,
                  activation != .softmax(axis: axis) else { return sameRanks(node) ? .flexible : .original }
            let resolved = axis < 0 ? axis + rank : axis
            if resolved == rank - 1 { return .originalOnly }
            if resolved == 1 { return .channelsLastOnly }
            throw failure(node.name, "\(activation.displayName) over axis \(axis) of a rank-\(rank) value has no Keras layer "
                + "(Keras computes it over the last axis only)")
        case .dropout, .identity, .batchNormalization, .groupNormalization, .concatenate:
            return sameRanks(node) ? .flexible : .original
        case .elementwise:
            return sameRanks(node) ? .flexible : .original
        default:
            return .original
        }
    }

    /// True when every input's rank is known and equal (broadcasting then survives a permutation).
    func sameRanks(_ node: Node) -> Bool {
        let ranks = node.inputs.map { rank(of: $0) }
        guard let first = ranks.first, let rank = first else { return false }
        return ranks.allSatisfy { $0 == rank }
    }

    /// A Flatten may read channels-last data when only the channels are longer than 1, or when the
    /// Dense reading its result (through ops that keep each feature in place) can permute its rows.
    func flattenRule(_ node: Node) -> Rule {
        guard let input = node.inputs.first, let inputShape = shape(of: input), inputShape.rank >= 3 else {
            return .flatten(channelsLast: false, dense: nil)
        }
        if ChannelsFirstRewriter.hasOnlyChannelsFirst(inputShape) { return .flatten(channelsLast: true, dense: nil) }
        guard inputShape.dimensions.dropFirst().allSatisfy({ $0 != nil }), var value = node.outputs.first else {
            return .flatten(channelsLast: false, dense: nil)
        }
        while !graphOutputs.contains(value), let readers = consumers[value], readers.count == 1 {
            let reader = source.nodes[readers[0]]
            guard reader.outputs.count == 1, reader.inputs.count == 1 else { break }
            switch reader.op {
            case .dense:
                let kernel = source.parameter(of: reader, role: .kernel)
                guard let kernel, parameterUses[kernel.name] == 1 else { break }
                return .flatten(channelsLast: true, dense: readers[0])
            case .dropout, .identity, .activation:
                value = reader.outputs[0]
                continue
            default:
                break
            }
            break
        }
        return .flatten(channelsLast: false, dense: nil)
    }

    /// Why Keras has no layer for a node, or nil. Checked for every node before anything is written,
    /// so the refusal names the first such node and the file is left alone.
    static func unsupported(_ node: Node, shapeOf: (String) -> Shape?) -> String? {
        switch node.op {
        case .constant:
            return "tensor is read by an op Keras cannot take a constant operand for"
        case .gemm:
            return "with a runtime weight, alpha/beta other than 1 or a transposed input has no Keras layer"
        case .matMul:
            return "of two runtime tensors has no Keras layer"
        case .unary, .comparison, .select, .gather, .cast, .slice, .split, .resize, .localResponseNormalization:
            return "has no Keras layer equivalent"
        case .reduce:
            return "other than a mean or max over every spatial axis has no Keras layer"
        case .squeeze, .unsqueeze:
            return "of the batch axis, or of a value of unknown shape, has no Keras layer"
        case .pad(let a):
            return a.mode == .constant && a.value == 0 ? "of the batch or channel axes has no Keras layer"
                : "in mode \(a.mode.rawValue) with value \(a.value) has no Keras layer (Keras pads with zeros only)"
        case .clip(let a):
            return "to [\(a.minimum.map { "\($0)" } ?? "-inf"), \(a.maximum.map { "\($0)" } ?? "inf")] has no Keras layer (only Clip(0, max) is a ReLU)"
        case .coercedSoftmax:
            return "of opset < 13 over several axes has no Keras layer"
        case .opaque(let a):
            return "(\(a.domain.isEmpty ? "ai.onnx" : a.domain)) has no Keras layer equivalent"
        case .elementwise(let operation) where operation == .divide || operation == .power:
            return "of two runtime tensors has no Keras layer"
        case .reshape(let a) where a.includesBatch:
            return "to \(a.targetShape) changes the batch axis or has unknown lengths; Keras reshapes keep the batch"
        case .flatten(let a) where a.axis != 1:
            return "at axis \(a.axis) has no Keras layer (Keras flattens from axis 1)"
        case .transpose(let a) where a.permutation.first != 0:
            return "\(a.permutation) moves the batch axis; Keras's Permute cannot"
        default:
            return nil
        }
    }
}

extension ChannelsFirstRewriter {
    /// True for channels-first `[N, C, 1, ..., 1]` of rank 3 or more: channels-last it is
    /// `[N, 1, ..., 1, C]`, the same elements in the same memory order.
    static func hasOnlyChannelsFirst(_ shape: Shape) -> Bool {
        shape.rank >= 3 && shape.dimensions.dropFirst(2).allSatisfy { $0 == 1 }
    }
}
