import ScionIR

/// Lowers Keras's depthwise and separable convolutions to grouped convolutions, the only form ONNX
/// and the executor have, in the graph's own (channels-last) layout. `ChannelsFirstLayoutPass` runs
/// it first, so its rules see only plain convolutions; the executor's lowering runs it by name.
///
/// ```
///  before (Keras, channels-last)               after (still channels-last)
///
///  dw   DepthwiseConv2D, kernel [3,3,16,2]     dw            Conv2D groups 16, 32 filters, kernel [3,3,1,32]
///  sep  SeparableConv2D, 24 filters,           sep/depthwise Conv2D groups 16, 16 filters, kernel [3,3,1,16],
///       depthwise [3,3,16,1],                                no bias, no activation
///       pointwise [1,1,16,24], bias [24]       sep           Conv2D 1x1, kernel [1,1,16,24], bias, activation
/// ```
///
/// Keras's depthwise kernel `[k..., in, multiplier]` holds filter `c · multiplier + m` of group `c` at
/// the same memory position as a grouped kernel `[k..., 1, in · multiplier]`: only the shape and role
/// change, no byte moves (and nothing is read). The pointwise kernel already is a 1×1 kernel. Node
/// and parameter names are kept; a separable convolution's depthwise half is `name/depthwise`, writing
/// `output/depthwise`, and the node writing the original output keeps the original name. Depthwise
/// ops already channels-first (no reader makes them) are left for the executor to refuse by name.
package struct GroupedConvolutionPass: GraphPass {
    package let name = "grouped-convolutions"

    package init() {}

    package func run(_ graph: inout Graph) throws {
        guard graph.nodes.contains(where: Self.lowers) else { return }
        // Roles and shapes are read from the graph as given, so the calls of a shared layer all see
        // the Keras kernels; each kernel is changed once.
        let source = graph
        var valueNames = UniqueNames(taken: graph.inputs.map(\.name) + graph.nodes.flatMap(\.outputs), firstSuffix: 2)
        var nodeNames = UniqueNames(taken: graph.nodes.map(\.name), firstSuffix: 2)
        var nodes: [Node] = []
        for node in source.nodes {
            if case .depthwiseConv(let a) = node.op, a.layout == .channelsLast {
                var copy = node
                copy.op = .conv(try groupedDepthwise(node, a, useBias: a.useBias, activation: a.activation, source: source, in: &graph))
                nodes.append(copy)
            } else if case .separableConv(let a) = node.op, a.depthwise.layout == .channelsLast {
                guard let kernel = source.parameter(of: node, role: .depthwiseKernel),
                      let pointwiseKernel = source.parameter(of: node, role: .pointwiseKernel),
                      let input = node.inputs.first, node.inputs.count == 1, let output = node.outputs.first, node.outputs.count == 1 else {
                    throw PassError(pass: name, subject: node.name, "needs one input, depthwise and pointwise kernels and one output")
                }
                let depthwiseValue = valueNames.claim("\(output)/depthwise")
                let depthwise = try groupedDepthwise(node, a.depthwise, useBias: false, activation: .linear, source: source, in: &graph)
                nodes.append(Node(name: nodeNames.claim("\(node.name)/depthwise"), op: .conv(depthwise), inputs: [input],
                                  outputs: [depthwiseValue], parameters: [kernel.name], layer: node.layer, scope: node.scope,
                                  trainable: node.trainable))
                // The pointwise kernel [1..., in × multiplier, filters] is a 1×1 kernel as it is.
                graph.parameters[pointwiseKernel.name]?.role = .kernel
                let ones = Array(repeating: 1, count: a.rank)
                var pointwise = node
                pointwise.op = .conv(ConvAttributes(filters: a.filters, kernelSize: ones, strides: ones, dilations: ones, padding: .valid,
                                                    groups: 1, useBias: a.depthwise.useBias, activation: a.depthwise.activation,
                                                    layout: .channelsLast))
                pointwise.inputs = [depthwiseValue]
                pointwise.parameters = node.parameters.filter { $0 != kernel.name }
                nodes.append(pointwise)
            } else {
                nodes.append(node)
            }
        }
        graph.nodes = nodes
        graph.values = [:]
        for input in graph.inputs { graph.values[input.name] = input }
        try graph.inferShapes()
    }

    /// The nodes `run` rewrites: channels-last depthwise and separable convolutions.
    static func lowers(_ node: Node) -> Bool {
        if case .depthwiseConv(let a) = node.op { return a.layout == .channelsLast }
        if case .separableConv(let a) = node.op { return a.depthwise.layout == .channelsLast }
        return false
    }

    /// The grouped convolution a depthwise one is: one group per input channel, `in × multiplier`
    /// filters, its kernel reshaped to `[k..., 1, in × multiplier]`.
    func groupedDepthwise(_ node: Node, _ a: DepthwiseConvAttributes, useBias: Bool, activation: Activation,
                          source: Graph, in graph: inout Graph) throws -> ConvAttributes {
        guard let kernel = source.parameter(of: node, role: .depthwiseKernel) else {
            throw PassError(pass: name, subject: node.name, "is missing its 'depthwise_kernel' weights")
        }
        let spatialRank = a.rank
        guard kernel.shape.count == spatialRank + 2 else {
            throw PassError(pass: name, subject: node.name, "depthwise kernel \(kernel.shape) does not have rank \(spatialRank + 2)")
        }
        let channels = kernel.shape[spatialRank], multiplier = kernel.shape[spatialRank + 1]
        guard multiplier == a.depthMultiplier, channels > 0 else {
            throw PassError(pass: name, subject: node.name, "depthwise kernel \(kernel.shape) does not fit depth multiplier \(a.depthMultiplier)")
        }
        let (filters, overflow) = channels.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw PassError(pass: name, subject: node.name, "depthwise kernel \(kernel.shape) is too large") }
        graph.parameters[kernel.name]?.shape = Array(kernel.shape.prefix(spatialRank)) + [1, filters]
        graph.parameters[kernel.name]?.role = .kernel
        return ConvAttributes(filters: filters, kernelSize: a.kernelSize, strides: a.strides, dilations: a.dilations, padding: a.padding,
                              groups: channels, useBias: useBias, activation: activation, layout: .channelsLast)
    }
}
