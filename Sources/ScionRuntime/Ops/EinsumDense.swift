import ScionIR

/// EinsumDense as one matrix product (`EinsumPlan`): the input's kept axes moved first and its
/// contracted axes last, the kernel's contracted axes first, one GEMM, the product's axes moved to
/// the output's order; then the bias (broadcast over the output's trailing axes) and the
/// activation. The VJP is the same product's two transposed products, moved back.
extension Executor {
    func einsumDense(_ node: Node, _ x: RuntimeTensor, _ a: EinsumDenseAttributes) throws -> RuntimeTensor {
        try Kernels.activate(try einsumDenseLinear(node, x, a), a.activation, node: node.name)
    }

    /// The plan and the kernel's shape for an input of `rank`.
    func einsumPlan(_ node: Node, _ a: EinsumDenseAttributes, rank: Int) throws -> (EinsumPlan, [Int]) {
        guard let plan = EinsumPlan(a.equation, inputRank: rank) else {
            throw RuntimeError(node.name, "EinsumDense equation '\(a.equation)' is not one product of a rank-\(rank) input and a kernel")
        }
        guard let shape = parameterShape(node, .kernel), shape.count == plan.kernel.count else {
            throw RuntimeError(node.name, "EinsumDense kernel does not have the \(plan.kernel.count) axes of '\(a.equation)'")
        }
        return (plan, shape)
    }

    /// `einsum(equation, x, kernel) + bias`, before the activation.
    func einsumDenseLinear(_ node: Node, _ x: RuntimeTensor, _ a: EinsumDenseAttributes) throws -> RuntimeTensor {
        let (plan, kernelShape) = try einsumPlan(node, a, rank: x.rank)
        let kernel = RuntimeTensor(shape: kernelShape, data: try require(node, .kernel))
        let moved = Kernels.transpose(x, plan.inputPermutation)
        let weights = Kernels.transpose(kernel, plan.kernelPermutation)
        let keptLengths = Array(moved.shape.prefix(plan.kept.count))
        let inner = moved.shape.dropFirst(plan.kept.count).reduce(1, *)
        guard weights.shape.prefix(plan.contracted.count).reduce(1, *) == inner else {
            throw RuntimeError(node.name, "EinsumDense kernel \(kernelShape) does not fit an input of shape \(x.shape)")
        }
        let ownLengths = Array(weights.shape.dropFirst(plan.contracted.count))
        var product = Kernels.matmul(RuntimeTensor(shape: [moved.count / max(inner, 1), inner], data: moved.data), weights.data,
                                     columns: ownLengths.reduce(1, *))
        product.shape = keptLengths + ownLengths
        var y = Kernels.transpose(product, plan.outputPermutation)
        if a.biasAxes != nil, let shape = parameterShape(node, .bias) {
            y = try Kernels.broadcast(y, RuntimeTensor(shape: shape, data: try require(node, .bias)), node: node.name, +)
        }
        return y
    }
}

extension Trainer {
    /// dL/dx and dL/dkernel from dL/dz (z before the activation), and dL/dbias summed to its shape.
    func einsumDenseBackward(_ node: Node, _ a: EinsumDenseAttributes, _ x: RuntimeTensor, dz: RuntimeTensor) throws -> StepGradients {
        let (plan, kernelShape) = try executor.einsumPlan(node, a, rank: x.rank)
        guard let kernel = graph.parameter(of: node, role: .kernel), let values = executor.weights[kernel.name] else {
            throw RuntimeError(node.name, "is missing its 'kernel' weights")
        }
        let moved = Kernels.transpose(x, plan.inputPermutation)
        let weights = Kernels.transpose(RuntimeTensor(shape: kernelShape, data: values), plan.kernelPermutation)
        let inner = moved.shape.dropFirst(plan.kept.count).reduce(1, *)
        let columns = weights.shape.dropFirst(plan.contracted.count).reduce(1, *)
        let rows = moved.count / max(inner, 1)
        // dz in the product's order (kept, then kernel-own axes) as a [rows, columns] matrix.
        let inverseOutput = (0..<plan.output.count).map { axis in plan.outputPermutation.firstIndex(of: axis) ?? axis }
        let dProduct = Kernels.transpose(dz, inverseOutput)
        let (dMoved, dWeights) = Kernels.matrixProductBackward(x: moved.data, weights: weights.data, dz: dProduct.data,
                                                               rows: rows, inner: inner, columns: columns)
        let inverse = { (permutation: [Int]) in (0..<permutation.count).map { axis in permutation.firstIndex(of: axis) ?? axis } }
        let dx = Kernels.transpose(RuntimeTensor(shape: moved.shape, data: dMoved), inverse(plan.inputPermutation))
        let dKernel = Kernels.transpose(RuntimeTensor(shape: weights.shape, data: dWeights), inverse(plan.kernelPermutation))
        var step = StepGradients(inputs: [dx], parameters: [(kernel.name, dKernel.data)])
        if a.biasAxes != nil, let bias = graph.parameter(of: node, role: .bias) {
            step.parameters.append((bias.name, try Kernels.sumToShape(dz, bias.shape).data))
        }
        return step
    }
}
