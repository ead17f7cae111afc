import ScionIR

/// MultiHeadAttention's VJP: the forward recomputed (`Executor.attentionPass`), then back through
/// the output projection, the two batched products, the softmax and the three input projections.
///
/// ```
///  d context = d out · Woᵀ            dWo = contextᵀ · d out
///  dP = d heads · Vᵀ                   dV = Pᵀ · d heads
///  d scores = P ⊙ (dP − Σₛ dP ⊙ P), 0 where masked (the -1e9 there is a constant)
///  dQ = d scores · K (the scale applied again)      dK = d scoresᵀ · Q
/// ```
extension Trainer {
    func multiHeadAttentionBackward(_ node: Node, _ a: MultiHeadAttentionAttributes, _ inputs: [RuntimeTensor],
                                    dy: RuntimeTensor) throws -> StepGradients {
        let pass = try executor.attentionPass(node, inputs, a)
        let g = pass.geometry
        var step = StepGradients(inputs: Array(repeating: nil, count: inputs.count))
        // Output projection.
        // The output's trailing axes (output_shape) as one, as the projection computed them.
        let positions = Array(pass.context.shape.dropLast())
        let flat = RuntimeTensor(shape: positions + [dy.count / max(positions.reduce(1, *), 1)], data: dy.data)
        let dContext = try projectionBackward(node, "output_dense", pass.context, dz: flat, useBias: a.useBias, into: &step)
        let dHeads = Executor.grouped(dContext, shape: Array(g.queryShape.dropLast()) + [a.valueDim], g,
                                      positions: g.queryPositions)
        // Attention products.
        let dProbabilities = Kernels.batchedProduct(dHeads, pass.value, transposeB: true)
        let dValue = Kernels.batchedProduct(pass.probabilities, dHeads, transposeB: false, transposeA: true)
        var dScores = dProbabilities
        let (rows, width) = (g.groups * g.queryPositions, g.keyPositions)
        for row in 0..<rows {
            let base = row * width
            var dot: Float = 0
            for s in 0..<width { dot += dProbabilities.data[base + s] * pass.probabilities.data[base + s] }
            for s in 0..<width {
                let kept = pass.keep.map { $0[base + s] != 0 } ?? true
                dScores.data[base + s] = kept ? pass.probabilities.data[base + s] * (dProbabilities.data[base + s] - dot) : 0
            }
        }
        var dQuery = Kernels.batchedProduct(dScores, pass.key, transposeB: false)
        // The query was scaled after its projection: the scale again on the way back.
        let scale = 1 / Float(a.keyDim).squareRoot()
        dQuery.data = dQuery.data.map { $0 * scale }
        let dKey = Kernels.batchedProduct(dScores, pass.query, transposeB: false, transposeA: true)
        // Input projections, their input gradients added where one tensor is two inputs.
        let projections: [(String, Int, RuntimeTensor, [Int])] = [
            ("query_dense", 0, dQuery, g.queryShape), ("key_dense", a.keyInput, dKey, g.keyShape),
            ("value_dense", 1, dValue, g.valueShape)]
        for (sublayer, position, dGrouped, shape) in projections {
            let dz = Executor.ungrouped(dGrouped, projected: shape, g)
            let dx = try projectionBackward(node, sublayer, inputs[position], dz: dz, useBias: a.useBias, into: &step)
            if let existing = step.inputs[position] {
                step.inputs[position] = RuntimeTensor(shape: existing.shape, data: zip(existing.data, dx.data).map(+))
            } else {
                step.inputs[position] = dx
            }
        }
        if let mask = a.maskInput { step.inputs[mask] = nil }
        return step
    }

    /// `z = x · W + b` over the last axis, W one of the sublayer kernels read as a matrix: adds dW
    /// and db to `step`, returns dx.
    private func projectionBackward(_ node: Node, _ sublayer: String, _ x: RuntimeTensor, dz: RuntimeTensor, useBias: Bool,
                                    into step: inout StepGradients) throws -> RuntimeTensor {
        guard let kernel = graph.parameter(of: node, role: .sublayer(sublayer, .kernel)),
              let weights = executor.weights[kernel.name] else {
            throw RuntimeError(node.name, "is missing its '\(sublayer)/kernel' weights")
        }
        let inner = x.shape.last ?? 1
        let columns = dz.shape.last ?? 1
        let rows = x.count / max(inner, 1)
        guard weights.count == inner * columns, dz.count == rows * columns else {
            throw RuntimeError(node.name, "\(sublayer)/kernel does not fit \(x.shape) → \(dz.shape)")
        }
        let (dx, dKernel) = Kernels.matrixProductBackward(x: x.data, weights: weights, dz: dz.data, rows: rows, inner: inner, columns: columns)
        step.parameters.append((kernel.name, dKernel))
        if useBias, let bias = graph.parameter(of: node, role: .sublayer(sublayer, .bias)) {
            step.parameters.append((bias.name, Kernels.columnSums(dz.data, columns: columns)))
        }
        return RuntimeTensor(shape: x.shape, data: dx)
    }
}
