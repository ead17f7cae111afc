import ScionIR

/// Weight-matrix layers: Dense, ONNX Gemm and MatMul (of two inputs, or of the input and a
/// `kernel`), and Embedding (a row lookup in a weight table). Forward kernels and VJPs; the GEMM
/// itself is `Kernels.matmul` / `BLAS.gemm`.
extension Executor {
    func dense(_ node: Node, _ x: RuntimeTensor, _ a: DenseAttributes) throws -> RuntimeTensor {
        // An activation after it that nothing else reads (`fuseActivations`), when its own is linear.
        let activation = fusedActivations[node.name] ?? a.activation
        // The bias and an elementwise activation in one pass over the product, on the packed panels
        // as each block is stored; what the epilogue leaves (a classifier's softmax) runs after.
        let epilogue = ConvolutionEpilogue(bias: a.useBias ? try require(node, .bias) : nil, activation: activation)
        var y: RuntimeTensor
        if case .productPanels = convolutionForms[node.name] {
            y = try Kernels.panelProduct(x, panels: try preparedKernel(node), columns: a.units, epilogue: epilogue, node: node.name)
        } else {
            y = Kernels.matmul(x, try require(node, .kernel), columns: a.units)
            epilogue.applyToRows(&y.data, width: a.units)
        }
        return try Kernels.activate(y, epilogue.remaining, node: node.name)
    }

    func matMul(_ node: Node, _ inputs: [RuntimeTensor], _ x: RuntimeTensor) throws -> RuntimeTensor {
        if inputs.count == 2 { return try Kernels.batchedMatmul(inputs[0], inputs[1], node: node.name) }
        guard let shape = parameterShape(node, .kernel), shape.count == 2 else { throw RuntimeError(node.name, "needs a rank-2 kernel") }
        if case .productPanels = convolutionForms[node.name] {
            return try Kernels.panelProduct(x, panels: try preparedKernel(node), columns: shape[1], epilogue: ConvolutionEpilogue(bias: nil, activation: .linear),
                                            node: node.name)
        }
        return Kernels.matmul(x, try require(node, .kernel), columns: shape[1])
    }

    func gemm(_ node: Node, _ inputs: [RuntimeTensor], _ a: GemmAttributes) throws -> RuntimeTensor {
        if case .productPanels = convolutionForms[node.name], inputs.count == 1, let shape = parameterShape(node, .kernel) {
            // Packed (`productForms`: alpha 1, A as it is); a bias of one value per column is the
            // epilogue's, any other C is added below.
            let columns = a.transposeB ? shape[0] : shape[1]
            let bias = parameterShape(node, .bias).flatMap { $0.reduce(1, *) == columns && a.beta == 1 ? parameter(node, .bias) : nil }
            let y = try Kernels.panelProduct(inputs[0], panels: try preparedKernel(node), columns: columns,
                                             epilogue: ConvolutionEpilogue(bias: bias, activation: .linear), node: node.name)
            return bias == nil ? try addingC(y, node, inputs, a) : y
        }
        var x = inputs[0]
        if a.transposeA { x = Kernels.transpose(x, [1, 0]) }
        var b: RuntimeTensor
        if inputs.count >= 2 {
            b = inputs[1]
        } else {
            guard let shape = parameterShape(node, .kernel) else { throw RuntimeError(node.name, "is missing its weight") }
            b = RuntimeTensor(shape: shape, data: try require(node, .kernel))
        }
        if a.transposeB { b = Kernels.transpose(b, [1, 0]) }
        guard x.rank == 2, b.rank == 2, x.shape[1] == b.shape[0] else {
            throw RuntimeError(node.name, "Gemm of \(x.shape) and \(b.shape) does not fit")
        }
        var y = Kernels.matmul(x, b.data, columns: b.shape[1])
        if a.alpha != 1 { y.data = y.data.map { $0 * a.alpha } }
        return try addingC(y, node, inputs, a)
    }

    /// Gemm's `beta · C` (a third input or a bias weight) added to the product, broadcast; none, the product.
    private func addingC(_ y: RuntimeTensor, _ node: Node, _ inputs: [RuntimeTensor], _ a: GemmAttributes) throws -> RuntimeTensor {
        let c = inputs.count >= 3 ? inputs[2] : parameterShape(node, .bias).map { RuntimeTensor(shape: $0, data: parameter(node, .bias) ?? []) }
        guard let c else { return y }
        let scaled = a.beta == 1 ? c : RuntimeTensor(shape: c.shape, data: c.data.map { $0 * a.beta })
        return try Kernels.elementwise(.add, [y, scaled], node: node.name)
    }

