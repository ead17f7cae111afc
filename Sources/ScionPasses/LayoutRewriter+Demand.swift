import ScionIR

/// Ranks of the source values, and which form each value's consumers want: decided before the walk.
extension LayoutRewriter {
    // MARK: - Ranks

    /// Every value's rank from its inferred shape, or, with `LayoutDirection.infersRanksFromOps`, after
    /// an opaque layer, from the op producing it (`outputRank(of:)`).
    mutating func computeRanks(order: [Int]) {
        for input in source.inputs {
            if let rank = input.shape?.rank { ranks[input.name] = rank }
        }
        for index in order {
            let node = source.nodes[index]
            for output in node.outputs {
                if let rank = source.values[output]?.shape?.rank {
                    ranks[output] = rank
                } else if direction.infersRanksFromOps, let rank = outputRank(of: node) {
                    ranks[output] = rank
                }
            }
        }
    }

    /// The rank of a node's output when shape inference could not tell (unknown input lengths):
    /// spatial ops know theirs, ops that keep their input's shape keep its rank, others cannot say.
    func outputRank(of node: Node) -> Int? {
        switch node.op {
        case .globalPool(let a):
            return a.keepDimensions ? a.rank + 2 : 2
        case .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .zeroPadding, .cropping, .upSampling,
             .resizing:
            return node.op.spatialRank.map { $0 + 2 }
        case .activation, .dropout, .identity, .augmentation, .stochasticDepth, .batchNormalization,
             .groupNormalization, .elementwise, .concatenate, .rescaling, .normalization, .layerScale, .scaledResidual,
             .layerNormalization, .prelu:
            let inputRanks = node.inputs.map { ranks[$0] }
            guard inputRanks.allSatisfy({ $0 != nil }) else { return nil }
            return inputRanks.compactMap { $0 }.max()
        case .dense, .flatten, .reshape, .permute, .transpose, .embedding, .recurrent, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .opaque, .onnx:
            return nil
        case .masking:
            return node.inputs.first.flatMap { ranks[$0] }
        }
    }

    // MARK: - Demand

    /// Which form each value's consumers would like, walking backwards: a spatial reader votes
    /// converted; a reader needing the original order, and a graph output, vote original; a flexible
    /// reader passes on what its own output's readers want. The majority wins; a tie is no
    /// preference. Used to break ties when a flexible node could go either way, and to decide
    /// whether a graph input gets its Transpose up front.
    mutating func computeDemand(order: [Int]) {
        for index in order.reversed() {
            for output in source.nodes[index].outputs { demand[output] = tally(output) }
        }
        for input in source.inputs { demand[input.name] = tally(input.name) }
    }

    /// The majority wish of a value's readers (a graph output counts as one reader wanting the
    /// original order); nil on a tie.
    func tally(_ value: String) -> Form? {
        var votes = graphOutputs.contains(value) ? -1 : 0
        for reader in consumers[value] ?? [] {
            guard let readerRule = rules[reader] else { continue }
            switch wish(of: source.nodes[reader], rule: readerRule) {
            case .converted: votes += 1
            case .original: votes -= 1
            case nil: break
            }
        }
        return votes == 0 ? nil : votes > 0 ? .converted : .original
    }

    /// The form a node would like its inputs in.
    func wish(of node: Node, rule: Rule) -> Form? {
        switch rule {
        case .spatial, .convertedOnly: .converted
        case .original, .originalOnly: .original
        case .flexible:
            // A flexible op on rank-2 values has no layout to pass on.
            node.outputs.first.flatMap { output in (rank(of: output) ?? 3) <= 2 ? nil : demand[output] }
        case .reshape(let readsConverted, _): readsConverted ? nil : .original
        case .flatten(let plan): plan.channelsOnly || plan.dense != nil ? nil : .original
        case .layoutTranspose(let readsConverted): readsConverted ? .converted : .original
        }
    }

    /// The form a flexible node reads: the one needing fewer new Transposes; on a tie, the one its
    /// readers want; else `LayoutDirection.formOnTie`.
    func chooseForm(_ node: Node) -> Form {
        let layered = node.inputs.filter { (rank(of: $0) ?? 3) >= 3 }
        if layered.isEmpty { return .original }
        let missingConverted = layered.filter { available[$0]?.converted == nil }.count
        let missingOriginal = layered.filter { available[$0]?.original == nil }.count
        if missingConverted != missingOriginal { return missingConverted < missingOriginal ? .converted : .original }
        return node.outputs.first.flatMap { demand[$0] } ?? direction.formOnTie
    }
}
