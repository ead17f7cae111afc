import ScionIR

/// Turns a graph read from ONNX (channels-first, ONNX ops) into one every node of which is a Keras
/// layer, channels-last, computing the same function: what the Keras writers need.
///
/// ```
///  before (ONNX, torch-style)                 after (Keras layers)
///
///  image (N,3,32,32)                          image (N,3,32,32)      same input arrays by default
///    │                                          │
///    │                                        image/to_channels_last   Permute (2, 3, 1)
///  conv    Conv pads [1,1,1,1], OIHW          conv    Conv2D padding "same", HWIO
///  bn      BatchNormalization (axis 1)        bn      BatchNormalization axis -1
///  clip    Clip(0, 6)                         clip    ReLU(max_value=6)
///  pad     Pad [0,0,0,0, 0,0,1,1]             pad     ZeroPadding2D ((0,1),(0,1))
///  pool    MaxPool                            pool    MaxPooling2D
///  flatten Flatten (NCHW order)               flatten Flatten (NHWC order)
///  fc      Gemm transB=1                      fc      Dense, kernel rows permuted to NHWC order
///    ▼                                          ▼
/// ```
///
/// Two phases: `KerasPatternRewriter` folds ONNX patterns into Keras ops (Gemm → Dense, x·σ(x) →
/// swish, constant arithmetic → Rescaling, Pad → ZeroPadding...), then `LayoutRewriter` in direction
/// `.toChannelsLast` moves the layout, inserting a Permute only where a value is needed in a form it
/// does not have (at most one per image-like input and output, plus one around each
/// memory-order-dependent island). A node Keras has no layer for fails the pass naming the node and
/// its op (`LayoutRewriter.rule(for:)`), before anything is written.
///
/// With `channelsLastInputs`, image-like inputs that feed the convolutions directly are declared
/// channels-last (`(N, 32, 32, 3)` above) instead of getting a Permute at entry. Graphs that are
/// not channels-first (read from Keras) are left unchanged.
public struct KerasLayersPass: GraphPass {
    /// `keras-layers`.
    public let name = "keras-layers"
    /// Declares image-like inputs channels-last instead of adding a Permute at entry.
    public var channelsLastInputs: Bool

    /// The pass, with image inputs kept channels-first unless `channelsLastInputs`.
    public init(channelsLastInputs: Bool = false) {
        self.channelsLastInputs = channelsLastInputs
    }

    /// Rewrites `graph` into Keras layers, channels-last; throws naming a node Keras has no layer
    /// for, and its op. A graph that is not channels-first is left as it is.
    public func run(_ graph: inout Graph) throws {
        guard graph.hasArchitecture else {
            throw PassError(pass: name, subject: graph.name, "has no architecture (weights only); nothing to convert")
        }
        guard graph.layout == .channelsFirst else { return }
        var patterns = KerasPatternRewriter(passName: name, graph: graph)
        try patterns.rewrite()
        let folded = patterns.graph
        var rewriter = LayoutRewriter(direction: .toChannelsLast, passName: name, source: folded,
                                      convertsInputs: channelsLastInputs)
        try rewriter.rewrite()
        var result = folded
        result.inputs = rewriter.inputs
        result.nodes = rewriter.nodes
        result.parameters = rewriter.parameters
        result.values = [:]
        for input in result.inputs { result.values[input.name] = input }
        result.layout = .channelsLast
        try result.inferShapes()
        graph = result
    }
}
