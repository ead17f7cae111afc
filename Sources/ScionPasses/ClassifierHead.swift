import ScionIR

/// Where a model's trailing classifier starts: what `cut --drop-top` removes, the part
/// keras.applications leaves out with `include_top=False`.
///
/// The head is the chain of layers, ending at the output, that work on *pooled or flat* features:
/// it starts at a global pooling, Flatten or flattening Reshape of a feature map (the entry), and
/// goes on with Dense, Dropout, activations, Softmax, Reshape, normalisation and, on a pooled map, 1x1
/// convolutions and elementwise arithmetic. The cut is after the last layer before it, the last one
/// that produces features (a convolution block's activation, an LSTM, an Embedding...).
///
/// ```
///  MobileNet v1                            ResNet50V2                    Embedding → LSTM → Dense
///  conv_pw_13_relu  (N,7,7,1024)  ◀ cut   post_bn                       embedding
///  global_average_pooling2d keepdims      post_relu (N,7,7,2048) ◀ cut  lstm (N,64)       ◀ cut
///    (N,1,1,1024)  entry                  avg_pool  entry               dense (N,10)
///  dropout, conv_preds 1x1 (pooled map)   predictions
///  reshape_2, predictions
/// ```
///
/// Walking back from the output, the values still needed form a frontier; the cut is where it
/// narrows to a single value whose producer is not a head layer. The walk refuses, naming the
/// layers, when the head reads several feature layers (branches), reaches the model's input (an
/// MLP: which Dense is the classifier?), or finds no head at all.
struct ClassifierHead {
    let graph: Graph
    let pass: String
    private let producers: [String: Int]
    private var consumers: [String: [Int]] = [:]
    /// Values computed only from pooled or flattened features (a keepdims pooling's `(N,1,1,C)` and
    /// what the head computes from it), whatever their rank.
    private var pooled: Set<String> = []

    init(graph: Graph, pass: String) {
        self.graph = graph
        self.pass = pass
        self.producers = graph.producers
        for (index, node) in graph.nodes.enumerated() {
            for input in node.inputs { consumers[input, default: []].append(index) }
        }
        for node in graph.nodes where isEntry(node) || isHeadLayer(node) {
            pooled.formUnion(node.outputs)
        }
    }

    /// The index of the node the classifier starts after.
    func cutPoint() throws -> Int {
        guard graph.outputs.count == 1, let output = graph.outputs.first else {
            throw PassError(pass: pass, subject: graph.name,
                            "has \(graph.outputs.count) outputs; --drop-top needs one (cut with --after LAYER instead)")
        }
        var frontier: Set<String> = [output]
        var head: [Int] = []
        // Expand the head backwards, latest layer first, until every value still needed comes from
        // a layer that is not part of a head (or from the model's input).
        while let latest = frontier.compactMap({ value in producers[value].map { (value: value, producer: $0) } })
            .filter({ isPartOfHead(graph.nodes[$0.producer]) }).max(by: { $0.producer < $1.producer }) {
            frontier.remove(latest.value)
            frontier.formUnion(layeredInputs(of: graph.nodes[latest.producer]))
            head.append(latest.producer)
        }
        return try decide(frontier: frontier, head: head)
    }

    private func decide(frontier: Set<String>, head: [Int]) throws -> Int {
        let headNames = head.reversed().map { graph.nodes[$0].name }
        let listed = headNames.prefix(8).joined(separator: ", ") + (headNames.count > 8 ? "..." : "")
        if frontier.isEmpty {
            throw PassError(pass: pass, subject: graph.name, "computes its output from constants alone; nothing to keep")
        }
        guard frontier.count == 1, let value = frontier.first else {
            let sources = frontier.sorted().map { value in producers[value].map { graph.nodes[$0].name } ?? value }
            throw PassError(pass: pass, subject: graph.name,
                            "cannot tell where the classifier starts: its layers (\(listed)) read several feature layers "
                                + "(\(sources.joined(separator: ", "))); cut with --after LAYER")
        }
        guard let producer = producers[value] else {
            throw PassError(pass: pass, subject: graph.name,
                            "cannot tell where the classifier starts: every layer from the input to the output (\(listed)) "
                                + "works on flat features, none of them produces features a classifier reads; cut with --after LAYER")
        }
        guard !head.isEmpty else {
            let node = graph.nodes[producer]
            let shape = graph.values[value]?.shape.map { " with output \($0)" } ?? ""
            throw PassError(pass: pass, subject: node.name,
                            "the output layer (\(node.op.typeName)\(shape)) is not a classifier layer (Dense, global pooling, "
                                + "Flatten...): nothing to drop; cut with --after LAYER")
        }
        try requireBatchFirst(value, producer: producer)
        return producer
    }

