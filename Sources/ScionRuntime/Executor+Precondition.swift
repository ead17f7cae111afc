import ScionIR

/// What the executor and trainer need from a graph, checked before anything runs.
extension Executor {
    /// Refuses a graph the kernels would misread, naming the node: a depthwise or separable
    /// convolution (the kernels know grouped convolutions only) or a spatial op that computes
    /// channels-last (every spatial kernel reads channels-first values; running one on NHWC values
    /// would give a wrong answer, not an error). Every other op reads its axes from its attributes,
    /// so a graph without spatial ops runs the same in either layout. The fix is the same for all:
    /// lower the graph first (`ExecutorLowering` in ScionPasses, which `Model.executor()` and
    /// `FineTuning` run).
    package static func requireLowered(_ graph: Graph) throws {
        for node in graph.nodes {
            // One exhaustive switch, families in the order of `Executor.evaluate`: a new op must say
            // whether the kernels can run it as the graph has it.
            switch node.op {
            case .depthwiseConv, .separableConv:
                throw RuntimeError(node.name, "is a \(node.op.typeName), which the executor runs only as grouped convolutions: "
                                   + "lower the graph first (GroupedConvolutionPass, or Model.executor())")
            case .conv, .convTranspose, .pool, .globalPool, .dense, .embedding, .masking, .recurrent, .batchNormalization,
                 .layerNormalization, .multiHeadAttention, .einsumDense, .unitNormalization, .attention,
                 .groupNormalization, .normalization, .activation, .prelu, .elementwise,
                 .scaledResidual, .layerScale, .rescaling, .resizing, .flatten, .reshape, .transpose, .permute, .identity,
                 .augmentation, .concatenate, .zeroPadding, .cropping, .upSampling, .dropout, .stochasticDepth, .opaque,
                 .onnx:
                if node.op.spatialLayout == .channelsLast {
                    throw RuntimeError(node.name, "is a channels-last \(node.op.typeName); the executor runs channels-first graphs: "
                                       + "convert the graph first (ChannelsFirstLayoutPass, or Model.executor())")
                }
            }
        }
    }
}