    func embedding(_ node: Node, _ x: RuntimeTensor, _ a: EmbeddingAttributes) throws -> RuntimeTensor {
        let table = try require(node, .embeddings)
        var output = [Float]()
        output.reserveCapacity(x.count * a.outputDimension)
        for value in x.data {
            let row = Int(value)
            guard value == value.rounded(), row >= 0, row < a.inputDimension else {
                throw RuntimeError(node.name, "index \(value) is outside the table of \(a.inputDimension) rows")
            }
            output.append(contentsOf: table[(row * a.outputDimension)..<((row + 1) * a.outputDimension)])
        }
        return RuntimeTensor(shape: x.shape + [a.outputDimension], data: output)
    }
}

extension Trainer {
    /// Dense (and MatMul with a weight) on any rank: `z = x · W (+ b)` over the last axis.
    func denseBackward(_ node: Node, _ x: RuntimeTensor, dz: RuntimeTensor, bias: Bool) throws -> StepGradients {
        guard let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 2, let weights = executor.weights[kernel.name] else {
            throw RuntimeError(node.name, "needs a rank-2 kernel")
        }
        let (inputs, units) = (kernel.shape[0], kernel.shape[1])
        let rows = x.count / max(inputs, 1)
        let (dx, dKernel) = Kernels.matrixProductBackward(x: x.data, weights: weights, dz: dz.data, rows: rows, inner: inputs, columns: units)
        var step = StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: dx)], parameters: [(kernel.name, dKernel)])
        if bias, let biasParameter = graph.parameter(of: node, role: .bias) {
            step.parameters.append((biasParameter.name, Kernels.columnSums(dz.data, columns: units)))
        }
        return step
    }

    /// MatMul by a `kernel` parameter is Dense without bias; a MatMul of two computed values has no
    /// gradient yet (nil).
    /// MatMul by a weight is Dense's; of two computed operands (attention's `q · kᵀ`, keras.ops.matmul)
    /// `dA = dy · Bᵀ` and `dB = Aᵀ · dy` over the last two axes, each summed back over the batch axes
    /// it was broadcast along. Nil (no gradient yet) for a vector operand.
    func matMulBackward(_ node: Node, _ inputs: [RuntimeTensor], _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients? {
        guard inputs.count == 2 else { return try denseBackward(node, x, dz: dy, bias: false) }
        let (a, b) = (inputs[0], inputs[1])
        guard a.rank >= 2, b.rank >= 2 else { return nil }
        func swapLastAxes(_ t: RuntimeTensor) -> RuntimeTensor {
            Kernels.transpose(t, Array(0..<(t.rank - 2)) + [t.rank - 1, t.rank - 2])
        }
        let dA = try Kernels.batchedMatmul(dy, swapLastAxes(b), node: node.name)
        let dB = try Kernels.batchedMatmul(swapLastAxes(a), dy, node: node.name)
        return StepGradients(inputs: [try Kernels.sumToShape(dA, a.shape), try Kernels.sumToShape(dB, b.shape)])
    }

    /// ONNX Gemm with its weight and bias as parameters: `y = alpha · op(x) · op(W) + beta · C`. Nil
    /// (no gradient yet) for a Gemm of computed operands or with `transposeA`.
    func gemmBackward(_ node: Node, _ a: GemmAttributes, _ inputs: [RuntimeTensor], _ x: RuntimeTensor,
                      dy: RuntimeTensor) throws -> StepGradients? {
        guard inputs.count == 1, !a.transposeA, let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 2,
              let weights = executor.weights[kernel.name] else { return nil }
        let w = RuntimeTensor(shape: kernel.shape, data: weights)
        let b = a.transposeB ? Kernels.transpose(w, [1, 0]) : w
        let scaled = RuntimeTensor(shape: dy.shape, data: dy.data.map { $0 * a.alpha })
        let dx = Kernels.matmul(scaled, Kernels.transpose(b, [1, 0]).data, columns: b.shape[0])
        var dB = Kernels.matmul(Kernels.transpose(x, [1, 0]), scaled.data, columns: b.shape[1])
        if a.transposeB { dB = Kernels.transpose(dB, [1, 0]) }
        var step = StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: dx.data)], parameters: [(kernel.name, dB.data)])
        if let bias = graph.parameter(of: node, role: .bias) {
            let summed = try Kernels.sumToShape(RuntimeTensor(shape: dy.shape, data: dy.data.map { $0 * a.beta }), bias.shape)
            step.parameters.append((bias.name, summed.data))
        }
        return step
    }

    /// Each looked-up row's gradient added to its row of the table; indices get none. Nil when the
    /// node has no table parameter.
    func embeddingBackward(_ node: Node, _ a: EmbeddingAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) -> StepGradients? {
        guard let table = graph.parameter(of: node, role: .embeddings) else { return nil }
        var dTable = [Float](repeating: 0, count: table.elementCount)
        for (position, value) in x.data.enumerated() {
            let row = Int(value)
            for k in 0..<a.outputDimension { dTable[row * a.outputDimension + k] += dy.data[position * a.outputDimension + k] }
        }
        return StepGradients(inputs: [nil], parameters: [(table.name, dTable)])
    }
}