    /// The cut's output becomes the input of a new head, which pools and projects per sample: in a
    /// graph read from ONNX its batch must be axis 0 (a time-major value cannot be the cut).
    private func requireBatchFirst(_ value: String, producer: Int) throws {
        guard graph.layout == .channelsFirst, let shape = graph.values[value]?.shape, shape.rank >= 3,
              let roles = AxisRoles.of(value, in: graph), roles.batch != 0 else { return }
        throw PassError(pass: pass, subject: graph.nodes[producer].name,
                        "the classifier's input \(shape) is time-major (its batch is axis \(roles.batch), not 0), so no head can "
                            + "read it; cut with --after LAYER at a layer whose output has the batch first")
    }

    // MARK: - Which layers belong to a head

    private func isPartOfHead(_ node: Node) -> Bool {
        isEntry(node) || isHeadLayer(node) || isConstant(node) || isReorderBeforeEntry(node)
    }

    /// tf2onnx flattens an NHWC Keras feature map as a Transpose then a Reshape: the Transpose
    /// belongs to the flattening when entries alone read it. One that moves the batch axis does not:
    /// torch's `(steps, N, F)` → `(N, steps, F)` after a recurrent layer makes the features a head can
    /// read, and cutting before it would leave a time-major output.
    private func isReorderBeforeEntry(_ node: Node) -> Bool {
        guard isAxisReorder(node.op), !movesBatchAxis(node.op), let output = node.outputs.first,
              let readers = consumers[output], !readers.isEmpty, !graph.outputs.contains(output) else { return false }
        return readers.allSatisfy { isEntry(graph.nodes[$0]) }
    }

    /// A Transpose whose output's first axis is not its input's (Keras's Permute never moves it).
    private func movesBatchAxis(_ op: Op) -> Bool {
        if case .transpose(let a) = op { return a.permutation.first != 0 }
        return false
    }

    /// Ops that only reorder axes.
    private func isAxisReorder(_ op: Op) -> Bool {
        switch op {
        case .transpose, .permute:
            return true
        case .dense, .dropout, .activation, .prelu, .reshape, .flatten, .identity, .batchNormalization,
             .layerNormalization, .multiHeadAttention, .einsumDense, .unitNormalization, .attention,
             .groupNormalization, .normalization, .conv, .elementwise, .concatenate, .rescaling, .resizing,
             .stochasticDepth, .globalPool, .depthwiseConv, .separableConv, .convTranspose, .pool, .zeroPadding,
             .cropping, .upSampling, .embedding, .masking, .recurrent, .scaledResidual, .layerScale, .augmentation, .opaque, .onnx:
            return false
        }
    }

    /// Inputs that come from layers or the model's inputs (not constants).
    private func layeredInputs(of node: Node) -> [String] {
        node.inputs.filter { value in producers[value].map { !isConstant(graph.nodes[$0]) } ?? true }
    }

    private func isConstant(_ node: Node) -> Bool {
        if case .onnx(.constant) = node.op { return true }
        return false
    }

    /// Flat (rank ≤ 2) or pooled. An unknown shape (after a layer Scion keeps opaque) counts as flat:
    /// the walk then stops at that layer, which produced it.
    private func isVectorLike(_ value: String) -> Bool {
        if pooled.contains(value) { return true }
        guard let rank = graph.values[value]?.shape?.rank else { return true }
        return rank <= 2
    }

