import ScionIR

/// Rewrites a channels-last (Keras) graph into channels-first form, so that an ONNX writer can map
/// every node directly, while the model keeps its interface: it takes the same input arrays and
/// returns the same output arrays, under the same names.
///
/// ```
///  before (Keras, channels-last)              after (channels-first inside, same interface)
///
///  image (N,32,32,3)                          image (N,32,32,3)
///    │                                          │
///    │                                        image/to_channels_first   Transpose [0,3,1,2]
///    │                                          │ (N,3,32,32)
///  conv   Conv2D, kernel [3,3,3,16] (HWIO)    conv   Conv2D channelsFirst, kernel [16,3,3,3] (OIHW)
///  bn     BatchNormalization axis -1          bn     BatchNormalization axis 1
///  relu                                       relu
///  dw     DepthwiseConv2D, kernel [3,3,16,1]  dw     Conv2D groups 16, kernel [16,1,3,3]
///  sep    SeparableConv2D, 24 filters         sep/depthwise  Conv2D groups 16, kernel [16,1,3,3]
///    │ (N,32,32,24)                           sep    Conv2D 1x1, kernel [24,16,1,1], bias
///    │                                          │ writes sep/channels_first (N,24,32,32)
///    ├──────────────┐                           ├──────────────┐
///  gap    GAP2D     │                         gap    GAP2D     │
///  dense            │                         dense  unchanged │
///    ▼              ▼                           ▼            sep/to_channels_last   Transpose [0,2,3,1]
///  outputs: dense (N,10), sep (N,32,32,24)    outputs: dense (N,10), sep (N,32,32,24)
/// ```
///
/// Depthwise and separable convolutions are first lowered to grouped ones by `GroupedConvolutionPass`
/// (the `dw` and `sep` rows above), whose kernels this pass then permutes like any other.
///
/// Rules, in short (`LayoutRewriter` in direction `.toChannelsFirst` does the work; `rule(for:)` and
/// the doc comments of its extensions give each one):
/// - Every value is held either in its original order or channels-first (channels moved from last
///   to axis 1); values of rank 2 or less are the same either way. Spatial ops (convolutions,
///   pooling, padding, cropping, upsampling) and BatchNormalization over the channels (ONNX
///   normalizes axis 1) need channels-first input and produce it; ops that depend on memory order
///   (Reshape, Permute, Dense on rank > 2, Embedding, opaque layers, a LayerNormalization over the
///   channel axis) need the original order; everything else (activations, merges, Concatenate,
///   Rescaling, LayerScale, PReLU...) works on either form with its axis attributes rewritten, and
///   follows its inputs.
/// - A Transpose is inserted only where a value is needed in the form it does not have, once per
///   value and form, so the graph gets at most one Transpose per input and output plus one per
///   boundary of a channels-last island (ConvNeXt's LayerNormalization and Dense on NHWC features).
/// - Kernels are permuted lazily (`PermutedTensorSource`): nothing is read until a writer asks.
/// - Flatten followed by Dense does not transpose: the Flatten becomes channels-first and the
///   Dense kernel's rows are permuted to match (also through Dropout, activations, and a
///   Concatenate of rank-2 values, where only that Flatten's block of rows moves).
/// - Graph outputs keep their names: when the value an output names is channels-first, its
///   producer writes `name/channels_first` and the final Transpose writes `name`.
///
/// A graph marked `layout == .channelsFirst`, or whose spatial ops are all already channels-first,
/// is left unchanged. Afterwards a converted graph's `layout` is `.channelsFirst`.
public struct ChannelsFirstLayoutPass: GraphPass {
    /// `layout-channels-first`.
    public let name = "layout-channels-first"

    /// The pass; it has no options.
    public init() {}

    /// Converts `graph` to channels-first (lowering depthwise and separable convolutions first);
    /// a graph already channels-first is left as it is.
    public func run(_ graph: inout Graph) throws {
        guard graph.hasArchitecture else {
            throw PassError(pass: name, subject: graph.name, "has no architecture (weights only); nothing to convert")
        }
        if Self.isChannelsFirst(graph) { return }
        try GroupedConvolutionPass().run(&graph)
        var source = graph
        try source.inferShapes()
        var rewriter = LayoutRewriter(direction: .toChannelsFirst, passName: name, source: source)
        try rewriter.rewrite()
        graph.nodes = rewriter.nodes
        graph.parameters = rewriter.parameters
        graph.layout = .channelsFirst
        try graph.inferShapes()
    }

    /// True for a graph the pass must not touch: marked channels-first, or with spatial ops that are
    /// all channels-first already (read from ONNX).
    static func isChannelsFirst(_ graph: Graph) -> Bool {
        if graph.layout == .channelsFirst { return true }
        let layouts = graph.nodes.compactMap(\.op.spatialLayout)
        return !layouts.isEmpty && layouts.allSatisfy { $0 == .channelsFirst }
    }
}

