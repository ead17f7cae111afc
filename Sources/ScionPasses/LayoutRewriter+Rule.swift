import ScionIR

/// The one per-op layout rule: which form each op needs its inputs in, in either direction, and
/// which ops the Keras side has no layer for. A new `Op` case makes the compiler ask for its rule
/// here (there is no `default:`).
extension LayoutRewriter {
    /// What a node needs from the layout of its inputs.
    enum Rule: Equatable {
        /// A spatial op written in the source layout (convolution, pooling, padding, cropping,
        /// upsampling): rewritten for the target layout, reads and writes the converted form (rank 2
        /// for a global pooling without `keepDimensions`, the same in both forms).
        case spatial
        /// Depends on the memory order of its input (Reshape, Permute, Dense on rank > 2, Embedding,
        /// opaque layers, a spatial op already in the target layout...): reads and writes the
        /// original order, attributes untouched.
        case original
        /// Elementwise or per-axis: runs on either form when every input of rank 3 or more has it,
        /// with its axis attributes rewritten in converted form; writes the form it read.
        case flexible
        /// Per-axis work the target can only express in converted form: a BatchNormalization over the
        /// channels going channels-first (ONNX normalizes axis 1), a per-channel Rescaling or a
        /// softmax over the channels going channels-last (Keras works on the last axis).
        case convertedOnly
        /// Work over the last axis of the original order (a log-softmax over it, going channels-last):
        /// reads and writes the original order, its axis written as -1.
        case originalOnly
        /// A Reshape. `readsConverted`: every non-batch axis but the channels has length 1, so both
        /// forms have the same memory order and the converted value can be reshaped as is.
        /// `writesConverted`: the result is such a value, which the Reshape can produce in converted
        /// form by permuting its target shape.
        case reshape(readsConverted: Bool, writesConverted: Bool)
        case flatten(FlattenPlan)
        /// A source Transpose between the two layouts (`LayoutDirection.followsLayoutTransposes`).
        /// `readsConverted == false`: it undoes the conversion, so its output's converted form is its
        /// input's original. `true`: it performs the conversion, so its output's original form is
        /// its input's converted one.
        case layoutTranspose(readsConverted: Bool)
    }

    /// How a Flatten of a converted value can avoid a Transpose.
    struct FlattenPlan: Equatable {
        /// Every non-batch axis but the channels has length 1: flattening the converted value gives
        /// the same features in the same order.
        var channelsOnly: Bool
        /// The Dense that reads the flattened features (through ops that keep each feature in
        /// place) and can permute its kernel rows instead, with the shape flattened.
        var dense: Int? = nil
        var features: FlattenedFeatures? = nil
    }

