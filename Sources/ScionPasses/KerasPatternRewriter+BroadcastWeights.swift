import ScionIR

/// Weights broadcast over the batch (torchvision ViT's class token and position embedding, DeiT's
/// distillation token, learned queries and register tokens), as Keras layers that hold them as
/// their own weights, trainable when the source's were.
///
/// Keras has no layer whose output is a weight: every layer maps inputs to outputs, and a functional
/// model's tensors all carry the batch. So the weight `W` (`[1, d1, ..., dk]`, or without the leading 1)
/// is made a Dense kernel applied to ones of the batch's length:
///
/// ```
///  before (torch's export)                         after (Keras layers)
///
///  x ── Shape[0:1] ─┐                              r ── r[:, 0:1, ..., 0:1]   Slice: (N, 1, ..., 1)
///  [1, D] ──────────┴ Concat ─┐                      ── 0·r + 1               Rescaling(scale 0, offset 1): ones
///  W (1, 1, D) ─────────────── Expand (or Tile) ─    ── Dense(D, no bias)     kernel W as (1, D): 1·w = w exactly
///                                                    ── Reshape (1, D)        only when the lengths differ
///  v ── Add ── (v + P, P a (1, S, D) weight)       v ── Add(v, the same made of P)
/// ```
///
/// The product of 1 and each weight is the weight exactly, and the kernel's gradient is the sum over
/// the batch of the output's: the gradient of the broadcast weight. The reference `r` is any value
/// with the right batch: a Concat partner of the expanded weight (the patch tokens, already in
/// Keras's order), else the tensor the Shape read (a constant target, from an export at a fixed
/// batch, needs a partner of that batch); for arithmetic, the other operand. Only the batch
/// is broadcast: a weight that also broadcasts along a sample axis is left alone (refused later).
/// The ones come from `0·r + 1`, so a sample holding inf or NaN in the reference's first element
/// gets NaN where the source would not; the rest of such a model is NaN anyway once tokens mix.
extension KerasPatternRewriter {
    /// One weight made by a Dense over ones of the batch, replacing `replaced` (an input of `reader`,
    /// or the output of a removed Expand/Tile).
    private struct BatchWeight {
        var weight: Parameter
        var weightValue: String
        /// Nodes between the weight and its broadcast that pass it on unchanged (removed with the broadcast).
        var passedThrough: [String] = []
        /// The lengths of one sample of the broadcast weight.
        var sample: [Int]
        var reference: String
        /// The node the new nodes go before (it reads the reference's producer's result, or comes after it).
        var anchor: String
        var output: String
    }

    /// Expand and Tile of a float weight to `[batch, ...]` and Add / Sub / Mul / Div of a value and a
    /// weight of one whole sample's lengths, rewritten as above. Runs after the sweeps, so scalar and
    /// per-channel constants are already Rescalings and Dense biases folded.
    mutating func foldBatchBroadcastWeights() throws {
        // Expand and Tile first: the lengths of what they feed (ViT's Concat) are known only after.
        try foldBatchBroadcastWeights(arithmetic: false)
        try foldBatchBroadcastWeights(arithmetic: true)
    }

