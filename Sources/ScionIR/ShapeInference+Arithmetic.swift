/// Shape rules of the ops that compute: Dense and the matrix products, elementwise arithmetic with
/// numpy broadcasting, comparisons, reductions, lookups and constants.
extension Context {
    func dense(_ a: DenseAttributes) throws -> Shape? {
        try requireInputs(1)
        guard var shape = try firstShape(minimumRank: 2) else { return nil }
        try expectParameter(.kernel, [shape[shape.rank - 1], a.units])
        try expectBias(a.useBias, a.units)
        shape[shape.rank - 1] = a.units
        return shape
    }

    /// B and C come from parameters (`kernel`, `bias`) or, when not constant, from inputs 1 and 2.
    func gemm(_ a: GemmAttributes) throws -> Shape? {
        guard let first = inputs.first else { throw fail("has no input") }
        let b: Shape? = parameterShapes[.kernel].map { Shape($0.map { $0 }) } ?? (inputs.count > 1 ? inputs[1].shape : nil)
        guard let shape = first.shape, let b else { return nil }
        guard shape.rank == 2, b.rank == 2 else { throw fail("Gemm needs 2-D operands, got \(shape) and \(b)") }
        let rows = a.transposeA ? shape[1] : shape[0]
        let inner = a.transposeA ? shape[0] : shape[1]
        let innerB = a.transposeB ? b[1] : b[0]
        if let inner, let innerB, inner != innerB { throw fail("Gemm operands \(shape) and \(b) do not fit") }
        return Shape([rows, a.transposeB ? b[0] : b[1]])
    }

    func matrixProduct() throws -> Shape? {
        let right: Shape? = parameterShapes[.kernel].map { Shape($0.map { $0 }) } ?? (inputs.count > 1 ? inputs[1].shape : nil)
        guard let left = try firstShape(), let right else { return nil }
        guard left.rank >= 1, right.rank >= 1 else { throw fail("MatMul needs operands of rank 1 or more") }
        let leftMatrix = left.rank == 1 ? Shape([1] + left.dimensions) : left
        let rightMatrix = right.rank == 1 ? Shape(right.dimensions + [1]) : right
        let leftBatch = Context(node: node, inputs: [ValueInfo(name: "", shape: Shape(Array(leftMatrix.dimensions.dropLast(2))), dtype: .float32),
                                                     ValueInfo(name: "", shape: Shape(Array(rightMatrix.dimensions.dropLast(2))), dtype: .float32)],
                                parameterShapes: [:])
        guard let batch = try leftBatch.broadcastInputs() else { return nil }
        var dimensions = batch.dimensions
        if left.rank > 1 { dimensions.append(leftMatrix[leftMatrix.rank - 2]) }
        if right.rank > 1 { dimensions.append(rightMatrix[rightMatrix.rank - 1]) }
        return Shape(dimensions)
    }

    /// Numpy broadcasting of every input; unknown dimensions stay unknown.
    func broadcastInputs() throws -> Shape? {
        guard !inputs.isEmpty else { throw fail("has no input") }
        var result: [Int?] = []
        for input in inputs {
            guard let shape = input.shape else { return nil }
            let rank = max(result.count, shape.rank)
            let left = Array(repeating: 1, count: rank - result.count) + result
            let right = Array(repeating: 1, count: rank - shape.rank) + shape.dimensions
            result = try zip(left, right).map { pair -> Int? in
                switch pair {
                case (let a?, let b?):
                    if a == b || b == 1 { return a }
                    if a == 1 { return b }
                    throw fail("cannot combine shapes: \(a) and \(b) differ (inputs \(inputs.map { $0.shape.map(\.description) ?? "?" }))")
                case (1?, nil), (nil, 1?), (nil, nil): return nil
                case (let a?, nil): return a
                case (nil, let b?): return b
                }
            }
        }
        return Shape(result)
    }

    func elementwise(_ operation: ElementwiseOperation) throws -> Shape? {
        if inputs.count < 2 && operation != .add && operation != .multiply {
            throw fail("needs at least 2 inputs, got \(inputs.count)")
        }
        return try broadcastInputs()
    }

    func reduce(_ a: ReduceAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape() else { return nil }
        let axes = try resolve(a.axes ?? Array(0..<shape.rank), rank: shape.rank)
        if a.keepDimensions {
            var result = shape
            for axis in axes { result[axis] = 1 }
            return result
        }
        return Shape(shape.dimensions.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }

    func embedding(_ a: EmbeddingAttributes) throws -> Shape? {
        try requireInputs(1)
        try expectParameter(.embeddings, [a.inputDimension, a.outputDimension])
        guard let shape = try firstShape() else { return nil }
        return Shape(shape.dimensions + [a.outputDimension])
    }

    /// A constant's shape is its `value` parameter's.
    func constant() throws -> Shape? {
        guard let shape = parameterShapes[.value] else { throw parameterFailure("is missing its 'value' weights") }
        return Shape(shape.map { $0 })
    }
}
