extension Op {
    /// The layout a spatial op (convolution, pooling, padding, cropping, upsampling) computes in; nil
    /// for ops without one. The layout passes convert by it and the executor checks it: a kernel
    /// written for channels-first would silently misread a channels-last op's values. Exhaustive, so a
    /// new op must say whether it has a layout.
    public var spatialLayout: Layout? {
        switch self {
        case .conv(let a): a.layout
        case .depthwiseConv(let a): a.layout
        case .separableConv(let a): a.depthwise.layout
        case .convTranspose(let a): a.layout
        case .pool(let a): a.layout
        case .globalPool(let a): a.layout
        case .zeroPadding(let a), .cropping(let a): a.layout
        case .upSampling(let a): a.layout
        case .resizing(let a): a.layout
        // Layout-free: they work on whatever order their input has, or on an order of their own
        // (Dense on the last axis, ONNX ops on channels-first by definition).
        case .dense, .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense, .unitNormalization,
             .attention, .groupNormalization, .activation, .prelu, .dropout,
             .flatten, .reshape, .permute, .elementwise, .concatenate, .rescaling, .normalization, .embedding, .masking, .recurrent,
             .scaledResidual, .layerScale, .transpose, .stochasticDepth, .identity, .augmentation:
            nil
        case .opaque, .onnx:
            nil
        }
    }

    /// Number of spatial axes of a spatial op (2 for Conv2D); nil for ops without a `spatialLayout`.
    public var spatialRank: Int? {
        switch self {
        case .conv(let a): a.rank
        case .depthwiseConv(let a): a.rank
        case .separableConv(let a): a.rank
        case .convTranspose(let a): a.rank
        case .pool(let a): a.rank
        case .globalPool(let a): a.rank
        case .zeroPadding(let a), .cropping(let a): a.padding.count
        case .upSampling(let a): a.size.count
        case .resizing: 2
        case .dense, .batchNormalization, .layerNormalization, .multiHeadAttention, .einsumDense, .unitNormalization,
             .attention, .groupNormalization, .activation, .prelu, .dropout,
             .flatten, .reshape, .permute, .elementwise, .concatenate, .rescaling, .normalization, .embedding, .masking, .recurrent,
             .scaledResidual, .layerScale, .transpose, .stochasticDepth, .identity, .augmentation:
            nil
        case .opaque, .onnx:
            nil
        }
    }
}