    private mutating func foldBatchBroadcastWeights(arithmetic: Bool) throws {
        index()
        var taken = Set(graph.nodes.map(\.name))
        var before: [String: [Node]] = [:]
        var folded: [BatchWeight] = []
        // Shape vectors read by folded Expands: removed once nothing reads them (dynamo shares one).
        var shapeVectors: Set<String> = []
        for position in graph.nodes.indices {
            let node = graph.nodes[position]
            switch node.op {
            case .onnx(.expand), .onnx(.tile):
                guard !arithmetic, let plan = broadcastOverBatch(position) else { continue }
                removed.insert(node.name)
                removed.formUnion(plan.passedThrough)
                shapeVectors.insert(node.inputs[1])
                folded.append(plan)
            case .elementwise(let operation) where [.add, .subtract, .multiply, .divide].contains(operation):
                guard arithmetic, node.inputs.count == 2 else { continue }
                for weightPosition in [1, 0] {
                    guard var plan = sampleWeight(node.inputs[weightPosition], other: node.inputs[1 - weightPosition], anchor: node.name)
                    else { continue }
                    plan.output = "\(node.inputs[weightPosition])#over_batch_\(node.outputs.first ?? node.name)"
                    graph.nodes[position].inputs[weightPosition] = plan.output
                    folded.append(plan)
                    break
                }
            default:
                continue
            }
        }
        guard !folded.isEmpty else { return }
        for plan in folded {
            // A constant only this use read goes, and its Dense takes its name.
            if soleReader(of: plan.weightValue) != nil, let producer = producers[plan.weightValue] {
                removed.insert(graph.nodes[producer].name)
                taken.remove(graph.nodes[producer].name)
            }
            before[plan.anchor, default: []] += try weightNodes(plan, taken: &taken)
        }
        var nodes: [Node] = []
        for node in graph.nodes {
            nodes += before[node.name] ?? []
            if !removed.contains(node.name) { nodes.append(node) }
        }
        graph.nodes = nodes
        removed = []
        removeUnreadShapeVectors(shapeVectors)
        // The shape vectors' constant pieces, now unread (by name: no new node is named like one).
        removeUnreadConstants()
        graph.nodes.removeAll { removed.contains($0.name) }
        removed = []
        try graph.inferShapes()
    }

    /// Expand / Tile of a float weight whose target is `[Shape(x)[0], lengths...]`, broadcasting the
    /// weight over the batch only.
    private func broadcastOverBatch(_ position: Int) -> BatchWeight? {
        let node = graph.nodes[position]
        guard node.inputs.count == 2, node.outputs.count == 1, let output = node.outputs.first,
              let (weightValue, weight, passedThrough) = weightSource(node.inputs[0]), weight.dtype == .float32, !weight.shape.isEmpty
        else { return nil }
        // The target: `[Shape(x)[0], lengths...]` (a dynamic batch), or constant (an export at a fixed
        // batch, whose length a Concat partner must have).
        let source: String?, batch: Int?, lengths: [Int]
        if let (tensor, rest) = batchLeadingVector(node.inputs[1]) {
            (source, batch, lengths) = (tensor, nil, rest)
        } else if let (vectorShape, values) = graph.constantIntegers(node.inputs[1]), vectorShape.count == 1, let first = values.first {
            (source, batch, lengths) = (nil, first, Array(values.dropFirst()))
        } else {
            return nil
        }
        var sample: [Int] = []
        if case .onnx(.tile) = node.op {
            // Repeats: the batch's length, then 1 for every other axis.
            guard lengths.count + 1 == weight.shape.count, weight.shape[0] == 1, lengths.allSatisfy({ $0 == 1 }) else { return nil }
            sample = Array(weight.shape.dropFirst())
        } else {
            // ONNX's Expand broadcasts numpy's way, a 1 in the target keeping the input's length. The
            // target's first entry must be the output's first axis, so it is at least the weight's rank.
            let rank = lengths.count + 1
            guard weight.shape.count <= rank else { return nil }
            let aligned = Array(repeating: 1, count: rank - weight.shape.count) + weight.shape
            guard aligned[0] == 1 else { return nil }
            for (have, want) in zip(aligned.dropFirst(), lengths) {
                guard want == 1 || want == have else { return nil }
                sample.append(have)
            }
        }
        // A Concat partner along a sample axis has the same batch and is usually a sequence already
        // in Keras's order; the Shape's own tensor may be an image still channels-first.
        var reference = source
        var anchor = node.name
        if let reader = soleReader(of: output), case .concatenate(let a) = graph.nodes[reader].op {
            let concat = graph.nodes[reader]
            let rank = shape(output)?.rank ?? sample.count + 1
            let axis = a.axis < 0 ? a.axis + rank : a.axis
            if axis > 0, let partner = concat.inputs.first(where: { $0 != output && (shape($0)?.rank ?? 0) >= 2 && constant($0) == nil
                && !isBatchBroadcastCandidate($0) && (batch == nil || shape($0).flatMap { $0[0] } == batch) }) {
                reference = partner
                anchor = concat.name
            }
        }
        guard let reference, (shape(reference)?.rank ?? 0) >= 2, sample.allSatisfy({ $0 > 0 }) else { return nil }
        return BatchWeight(weight: weight, weightValue: weightValue, passedThrough: passedThrough, sample: sample, reference: reference,
                           anchor: anchor, output: output)
    }

