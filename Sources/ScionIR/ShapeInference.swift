/// Output shapes and types of each op, checked against the op's parameters. One exhaustive switch
/// (`Context.infer`); the rules themselves are grouped by op family in the ShapeInference+ files.
public enum ShapeInference {
    /// Shapes and types of `node`'s outputs given its inputs; `parameterShapes` maps roles
    /// (`kernel`, `bias`...) to shapes.
    public static func outputs(of node: Node, inputs: [ValueInfo], parameterShapes: [ParameterRole: [Int]]) throws
        -> [ValueInfo]
    {
        var context = Context(node: node, inputs: inputs, parameterShapes: parameterShapes)
        let shapes = try context.infer()
        let dtype = context.outputType
        return shapes.enumerated().map { offset, shape in
            ValueInfo(name: offset < node.outputs.count ? node.outputs[offset] : "", shape: shape, dtype: dtype)
        }
    }
}

/// Per-node state of shape inference: the node, its input shapes and its parameter shapes.
struct Context {
    let node: Node
    let inputs: [ValueInfo]
    let parameterShapes: [ParameterRole: [Int]]

    init(node: Node, inputs: [ValueInfo], parameterShapes: [ParameterRole: [Int]]) {
        self.node = node; self.inputs = inputs; self.parameterShapes = parameterShapes
    }

