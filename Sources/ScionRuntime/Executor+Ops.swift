import ScionIR

/// Each op's forward computation, channels-first: one exhaustive switch with no `default:`, so a
/// new op makes the compiler ask for its kernel here.
///
/// The scheme: cases are grouped by op family, and each family lives in one file, Ops/<Family>.swift,
/// holding its forward kernels (on `Executor`) and its VJPs (on `Trainer`); the trainer's two
/// dispatch switches (`Trainer.forwardStep`, `Trainer.backwardStep`) use the same groups. The
/// tensor kernels several families share stay in Kernels+*.swift.
extension Executor {
    func evaluate(_ node: Node, _ inputs: [RuntimeTensor]) throws -> RuntimeTensor {
        guard let x = inputs.first ?? constantValue(node) else { throw RuntimeError(node.name, "has no input") }
        switch node.op {
        // Ops/Convolution.swift
        case .conv(let a):
            return try convolution(node, x, a)
        case .convTranspose(let a):
            return try Kernels.activate(try convolutionTranspose(node, x, a), a.activation, node: node.name)
        case .depthwiseConv, .separableConv:
            throw RuntimeError(node.name, "is a \(node.op.typeName): lower the graph to grouped convolutions first (ExecutorLowering)")
        // Ops/Pooling.swift
        case .pool(let a):
            return try Kernels.pool(x, a, paddingIsZero: zeroPaddedPools.contains(node.name), node: node.name)
        case .globalPool(let a) where a.maskValue != nil:
            return try Kernels.maskedGlobalAverage(x, source: inputs.count > 1 ? inputs[1] : nil, a, node: node.name)
        case .globalPool(let a):
            return Kernels.globalPool(x, a)
        case .onnx(.reduce(let a)):
            return try Kernels.reduce(x, a, node: node.name)
        // Ops/Dense.swift
        case .dense(let a):
            return try dense(node, x, a)
        case .onnx(.gemm(let a)):
            return try gemm(node, inputs, a)
        case .onnx(.matMul):
            return try matMul(node, inputs, x)
        case .embedding(let a):
            return try embedding(node, x, a)
        // Ops/Masking.swift
        case .masking(let a):
            return try masking(node, x, a)
        // Ops/Recurrent.swift (a node with states as outputs is run whole by `run`; this is its first output)
        case .recurrent(let a):
            guard let first = try recurrent(node, inputs, a).first else { throw RuntimeError(node.name, "has no output") }
            return first
        // Ops/Normalization.swift
        case .batchNormalization(let a):
            if folded.contains(node.name) { return x }
            return try batchNormalization(node, x, a)
        case .layerNormalization(let a):
            return try layerNormalization(node, x, a)
        // Ops/Attention.swift
        case .multiHeadAttention(let a):
            return try multiHeadAttention(node, inputs, a)
        // Ops/DotAttention.swift
        case .attention(let a):
            return try dotAttention(node, inputs, a)
        // Ops/UnitNormalization.swift
        case .unitNormalization(let a):
            return try unitNormalization(node, x, a)
        // Ops/EinsumDense.swift
        case .einsumDense(let a):
            return try einsumDense(node, x, a)
        case .groupNormalization(let a):
            return try groupNormalization(node, x, a)
        case .normalization(let a):
            return try normalization(node, x, a)
        case .onnx(.computedBatchNormalization(let a)):
            return try computedBatchNormalization(node, inputs, a)
        case .onnx(.computedInstanceNormalization(let a)):
            return try computedInstanceNormalization(node, inputs, a)
        case .onnx(.localResponseNormalization(let a)):
            return Kernels.localResponseNormalization(x, a)
        // Ops/Activation.swift
        case .activation(let activation):
            if passThrough.contains(node.name) { return x }
            return try Kernels.activate(x, activation, node: node.name)
        case .prelu:
            return try prelu(node, x)
        case .onnx(.clip(let a)):
            return clip(x, a)
        case .onnx(.unary(let operation)):
            return try unary(node, x, operation)
        case .onnx(.coercedSoftmax):
            throw unsupported(node, node.op.typeName)
        // Ops/Elementwise.swift
        case .elementwise(let operation):
            return try elementwise(node, inputs, operation)
        case .scaledResidual(let a):
            return try scaledResidual(node, inputs, a)
        case .layerScale(let a):
            return try layerScale(node, x, a)
        case .rescaling(let a):
            return Kernels.rescale(x, a)
        // Ops/Resizing.swift
        case .resizing(let a):
            return try resizing(node, x, a)
        // Ops/Logic.swift
        case .onnx(.comparison(let operation)):
            return try comparison(node, inputs, operation)
        case .onnx(.select):
            return try select(node, inputs)
        // Ops/Shape.swift
        case .flatten(let a):
            return flatten(x, a)
        case .reshape(let a):
            return try Kernels.reshape(x, a, node: node.name)
        case .onnx(.squeeze(let a)):
            return try squeeze(node, x, a)
        case .onnx(.unsqueeze(let a)):
            return unsqueeze(x, a)
        case .transpose(let a):
            return Kernels.transpose(x, a.permutation)
        case .permute(let a):
            return Kernels.transpose(x, [0] + a.dimensions)
        case .identity, .augmentation:
            return x
        case .onnx(.cast(let a)):
            return cast(x, to: a.to)
        // Ops/ComputedShape.swift
        case .onnx(.shape(let a)):
            return shapeOf(x, a)
        case .onnx(.expand):
            return try expand(node, inputs)
        case .onnx(.tile):
            return try tile(node, inputs)
        case .onnx(.mod(let a)):
            return try mod(node, inputs, a)
        // Ops/Indexing.swift
        case .onnx(.range):
            return try range(node, inputs)
        case .onnx(.constantOfShape(let a)):
            return try constantOfShape(node, inputs, a)
        case .onnx(.trilu(let a)):
            return try trilu(node, inputs, a)
        case .onnx(.computedSlice(let a)):
            return try computedSlice(node, inputs, a)
        case .onnx(.computedPad(let a)):
            return try computedPad(node, inputs, a)
        // Ops/Scatter.swift
        case .onnx(.scatterND(let a)):
            return try scatterND(node, inputs, a)
        case .onnx(.gatherND(let a)):
            return try gatherND(node, inputs, a)
        case .onnx(.gatherElements(let a)):
            return try gatherElements(node, inputs, a)
        // Ops/Einsum.swift
        case .onnx(.einsum(let a)):
            return try einsum(node, inputs, a)
        // Ops/ScaledDotProductAttention.swift: Y here; `run` takes the present key and value too.
        case .onnx(.scaledDotProductAttention(let a)):
            return try scaledDotProductAttention(node, inputs, a)[0]
        // Ops/TransformerOps.swift
        case .onnx(.rmsNormalization(let a)):
            return try rmsNormalization(node, inputs, a)
        case .onnx(.rotaryEmbedding(let a)):
            return try rotaryEmbedding(node, inputs, a)
        case .onnx(.argExtreme(let a)):
            return try argExtreme(node, x, a)
        case .onnx(.cumulativeSum(let a)):
            return try cumulativeSum(node, inputs, a)
        case .onnx(.depthSpace(let a)):
            return try depthSpace(node, x, a)
        case .onnx(.computedReshape(let a)):
            return try computedReshape(node, inputs, a)
        // Ops/Movement.swift
        case .concatenate(let a):
            return try Kernels.concatenate(inputs, axis: a.axis, node: node.name)
        case .onnx(.split):
            // `run` slices a Split itself: it is the one op with several outputs.
            throw RuntimeError(node.name, "Split is evaluated by the run loop, not one output at a time")
        case .onnx(.slice(let a)):
            return try slice(node, x, a)
        case .onnx(.gather(let a)):
            return try gather(node, inputs, a)
        case .onnx(.pad(let a)):
            return try pad(node, x, a)
        case .zeroPadding(let a):
            return zeroPadding(x, a, crop: false)
        case .cropping(let a):
            return zeroPadding(x, a, crop: true)
        case .upSampling(let a):
            return try upSampling(node, x, a)
        case .onnx(.resize(let a)):
            return try resize(node, x, a)
        // Ops/Regularization.swift: identity at inference.
        case .dropout, .stochasticDepth:
            return x
        // Ops/Constant.swift
        case .onnx(.constant):
            return x
        case .opaque(let a):
            return try opaque(node, inputs, a)
        }
    }

    func unsupported(_ node: Node, _ what: String) -> RuntimeError {
        RuntimeError(node.name, "\(what) is not supported by the executor yet")
    }
}