    /// The weight `value` holds: a constant's, or one an Expand to constant lengths passes on
    /// unchanged (TorchScript exports torch's `repeat` as an Expand to `[1, 1, 1]`, then the Tile),
    /// with the names of such Expands, each read only by the next node.
    private func weightSource(_ value: String) -> (value: String, weight: Parameter, passedThrough: [String])? {
        if let (_, weight) = constant(value) { return (value, weight, []) }
        guard let producer = producers[value], soleReader(of: value) != nil, case .onnx(.expand) = graph.nodes[producer].op,
              graph.nodes[producer].inputs.count == 2, let (_, weight) = constant(graph.nodes[producer].inputs[0]),
              let (_, lengths) = graph.constantIntegers(graph.nodes[producer].inputs[1]), lengths.count <= weight.shape.count,
              lengths.allSatisfy({ $0 == 1 }) else { return nil }
        return (graph.nodes[producer].inputs[0], weight, [graph.nodes[producer].name])
    }

    /// Whether `value` is itself the output of an Expand or Tile this pass may replace (DeiT's class
    /// and distillation tokens are Concat partners of each other): it is no reference.
    private func isBatchBroadcastCandidate(_ value: String) -> Bool {
        guard let producer = producers[value] else { return false }
        switch graph.nodes[producer].op {
        case .onnx(.expand), .onnx(.tile): return true
        default: return false
        }
    }

    /// The weight operand of elementwise arithmetic when it has one whole sample's lengths of `other`
    /// (`[1, S, D]` or `[S, D]` against `(N, S, D)`), so the result has `other`'s shape.
    private func sampleWeight(_ value: String, other: String, anchor: String) -> BatchWeight? {
        guard let (_, weight) = constant(value), weight.dtype == .float32, constant(other) == nil,
              let otherShape = shape(other), otherShape.rank >= 2, weight.shape.count <= otherShape.rank else { return nil }
        let aligned = Array(repeating: 1, count: otherShape.rank - weight.shape.count) + weight.shape
        guard aligned[0] == 1 else { return nil }
        let sample = Array(aligned.dropFirst())
        for (axis, length) in sample.enumerated() {
            guard let have = otherShape[axis + 1], have == length else { return nil }
        }
        // A weight of one element or one per channel is a Rescaling (foldConstantArithmetic); only
        // what it left, a weight with two or more axes longer than 1, comes here.
        guard sample.filter({ $0 != 1 }).count >= 2, sample.allSatisfy({ $0 > 0 }) else { return nil }
        return BatchWeight(weight: weight, weightValue: value, sample: sample, reference: other, anchor: anchor, output: "")
    }

    /// `[Shape(x)[0], c1, ..., ck]` as the reader leaves a symbolic shape vector: a Shape of axis 0,
    /// alone or first in a Concat whose other inputs are integer constants. `x` and the constants.
    private func batchLeadingVector(_ value: String) -> (source: String, lengths: [Int])? {
        guard let producer = producers[value] else { return nil }
        let node = graph.nodes[producer]
        if let source = batchLength(node) { return (source, []) }
        guard case .concatenate(let a) = node.op, a.axis == 0, let first = node.inputs.first,
              let firstProducer = producers[first], let source = batchLength(graph.nodes[firstProducer]) else { return nil }
        var lengths: [Int] = []
        for piece in node.inputs.dropFirst() {
            guard let (shape, values) = graph.constantIntegers(piece), shape.count == 1 else { return nil }
            lengths += values
        }
        return (source, lengths)
    }

