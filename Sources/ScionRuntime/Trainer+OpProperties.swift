import ScionIR

/// Per-op properties the trainer decides with, each one exhaustive switch with no `default:`, so a
/// new op makes the compiler ask. They would belong in ScionIR as properties of `Op`; they live here
/// until the IR has them. Families in the order of `Executor.evaluate`.
extension Trainer {
    /// The activation an op applies last, which decides whether a loss's gradient can be taken at
    /// its input (`lossValue`: cross-entropy through softmax or sigmoid). Only Dense's and Conv's
    /// fused activations are run apart while training (`forwardStep`); ConvTranspose's is not, and
    /// it has no VJP, so it reports none.
    package static func outputActivation(of op: Op) -> Activation? {
        switch op {
        case .activation(let activation): activation
        case .dense(let a): a.activation
        case .conv(let a): a.activation
        case .einsumDense(let a): a.activation
        case .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .embedding, .masking, .recurrent, .batchNormalization,
             .layerNormalization, .multiHeadAttention, .unitNormalization, .attention, .groupNormalization,
             .normalization, .prelu, .elementwise,
             .scaledResidual, .layerScale, .rescaling, .resizing, .flatten, .reshape, .transpose, .permute, .identity,
             .augmentation, .concatenate,
             .zeroPadding, .cropping, .upSampling, .dropout, .stochasticDepth, .opaque, .onnx:
            nil
        }
    }

    /// Whether an op gives different values from one training step to the next with the same
    /// inputs and weights: such a node never joins the frozen prefix whose outputs are cached.
    static func isRandomWhileTraining(_ op: Op, augmenting: Bool) -> Bool {
        switch op {
        case .dropout(let a), .stochasticDepth(let a): a.rate > 0
        case .augmentation: augmenting
        case .resizing(let a): augmenting && a.kind == .randomCrop
        // Keras drops attention probabilities while training.
        case .multiHeadAttention(let a): a.dropout > 0
        case .attention(let a): a.dropout > 0
        // Keras drops a recurrent cell's input and state while training, frozen or not.
        case .recurrent(let a): a.dropout > 0 || a.recurrentDropout > 0
        case .conv, .depthwiseConv, .separableConv, .convTranspose, .pool, .globalPool, .dense, .einsumDense,
             .unitNormalization, .embedding, .masking,
             .batchNormalization, .layerNormalization, .groupNormalization, .normalization, .activation, .prelu,
             .elementwise, .scaledResidual, .layerScale, .rescaling, .flatten, .reshape, .transpose,
             .permute, .identity, .concatenate, .zeroPadding, .cropping, .upSampling, .opaque, .onnx:
            false
        }
    }
}