    /// The outputs' element type: the first input's unless the op decides it.
    var outputType: DType {
        switch node.op {
        case .embedding, .recurrent: .float32
        case .onnx(.constant(let a)): a.dtype
        case .onnx(.cast(let a)): a.to
        case .onnx(.comparison): .bool
        case .onnx(.shape), .onnx(.argExtreme): .int64
        case .onnx(.constantOfShape(let a)): a.dtype
        case .onnx(.select) where inputs.count > 1: inputs[1].dtype
        case .dense, .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling, .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .groupNormalization,
             .normalization, .layerScale, .prelu, .rescaling, .resizing, .onnx(.localResponseNormalization), .activation,
             .onnx(.clip), .onnx(.coercedSoftmax),
             .onnx(.unary), .dropout, .stochasticDepth, .identity, .augmentation, .flatten, .reshape, .permute,
             .transpose, .onnx(.squeeze), .onnx(.unsqueeze), .onnx(.slice), .onnx(.split), .onnx(.pad), .onnx(.resize),
             .onnx(.gather), .elementwise, .scaledResidual, .concatenate, .onnx(.gemm), .onnx(.matMul), .onnx(.reduce),
             .onnx(.select), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.trilu), .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND),
             .onnx(.gatherElements),
             .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedReshape), .onnx(.computedBatchNormalization),
             .onnx(.computedInstanceNormalization), .opaque, .masking:
            inputs.first?.dtype ?? .float32
        }
    }

    func fail(_ reason: String) -> IRError { IRError(node.name, reason, kind: .shape) }

    func parameterFailure(_ reason: String) -> IRError { IRError(node.name, reason, kind: .parameter) }

    /// The first input's shape; nil when unknown (then every output is unknown too).
    func firstShape(minimumRank: Int = 0) throws -> Shape? {
        guard let first = inputs.first else { throw fail("has no input") }
        guard let shape = first.shape else { return nil }
        if shape.rank < minimumRank {
            throw fail("needs an input of rank \(minimumRank) or more, got shape \(shape)")
        }
        return shape
    }

    func requireInputs(_ count: Int) throws {
        if inputs.count != count { throw fail("needs \(count) input(s), got \(inputs.count)") }
    }

    /// Checks that parameter `role` exists with `expected` shape (nil entries match anything).
    func expectParameter(_ role: ParameterRole, _ expected: [Int?]) throws {
        guard let actual = parameterShapes[role] else { throw parameterFailure("is missing its '\(role)' weights") }
        let matches = actual.count == expected.count
            && zip(actual, expected).allSatisfy { pair in pair.1.map { $0 == pair.0 } ?? true }
        if !matches {
            let wanted = "[" + expected.map { $0.map(String.init) ?? "?" }.joined(separator: ", ") + "]"
            throw parameterFailure("weight '\(role)' has shape \(actual) but the layer needs \(wanted)")
        }
    }

    func expectBias(_ used: Bool, _ count: Int?) throws {
        if used { try expectParameter(.bias, [count]) }
    }

    /// The shape rule of every op: one exhaustive switch, the rules grouped by family in
    /// ShapeInference+Spatial, +Normalization, +Reshaping and +Arithmetic.
    mutating func infer() throws -> [Shape?] {
        switch node.op {
        // Spatial ops (ShapeInference+Spatial.swift).
        case .conv(let a): return [try convolution(a)]
        case .depthwiseConv(let a): return [try depthwise(a, checkBias: true)]
        case .separableConv(let a): return [try separable(a)]
        case .convTranspose(let a): return [try transposedConvolution(a)]
        case .pool(let a): return [try pooling(a)]
        case .globalPool(let a): return [try globalPooling(a)]
        case .zeroPadding(let a), .cropping(let a): return [try spatialPadding(a)]
        case .upSampling(let a): return [try upSampling(a)]
        case .resizing(let a): return [try resizing(a)]
        // Weighted layers that keep their input's shape (ShapeInference+Normalization.swift).
        case .batchNormalization(let a): return [try batchNormalization(a)]
        case .layerNormalization(let a): return [try layerNormalization(a)]
        case .multiHeadAttention(let a): return [try multiHeadAttention(a)]
        case .einsumDense(let a): return [try einsumDense(a)]
        case .attention(let a): return [try attention(a)]
        case .unitNormalization(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 1) else { return [nil] }
            for axis in a.axes where shape.normalizedAxis(axis) == nil || shape.normalizedAxis(axis) == 0 {
                throw fail("axis \(axis) is not a non-batch axis of \(shape)")
            }
            return [shape]
        case .groupNormalization(let a): return [try groupNormalization(a)]
        case .normalization(let a): return [try normalization(a)]
        case .layerScale(let a): return [try layerScale(a)]
        case .prelu(let a): return [try prelu(a)]
        case .onnx(.computedBatchNormalization): return [try computedNormalization(operands: 4)]
        case .onnx(.computedInstanceNormalization): return [try computedNormalization(operands: 2)]
        // One input, its shape unchanged.
        case .activation, .dropout, .stochasticDepth, .identity, .augmentation, .rescaling, .onnx(.unary), .onnx(.cast),
             .onnx(.clip), .onnx(.localResponseNormalization), .onnx(.coercedSoftmax):
            try requireInputs(1)
            return [try firstShape()]
        // Shape ops (ShapeInference+Reshaping.swift).
        case .flatten(let a): return [try flatten(a)]
        case .reshape(let a): return [try reshape(a)]
        case .permute(let a): return [try permute(a)]
        case .transpose(let a): return [try transpose(a)]
        case .onnx(.squeeze(let a)): return [try squeeze(a)]
        case .onnx(.unsqueeze(let a)): return [try unsqueeze(a)]
        case .onnx(.slice(let a)): return [try slice(a)]
        case .onnx(.split(let a)): return try split(a)
        case .onnx(.pad(let a)): return [try pad(a)]
        case .onnx(.gather(let a)): return [try gather(a)]
        case .onnx(.resize(let a)): return [try resize(a)]
        case .onnx(.shape(let a)): return [try shapeOf(a)]
        case .onnx(.expand): return [try expand()]
        case .onnx(.tile): return [try tile()]
        // Index arithmetic, masks, scatter and gather (ShapeInference+Indexing.swift).
        case .onnx(.mod):
            try requireInputs(2)
            return [try broadcastInputs()]
        case .onnx(.range): return [try range()]
        case .onnx(.constantOfShape): return [try constantOfShape()]
        case .onnx(.trilu(let a)): return [try trilu(a)]
        case .onnx(.computedSlice(let a)): return [try computedSlice(a)]
        case .onnx(.computedPad(let a)): return [try computedPad(a)]
        case .onnx(.scatterND): return [try scatterND()]
        case .onnx(.gatherND(let a)): return [try gatherND(a)]
        case .onnx(.gatherElements(let a)): return [try gatherElements(a)]
        case .onnx(.einsum(let a)): return [try einsum(a)]
        // Transformer ops and index search (ShapeInference+Transformer.swift).
        case .onnx(.scaledDotProductAttention(let a)): return try scaledDotProductAttention(a)
        case .onnx(.rmsNormalization): return [try rmsNormalization()]
        case .onnx(.rotaryEmbedding(let a)): return [try rotaryEmbedding(a)]
        case .onnx(.argExtreme(let a)): return [try argExtreme(a)]
        case .onnx(.cumulativeSum(let a)): return [try cumulativeSum(a)]
        case .onnx(.depthSpace(let a)): return [try depthSpace(a)]
        case .onnx(.computedReshape): return [try computedReshape()]
        case .concatenate(let a): return [try concatenate(axis: a.axis)]
        // Ops that compute (ShapeInference+Arithmetic.swift).
        case .dense(let a): return [try dense(a)]
        case .onnx(.gemm(let a)): return [try gemm(a)]
        case .onnx(.matMul): return [try matrixProduct()]
        case .elementwise(let operation): return [try elementwise(operation)]
        case .scaledResidual:
            try requireInputs(2)
            return [try broadcastInputs()]
        case .onnx(.comparison):
            try requireInputs(2)
            return [try broadcastInputs()]
        case .onnx(.select):
            try requireInputs(3)
            return [try broadcastInputs()]
        case .onnx(.reduce(let a)): return [try reduce(a)]
        case .embedding(let a): return [try embedding(a)]
        case .masking:
            // Keras tests the last axis; a step needs a batch axis beside it.
            try requireInputs(1)
            return [try firstShape(minimumRank: 2)]
        case .recurrent(let a): return try recurrent(a)
        case .onnx(.constant): return [try constant()]
        // Kept as read: the shapes the reader found, or unknown.
        case .opaque(let a):
            return a.outputShapes ?? Array(repeating: nil, count: max(node.outputs.count, 1))
        }
    }

    /// Checks a parameter's element count (Keras stores some statistics with broadcast shapes).
    func expectParameterElements(_ role: ParameterRole, _ dimensions: [Int?]) throws {
        guard let actual = parameterShapes[role] else { throw parameterFailure("is missing its '\(role)' weights") }
        guard let expected = Shape.product(dimensions) else { return }
        if actual.checkedProduct != expected {
            throw parameterFailure("weight '\(role)' has shape \(actual) but the layer needs \(expected) elements")
        }
    }
}