    /// The tensor whose batch length `node` reads: a Shape of axis 0 alone.
    private func batchLength(_ node: Node) -> String? {
        guard case .onnx(.shape(let a)) = node.op, node.inputs.count == 1, let input = node.inputs.first,
              let rank = shape(input)?.rank, a.range(rank: rank) == 0..<1 else { return nil }
        return input
    }

    /// Drops the nodes computing `vectors` (a Concat and the Shape in it, or a Shape alone) that no
    /// node or graph output reads any more.
    private mutating func removeUnreadShapeVectors(_ vectors: Set<String>) {
        var candidates = vectors
        for node in graph.nodes where node.outputs.contains(where: vectors.contains) {
            if case .concatenate = node.op { candidates.formUnion(node.inputs) }
        }
        // Twice: a Concat goes first, then the Shape only it read.
        for _ in 0..<2 {
            var read = graphOutputs
            for node in graph.nodes { read.formUnion(node.inputs) }
            graph.nodes.removeAll { node in
                guard node.outputs.count == 1, let output = node.outputs.first, candidates.contains(output), !read.contains(output) else { return false }
                switch node.op {
                case .concatenate, .onnx(.shape): return true
                default: return false
                }
            }
        }
    }

    /// The nodes computing `plan.output`: the slice of the reference, the ones, the Dense holding the
    /// weight (named after the tensor, as the source file names it), and a Reshape when the Dense's lengths are not the sample's.
    private mutating func weightNodes(_ plan: BatchWeight, taken: inout Set<String>) throws -> [Node] {
        func claim(_ base: String) -> String {
            var name = base
            var counter = 1
            while taken.contains(name) { name = "\(base)_\(counter)"; counter += 1 }
            taken.insert(name)
            return name
        }
        guard let rank = shape(plan.reference)?.rank, let units = Shape.product(plan.sample.map { Optional($0) }), units > 0 else {
            throw failure(plan.weight.name, "broadcast over the batch: the weight or its reference has no known lengths")
        }
        let axes = Array(1..<rank)
        let base = plan.output
        let slice = Node(name: claim("\(plan.weightValue)#batch"), op: .onnx(.slice(SliceAttributes(
            starts: axes.map { _ in 0 }, ends: axes.map { _ in 1 }, axes: axes, steps: axes.map { _ in 1 }))),
                         inputs: [plan.reference], outputs: ["\(base)#batch"])
        let ones = Node(name: claim("\(plan.weightValue)#ones"), op: .rescaling(RescalingAttributes(scale: [0], offset: [1])),
                        inputs: slice.outputs, outputs: ["\(base)#ones"])
        let denseLengths = Array(repeating: 1, count: rank - 2) + [units]
        let reshaped = denseLengths != plan.sample
        let denseName = claim(plan.weightValue)
        let kernel = adopt(plan.weight, of: plan.weightValue, role: .kernel, shape: [1, units], layer: denseName)
        let dense = Node(name: denseName, op: .dense(DenseAttributes(units: units, useBias: false)), inputs: ones.outputs,
                         outputs: [reshaped ? "\(base)#flat" : base], parameters: [kernel], trainable: plan.weight.trainable)
        guard reshaped else { return [slice, ones, dense] }
        let reshape = Node(name: claim("\(plan.weightValue)#lengths"), op: .reshape(ReshapeAttributes(targetShape: plan.sample)),
                           inputs: dense.outputs, outputs: [base])
        return [slice, ones, dense, reshape]
    }
}
