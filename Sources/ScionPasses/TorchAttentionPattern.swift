import ScionIR

/// torch's `nn.MultiheadAttention` (self-attention, no mask) as exported to ONNX, recognised
/// whatever spelling the exporter chose, and replaced by one MultiHeadAttention:
///
/// ```
///  x [B, L, E] ─(Transpose to [L, B, E])─ Dense in_proj [E, 3E] (or three Dense)
///     ─ Reshape / Unsqueeze / Transpose / Squeeze / Gather / Slice / Split (constant or Shape-computed)
///     ─▶ q, k, v [B·H, L, hd] or [B, H, L, hd]        q and kᵀ maybe Mul'd by constants (the scale)
///  MatMul(q, kᵀ) ─ Softmax(-1) ─ MatMul(·, v) ─ Transpose / Reshape ─ Dense out_proj ─ Reshape / Transpose ─▶ y [B, L, E]
///    →  MultiHeadAttention(heads H, key_dim hd)(x, x), in_proj re-laid out to [E, H, hd] kernels
/// ```
///
/// The skeleton (the two MatMuls around the Softmax, the projections) is found structurally; the
/// layout ops in between are then evaluated on labelled tensors of concrete lengths (the batch,
/// when unknown, taken as 3) by `AttentionProbeEvaluator`: the rewrite happens only when every
/// element of q, k and v is proven to be the projection column `offset + h·hd + d` of the same
/// batch row and position, the heads' context reaches out_proj as `h·hd + d`, and the output is
/// out_proj's rows back in x's order. A block that differs in any way (a mask Add, a relative
/// position bias, a layout that mixes the batch) is left as it is.
extension KerasPatternRewriter {
    /// A chain from a projection's output to a MatMul operand: the layout nodes and the constant
    /// factors (Mul / Div) met on the way.
    struct AttentionOperand {
        var projection: Int
        var nodes: [Int] = []
        /// Positions of Mul/Div nodes, with the operand holding their factor.
        var factors: [(node: Int, factor: String, divides: Bool)] = []
    }

    static let probeBatch = 3

    func isLayoutOp(_ op: Op) -> Bool {
        switch op {
        case .reshape(let a): a.includesBatch
        case .onnx(.computedReshape), .transpose, .onnx(.squeeze), .onnx(.unsqueeze), .onnx(.gather), .onnx(.slice),
             .onnx(.split), .flatten, .identity: true
        default: false
        }
    }

    /// A Dense with a rank-2 kernel and no activation: a torch Linear.
    func linearKernel(_ position: Int) -> Parameter? {
        let node = graph.nodes[position]
        guard case .dense(let a) = node.op, a.activation == .linear, node.inputs.count == 1,
              let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 2, kernel.dtype == .float32 else { return nil }
        return kernel
    }

    /// Whether `value` may be a one-element factor: its shape says so, or is unknown (Shape-computed
    /// scales; the probe evaluation checks the element count later).
    func mayBeScalar(_ value: String) -> Bool {
        guard let shape = shape(value), let count = shape.elementCount else { return true }
        return count == 1
    }

    /// Follows `start` back through layout ops and Mul/Div by factors to a torch Linear.
    func traceOperand(_ start: String, depth: Int = 0) -> AttentionOperand? {
        var value = start
        var nodes: [Int] = []
        for _ in 0..<64 {
            guard let position = producers[value], !removed.contains(graph.nodes[position].name) else { return nil }
            let node = graph.nodes[position]
            if linearKernel(position) != nil {
                return AttentionOperand(projection: position, nodes: nodes, factors: [])
            }
            if isLayoutOp(node.op), let input = node.inputs.first {
                nodes.append(position)
                value = input
                continue
            }
            guard depth < 4, case .elementwise(let operation) = node.op, operation == .multiply || operation == .divide,
                  node.inputs.count == 2 else { return nil }
            // The data operand is the one leading to a projection; the other is the factor.
            for (data, factor) in operation == .divide ? [(0, 1)] : [(0, 1), (1, 0)] where mayBeScalar(node.inputs[factor]) {
                guard var rest = traceOperand(node.inputs[data], depth: depth + 1) else { continue }
                rest.nodes = nodes + rest.nodes
                rest.factors.insert((position, node.inputs[factor], operation == .divide), at: 0)
                return rest
            }
            return nil
        }
        return nil
    }

    /// The one reader of `value` that is not a Shape op (Shape readers die with the block), and
    /// none when `value` is a graph output.
    func soleDataReader(of value: String) -> Int? {
        guard !graphOutputs.contains(value) else { return nil }
        let readers = (consumers[value] ?? []).filter { position in
            if case .onnx(.shape) = graph.nodes[position].op { return false }
            return true
        }
        return readers.count == 1 ? readers[0] : nil
    }

    mutating func foldTorchAttention(_ position: Int) throws {
        guard let match = try matchTorchAttention(softmax: position) else { return }
        try applyTorchAttention(match)
    }
}