    /// Where a head starts: a global pooling, Flatten, flattening Reshape or a reduction over the
    /// spatial axes, of a feature map (not of an already pooled value).
    private func isEntry(_ node: Node) -> Bool {
        guard let input = node.inputs.first, !isVectorLike(input) else { return false }
        switch node.op {
        case .globalPool, .flatten:
            return true
        case .reshape, .onnx(.squeeze), .onnx(.computedReshape):
            return node.outputs.first.flatMap { graph.values[$0]?.shape?.rank }.map { $0 <= 2 } ?? false
        case .onnx(.reduce(let a)):
            guard a.kind == .mean || a.kind == .maximum, let rank = graph.values[input]?.shape?.rank, let axes = a.axes else { return false }
            let resolved = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
            return resolved.count == rank - 2 && !resolved.contains(0) && resolved.isSubset(of: Set(1..<rank))
        // Ops that neither pool nor flatten a feature map.
        case .dense, .onnx(.gemm), .onnx(.matMul), .dropout, .activation, .prelu, .onnx(.coercedSoftmax),
             .onnx(.unsqueeze), .identity, .batchNormalization, .layerNormalization, .multiHeadAttention,
             .einsumDense, .unitNormalization, .attention,
             .groupNormalization, .normalization, .conv, .elementwise, .concatenate, .rescaling, .resizing, .onnx(.clip),
             .onnx(.unary), .onnx(.cast),
             .stochasticDepth, .onnx(.constant), .depthwiseConv, .separableConv, .convTranspose, .pool, .permute,
             .transpose, .zeroPadding, .cropping, .upSampling, .embedding, .masking, .recurrent, .scaledResidual, .layerScale,
             .onnx(.comparison), .onnx(.select), .onnx(.gather), .onnx(.slice), .onnx(.split), .onnx(.pad),
             .onnx(.resize), .onnx(.localResponseNormalization), .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization), .augmentation, .opaque:
            return false
        }
    }

    /// A layer a classifier is made of, reading only pooled or flat values.
    private func isHeadLayer(_ node: Node) -> Bool {
        guard isClassifierOp(node.op), node.outputs.count == 1 else { return false }
        if isPerStepClassifier(node) { return true }
        return layeredInputs(of: node).allSatisfy(isVectorLike)
    }

    /// Sequence tagging's classifier: Keras's TimeDistributed Dense (with the Dropout and activations
    /// before it, also TimeDistributed) classifies every step of a sequence, so it is a head whatever
    /// the rank it reads. The Keras reader marks the layers it expanded from the wrapper.
    private func isPerStepClassifier(_ node: Node) -> Bool {
        guard graph.info.nodeTypes[node.name] == "TimeDistributed" else { return false }
        if case .dense = node.op { return true }
        if case .dropout = node.op { return true }
        if case .activation = node.op { return true }
        return false
    }

    /// Ops a classifier uses. Convolutions count only on pooled maps (MobileNet's 1x1 `conv_preds`),
    /// which `isHeadLayer` checks; feature layers (Embedding, pooling windows, opaque layers such as
    /// LSTM) never do.
    private func isClassifierOp(_ op: Op) -> Bool {
        switch op {
        case .dense, .onnx(.gemm), .onnx(.matMul), .dropout, .activation, .prelu, .onnx(.coercedSoftmax), .reshape,
             .flatten, .onnx(.squeeze), .onnx(.unsqueeze), .identity, .batchNormalization, .layerNormalization,
             .groupNormalization, .normalization, .conv, .elementwise, .concatenate, .rescaling, .onnx(.clip),
             .onnx(.unary), .onnx(.cast), .stochasticDepth, .globalPool, .onnx(.reduce), .onnx(.constant),
             .onnx(.computedReshape):
            return true
        case .resizing:
            return false
        case .depthwiseConv, .separableConv, .convTranspose, .pool, .permute, .zeroPadding, .cropping, .upSampling,
             .embedding, .masking, .recurrent, .multiHeadAttention, .einsumDense, .unitNormalization, .attention, .scaledResidual,
             .layerScale, .transpose, .onnx(.comparison), .onnx(.select), .onnx(.gather),
             .onnx(.slice), .onnx(.split), .onnx(.pad), .onnx(.resize), .onnx(.localResponseNormalization),
             .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedBatchNormalization), .onnx(.computedInstanceNormalization), .augmentation, .opaque:
            return false
        }
    }
}