    func rule(for index: Int) throws -> Rule {
        let node = source.nodes[index]
        let inputRank = node.inputs.first.flatMap { rank(of: $0) }
        let keras = direction.writesKerasLayers
        /// Ops Keras has no layer for fail the channels-last direction, naming the node.
        func refuse(_ reason: String) -> PassError { failure(node.name, "\(node.op.typeName) \(reason)") }
        /// Keras's same-rank broadcasting or ONNX's per-op axis check (`canRunConverted`).
        func follows(_ axesFit: (Int) -> Bool = { _ in true }) -> Rule {
            (keras ? sameRanks(node) : canRunConverted(node, axesFit: axesFit)) ? .flexible : .original
        }
        switch node.op {
        // Spatial ops: converted when written in the source layout.
        case .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling, .resizing:
            return node.op.spatialLayout == direction.sourceLayout ? .spatial : .original

        // Ops that depend on memory order.
        case .dense:
            // Dense multiplies the last axis: on rank 2 that is the same in both forms; on NHWC
            // features (ConvNeXt) it must see the channels where the source had them.
            return inputRank.map { $0 <= 2 } == true ? .flexible : .original
        case .flatten(let a):
            if keras, a.axis != 1 { throw refuse("at axis \(a.axis) has no Keras layer (Keras flattens from axis 1)") }
            return .flatten(flattenPlan(for: node))
        case .reshape(let a):
            if keras, a.includesBatch {
                // Keras's Reshape layer keeps the batch; one that merges or moves it (torch's attention
                // folding heads into the batch, a flatten to [-1]) is written as keras.ops.reshape over
                // the whole tensor, in the order the graph was written for. ONNX's 0 ("copy this
                // length") has no spelling there: the reader resolves it where the length is known.
                if a.targetShape.contains(0), !a.allowZero {
                    throw refuse("to \(a.targetShape) copies an input length (0) known only at run time (the batch axis or another dynamic one); "
                        + "keras.ops.reshape cannot say that")
                }
                guard a.targetShape.filter({ $0 == -1 }).count <= 1 else {
                    throw refuse("to \(a.targetShape) leaves more than one length unknown; keras.ops.reshape infers one at most")
                }
                return .original
            }
            let input = node.inputs.first.flatMap { shape(of: $0) }
            let output = node.outputs.first.flatMap { shape(of: $0) }
            return .reshape(readsConverted: input.map(direction.hasOnlyChannels) ?? false,
                            writesConverted: output.map(direction.hasOnlyChannels) ?? false)
        case .transpose(let a):
            // Keras's Permute keeps the batch axis; one that moves it is written as keras.ops.transpose.
            if keras, a.permutation.first != 0 { return .original }
            guard direction.followsLayoutTransposes, let rank = inputRank, rank >= 3 else { return .original }
            if a.permutation == direction.toOriginal(rank: rank) { return .layoutTranspose(readsConverted: false) }
            if a.permutation == direction.toConverted(rank: rank) { return .layoutTranspose(readsConverted: true) }
            return .original
        case .permute, .embedding, .recurrent:
            return .original
        // Tests the last axis for the mask value: Keras's order.
        case .masking:
            return .original
        // Projects the last axis and attends over the others: the order the source wrote.
        case .multiHeadAttention, .einsumDense, .unitNormalization, .attention:
            return .original
        case .opaque(let a):
            // The reader's reason when it knows why it kept the node opaque (an ONNX LSTM's initial states).
            if keras { throw refuse("(\(a.domain.isEmpty ? "ai.onnx" : a.domain)) \(a.unreadReason.map { "has no Keras layer equivalent: it \($0)" } ?? "has no Keras layer equivalent")") }
            return .original

        // Elementwise and per-axis ops: follow their inputs, axes rewritten.
        case .activation(let activation):
            guard keras else { return follows { rank in activation.axis.map { fits($0, rank: rank) } ?? true } }
            // Keras has log-softmax and sparsemax only over the last axis: the form where the axis
            // is last is required.
            guard let rank = inputRank, rank >= 3, let axis = activation.axis,
                  activation != .softmax(axis: axis) else { return follows() }
            let resolved = axis < 0 ? axis + rank : axis
            if resolved == rank - 1 { return .originalOnly }
            if resolved == 1 { return .convertedOnly }
            throw failure(node.name, "\(activation.displayName) over axis \(axis) of a rank-\(rank) value has no Keras layer "
                + "(Keras computes it over the last axis only)")
        case .elementwise:
            // Division and power of two tensors have no layer: they are written as keras.ops calls.
            return follows()
        case .dropout, .identity, .augmentation:
            return follows()
        case .concatenate(let a):
            return follows { fits(a.axis, rank: $0) }
        case .batchNormalization(let a):
            if keras { return follows() }
            // ONNX BatchNormalization normalizes axis 1: channels-first, that is the channel axis.
            // A Keras one over another axis stays in the original order, where its axis means what
            // Keras meant (axis 1 there maps directly too).
            guard canRunConverted(node, axesFit: { a.axis == -1 || a.axis == $0 - 1 }) else { return .original }
            return (inputRank ?? 0) >= 3 ? .convertedOnly : .flexible
        case .groupNormalization(let a):
            if keras { return follows() }
            // ONNX's InstanceNormalization and GroupNormalization take channels at axis 1, as
            // BatchNormalization does; groups are runs along the channel axis in either form.
            guard canRunConverted(node, axesFit: { a.axis == -1 || a.axis == $0 - 1 }) else { return .original }
            return (inputRank ?? 0) >= 3 ? .convertedOnly : .flexible
        case .rescaling(let a):
            guard keras else { return follows { !Self.isPerChannel(a) || fits(a.axis, rank: $0) } }
            // Keras's per-channel Rescaling works on the last axis: over ONNX's channels it needs the
            // channels-last form, over any other axis the original order.
            guard (inputRank ?? 0) >= 3 else { return .flexible }
            return Self.isPerChannel(a) ? (a.axis == 1 ? .convertedOnly : .original) : .flexible
        case .prelu:
            // Alpha `[spatial..., C]` (or `[C, spatial...]`) is permuted in place: only when no other
            // node reads it.
            let alphaFits = { (rank: Int) in
                self.sourceParameter(of: node, role: .alpha).map { $0.shape.count == rank - 1 && self.parameterUses[$0.name] == 1 } == true
            }
            guard keras else { return follows(alphaFits) }
            guard let rank = inputRank, rank >= 3 else { return .flexible }
            return alphaFits(rank) ? .flexible : .original
        case .layerScale(let a):
            return keras ? .original : follows { fits(a.axis, rank: $0) }
        case .normalization(let a):
            // One kept axis: statistics are a vector along it, unchanged. Several: they would have
            // to be permuted as a block; keep the original order instead.
            return keras ? .original : follows { rank in a.axes.count <= 1 && a.axes.allSatisfy { fits($0, rank: rank) } }
        case .layerNormalization(let a):
            // ONNX LayerNormalization normalizes trailing axes. Channels-first, that holds only when
            // the channels are not normalized and the normalized axes stay at the end.
            return keras ? .original : follows { rank in
                let resolved = a.axes.map { $0 < 0 ? $0 + rank : $0 }
                guard resolved.allSatisfy({ (0..<rank).contains($0) }), !resolved.contains(rank - 1) else { return false }
                let moved = resolved.compactMap { direction.convertedPosition(of: $0, rank: rank) }.sorted()
                return moved == Array((rank - moved.count)..<rank)
            }
        case .stochasticDepth, .scaledResidual:
            return keras ? .original : follows()

        // Ops only ONNX files bring. Going channels-first they never appear in Keras graphs, and
        // when one does it keeps the order it was written for; going channels-last, those left
        // after `KerasPatternRewriter` have no Keras layer.
        case .onnx(.constant):
            guard keras else { return .original }
            // Gather's indices, Expand's shape and elementwise ops' numpy arrays are written into their keras.ops call.
            if let output = node.outputs.first, let readers = consumers[output], source.isWrittenIntoCalls(constant: output, readers: readers) {
                return .original
            }
            guard let output = node.outputs.first else {
                throw refuse("tensor is read by an op Keras cannot take a constant operand for")
            }
            // Name the node that reads it: that is the one Keras cannot express.
            let reader = consumers[output]?.first.map { source.nodes[$0] }
            throw failure(reader?.name ?? node.name, "\(reader?.op.typeName ?? "a graph output") reads the constant '\(output)'; "
                + "Keras layers take no constant operands (only scalar or per-channel arithmetic becomes a Rescaling)")
        case .onnx(.gemm):
            if keras { throw refuse("with a runtime weight, alpha/beta other than 1 or a transposed input has no Keras layer") }
            return .original
        // Ops the Keras writer spells as keras.ops calls (KerasOperationWriter): in the order the graph
        // was written for, attributes untouched.
        case .onnx(.matMul):
            if keras, !node.parameters.isEmpty { throw refuse("by a constant that is not a Dense kernel has no Keras layer") }
            return .original
        case .onnx(.unary), .onnx(.cast), .onnx(.slice), .onnx(.squeeze), .onnx(.unsqueeze), .onnx(.clip), .onnx(.comparison),
             .onnx(.select):
            return .original
        case .onnx(.reduce):
            return .original
        // keras.ops take and split, over the whole tensor in the order the graph was written for.
        case .onnx(.gather), .onnx(.split):
            return .original
        case .onnx(.resize), .onnx(.localResponseNormalization):
            if keras { throw refuse("has no Keras layer equivalent") }
            return .original
        case .onnx(.pad(let a)):
            guard keras else { return .original }
            throw refuse(a.mode == .constant && a.value == 0 ? "of the batch or channel axes has no Keras layer"
                : "in mode \(a.mode.rawValue) with value \(a.value) has no Keras layer (Keras pads with zeros only)")
        case .onnx(.coercedSoftmax):
            if keras { throw refuse("of opset < 13 over several axes has no Keras layer") }
            return .original
        // Channels at axis 1 with per-channel operands computed in the graph's own order.
        case .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization):
            if keras { throw refuse("with statistics or scale computed at run time has no Keras layer") }
            return .original
        // Shape arithmetic reads lengths in the order the graph was written for.
        case .onnx(.expand):
            // To a shape a constant holds: keras.ops.broadcast_to. A computed one is Shape arithmetic.
            if keras, node.inputs.count == 2, source.constantIntegers(node.inputs[1]) != nil { return .original }
            if keras { throw refuse("to a shape computed at run time has no Keras layer: Keras layers need their lengths known before run time") }
            return .original
        case .onnx(.shape), .onnx(.tile), .onnx(.computedReshape):
            if keras { throw refuse("has no Keras layer: Keras layers need their lengths known before run time") }
            return .original
        // Index arithmetic with lengths computed at run time: no Keras layer either.
        case .onnx(.range), .onnx(.constantOfShape), .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND):
            if keras { throw refuse("has no Keras layer: Keras layers need their lengths known before run time") }
            return .original
        // keras.ops calls (KerasOperationWriter), in the order the graph was written for.
        case .onnx(.mod(let a)):
            if keras, a.fmod { throw refuse("with fmod=1 (the dividend's sign) has no keras.ops equivalent (keras.ops.mod takes the divisor's)") }
            return .original
        case .onnx(.trilu(let a)):
            if keras, a.k == nil { throw refuse("with a diagonal offset computed at run time has no keras.ops equivalent") }
            return .original
        case .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme),
             .onnx(.cumulativeSum), .onnx(.depthSpace):
            return .original
        }
    }

    /// Whether source axis `axis` has a place in a converted value of `rank`.
    func fits(_ axis: Int, rank: Int) -> Bool { direction.convertedPosition(of: axis, rank: rank) != nil }

    /// Channels-first: whether a flexible op can run on converted inputs: every input's rank is
    /// known, inputs of rank 3 or more share one rank (a lower-rank operand would broadcast against
    /// different axes), and the op's axes have a converted equivalent an ONNX writer can map
    /// (`axesFit`, given the rank).
    func canRunConverted(_ node: Node, axesFit: (Int) -> Bool) -> Bool {
        let ranks = node.inputs.map { rank(of: $0) }
        guard ranks.allSatisfy({ $0 != nil }) else { return false }
        let known = ranks.compactMap { $0 }
        guard let rank = known.max() else { return false }
        if rank <= 2 { return true }
        guard known.allSatisfy({ $0 == rank }) else { return false }
        return axesFit(rank)
    }

    /// Channels-last: true when every input's rank is known and equal (broadcasting then survives
    /// a permutation).
    func sameRanks(_ node: Node) -> Bool {
        let ranks = node.inputs.map { rank(of: $0) }
        guard let first = ranks.first, let rank = first else { return false }
        return ranks.allSatisfy { $0 == rank }
    }

    static func isPerChannel(_ attributes: RescalingAttributes) -> Bool {
        attributes.scale.count > 1 || attributes.offset.count > 1
    }

    // MARK: - Flatten before Dense

    /// Flatten of a converted value: a plain flatten when only the channels are longer than 1, or one
    /// whose Dense reader permutes its kernel rows (the classic trap: Keras flattened NHWC, so Dense
    /// rows are numbered `(h, w, c)`; ONNX flattened NCHW, `(c, h, w)`).
    func flattenPlan(for node: Node) -> FlattenPlan {
        guard let input = node.inputs.first, let inputShape = shape(of: input), inputShape.rank >= 3 else {
            return FlattenPlan(channelsOnly: false)
        }
        if direction.hasOnlyChannels(inputShape) { return FlattenPlan(channelsOnly: true) }
        var plan = FlattenPlan(channelsOnly: false)
        let lengths = inputShape.dimensions.dropFirst().compactMap { $0 }
        guard lengths.count == inputShape.rank - 1, let (spatial, channels) = direction.splitSample(lengths),
              let (dense, firstRow) = featureKeepingReader(of: node) else { return plan }
        plan.dense = dense
        plan.features = FlattenedFeatures(spatial: spatial, channels: channels, firstRow: firstRow)
        return plan
    }

    /// The Dense that reads `node`'s output through ops that keep each feature in place (Dropout,
    /// Identity, StochasticDepth, activations: all permutation-equivariant on a rank-2 value) or,
    /// with `followsFlattenThroughConcatenate`, put it at a known place (a Concatenate of rank-2
    /// values along the features), each value read once and none a graph output, with the Dense row
    /// the flattened features start at. Nil otherwise, or when the Dense kernel is shared.
    func featureKeepingReader(of node: Node) -> (dense: Int, firstRow: Int)? {
        guard var value = node.outputs.first else { return nil }
        var firstRow = 0
        while true {
            guard !graphOutputs.contains(value), let readers = consumers[value], readers.count == 1,
                  let reader = readers.first else { return nil }
            let next = source.nodes[reader]
            guard let output = next.outputs.first, next.outputs.count == 1 else { return nil }
            if case .concatenate(let a) = next.op, direction.followsFlattenThroughConcatenate {
                // Features of the inputs before this one come first.
                guard rank(of: output) == 2, a.axis == -1 || a.axis == 1,
                      let position = next.inputs.firstIndex(of: value) else { return nil }
                let before = next.inputs[..<position].map { shape(of: $0)?.dimensions.last ?? nil }
                guard before.allSatisfy({ $0 != nil }) else { return nil }
                firstRow += before.compactMap { $0 }.reduce(0, +)
                value = output
                continue
            }
            guard next.inputs.count == 1 else { return nil }
            if case .dense = next.op {
                guard let kernel = sourceParameter(of: next, role: .kernel), parameterUses[kernel.name] == 1 else {
                    return nil
                }
                return (reader, firstRow)
            }
            guard Self.keepsFeatures(next.op) else { return nil }
            value = output
        }
    }

    /// Ops that keep every feature of a rank-2 value in place.
    static func keepsFeatures(_ op: Op) -> Bool {
        if case .dropout = op { return true }
        if case .identity = op { return true }
        if case .stochasticDepth = op { return true }
        if case .activation = op { return true }
        return false
    }
}
