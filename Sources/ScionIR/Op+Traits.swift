/// Per-op properties asked by several modules (diff, passes, executor), each one exhaustive
/// `switch` with no `default:`: a new `Op` case does not compile until each property is decided.
extension Op {
    /// The activation a layer applies to its own result (Keras's `activation` argument); nil for ops
    /// that fuse none.
    public var fusedActivation: Activation? {
        switch self {
        // Layers with an `activation` argument.
        case .dense(let a): a.activation
        case .conv(let a): a.activation
        case .depthwiseConv(let a): a.activation
        case .separableConv(let a): a.depthwise.activation
        case .convTranspose(let a): a.activation
        case .einsumDense(let a): a.activation
        // Convolution-free spatial ops.
        case .pool, .globalPool, .zeroPadding, .cropping, .upSampling, .resizing: nil
        // Normalizations and scalings.
        case .batchNormalization, .layerNormalization, .multiHeadAttention, .unitNormalization, .attention,
             .groupNormalization, .normalization,
             .rescaling, .layerScale,
             .onnx(.localResponseNormalization), .onnx(.computedBatchNormalization),
             .onnx(.computedInstanceNormalization): nil
        // Activations are the activation itself, not a fused one.
        case .activation, .prelu, .onnx(.clip), .onnx(.coercedSoftmax): nil
        // Shape and axis ops.
        case .flatten, .reshape, .permute, .transpose, .onnx(.shape), .onnx(.expand), .onnx(.tile),
             .onnx(.mod), .onnx(.range), .onnx(.constantOfShape), .onnx(.trilu),
             .onnx(.computedSlice), .onnx(.computedPad), .onnx(.scatterND), .onnx(.gatherND), .onnx(.gatherElements), .onnx(.einsum),
             .onnx(.scaledDotProductAttention), .onnx(.rmsNormalization), .onnx(.rotaryEmbedding), .onnx(.argExtreme), .onnx(.cumulativeSum), .onnx(.depthSpace),
             .onnx(.computedReshape), .onnx(.squeeze), .onnx(.unsqueeze), .onnx(.slice), .onnx(.split), .onnx(.pad),
             .onnx(.resize), .onnx(.gather): nil
        // Merges and arithmetic.
        case .elementwise, .concatenate, .scaledResidual, .onnx(.gemm), .onnx(.matMul), .onnx(.unary),
             .onnx(.comparison), .onnx(.select), .onnx(.reduce): nil
        // Pass-throughs, constants and the rest.
        case .dropout, .stochasticDepth, .identity, .augmentation, .onnx(.constant), .onnx(.cast), .embedding, .masking, .recurrent,
             .opaque: nil
        }
    }

    /// The op with `activation` as its fused activation; nil for ops that fuse none (those whose
    /// `fusedActivation` is nil).
    public func withFusedActivation(_ activation: Activation) -> Op? {
        switch self {
        case .dense(var a): a.activation = activation; return .dense(a)
        case .conv(var a): a.activation = activation; return .conv(a)
        case .depthwiseConv(var a): a.activation = activation; return .depthwiseConv(a)
        case .separableConv(var a): a.depthwise.activation = activation; return .separableConv(a)
        case .convTranspose(var a): a.activation = activation; return .convTranspose(a)
        case .einsumDense(var a): a.activation = activation; return .einsumDense(a)
        case .pool, .globalPool, .zeroPadding, .cropping, .upSampling, .batchNormalization, .layerNormalization,
             .multiHeadAttention, .unitNormalization, .attention, .groupNormalization, .normalization, .rescaling, .resizing,
             .layerScale, .activation, .prelu,
             .flatten, .reshape, .permute, .transpose, .elementwise, .concatenate, .scaledResidual, .dropout,
             .stochasticDepth, .identity, .augmentation, .embedding, .masking, .recurrent, .opaque, .onnx:
            return nil
        }
    }

    /// Whether a layer with a `use_bias` argument adds its own bias; nil for ops without that
    /// argument (Gemm's C and PReLU's slope are operands, not an option).
    public var useBias: Bool? {
        switch self {
        case .dense(let a): a.useBias
        case .conv(let a): a.useBias
        case .depthwiseConv(let a): a.useBias
        case .separableConv(let a): a.depthwise.useBias
        case .convTranspose(let a): a.useBias
        case .multiHeadAttention(let a): a.useBias
        case .einsumDense(let a): a.biasAxes != nil
        case .unitNormalization, .attention: nil
        case .pool, .globalPool, .zeroPadding, .cropping, .upSampling, .batchNormalization, .layerNormalization,
             .groupNormalization, .normalization, .rescaling, .resizing, .layerScale, .activation, .prelu, .flatten, .reshape,
             .permute, .transpose, .elementwise, .concatenate, .scaledResidual, .dropout, .stochasticDepth, .identity,
             .augmentation, .embedding, .masking, .recurrent, .opaque, .onnx:
            nil
        }
    }

    /// Ops that change their input only while training and pass it through at inference (Dropout,
    /// StochasticDepth): what `diff --inference-only` looks through.
    public var isTrainingOnly: Bool {
        switch self {
        case .dropout, .stochasticDepth, .augmentation:
            true
        case .resizing(let a):
            // RandomCrop in Keras 3 crops only while training; the other two resize always.
            a.isPassThrough
        case .identity:
            // Passes through always, not only at inference.
            false
        case .dense, .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .zeroPadding, .cropping,
             .upSampling, .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense,
             .unitNormalization, .attention, .groupNormalization,
             .normalization, .rescaling, .layerScale, .activation, .prelu, .flatten, .reshape, .permute, .transpose,
             .elementwise, .concatenate, .scaledResidual, .embedding, .masking, .recurrent, .opaque, .onnx:
            false
        }
    }
}
