import ScionIR

/// Spatial ops become channels-first, their kernels permuted lazily to the layouts ONNX uses.
extension ChannelsFirstRewriter {
    /// Number of spatial axes of a spatial op.
    static func spatialRank(of op: Op) -> Int? {
        switch op {
        case .conv(let a): a.rank
        case .depthwiseConv(let a): a.rank
        case .separableConv(let a): a.rank
        case .convTranspose(let a): a.rank
        case .pool(let a): a.rank
        case .globalPool(let a): a.rank
        case .zeroPadding(let a), .cropping(let a): a.padding.count
        case .upSampling(let a): a.size.count
        default: nil
        }
    }

    mutating func rewriteSpatial(_ node: Node) throws {
        guard node.inputs.count == 1, let input = node.inputs.first, let spatialRank = Self.spatialRank(of: node.op) else {
            throw failure(node.name, "a \(node.op.typeName) needs exactly one input")
        }
        let rank = spatialRank + 2
        var copy = node
        copy.inputs = [try materialize(input, in: .channelsFirst, rank: rank)]
        switch node.op {
        case .conv(var a):
            // Kernel [k..., in/groups, out] (HWIO) to [out, in/groups, k...] (OIHW).
            try permuteParameter(of: node, role: .kernel, change: "convolution kernel to OIHW",
                                 permutation: ChannelsFirstAxes.kernelToChannelsFirst(spatialRank: spatialRank))
            a.layout = .channelsFirst
            a.activation = try remapped(a.activation, rank: rank, node: node)
            copy.op = .conv(a)
        case .depthwiseConv(let a):
            copy.op = .conv(try groupedDepthwise(node, a, activation: try remapped(a.activation, rank: rank, node: node)))
        case .separableConv(let a):
            try rewriteSeparable(node, a, input: copy.inputs[0])
            return
        case .convTranspose(var a):
            // Keras kernel [k..., out, in] to ONNX ConvTranspose's [in, out, k...].
            try permuteParameter(of: node, role: .kernel, change: "transposed convolution kernel to IOHW",
                                 permutation: ChannelsFirstAxes.kernelToChannelsFirst(spatialRank: spatialRank))
            a.layout = .channelsFirst
            a.activation = try remapped(a.activation, rank: rank, node: node)
            copy.op = .convTranspose(a)
        case .pool(var a):
            a.layout = .channelsFirst
            copy.op = .pool(a)
        case .globalPool(var a):
            a.layout = .channelsFirst
            copy.op = .globalPool(a)
        case .zeroPadding(var a):
            a.layout = .channelsFirst
            copy.op = .zeroPadding(a)
        case .cropping(var a):
            a.layout = .channelsFirst
            copy.op = .cropping(a)
        case .upSampling(var a):
            a.layout = .channelsFirst
            copy.op = .upSampling(a)
        default:
            throw failure(node.name, "\(node.op.typeName) is not a spatial op")
        }
        copy.outputs = node.outputs.map { outputName($0, form: .channelsFirst) }
        emit(copy, sourceOutputs: node.outputs, form: .channelsFirst)
    }

    /// A depthwise convolution as the grouped convolution ONNX has: one group per input channel,
    /// `in × multiplier` filters, the Keras kernel `[k..., in, multiplier]` permuted to
    /// `[in × multiplier, 1, k...]` (see `ChannelsFirstAxes.depthwiseKernelToGrouped`). The bias,
    /// `[in × multiplier]` in the same channel order, is unchanged.
    mutating func groupedDepthwise(_ node: Node, _ a: DepthwiseConvAttributes, activation: Activation,
                                   useBias: Bool? = nil) throws -> ConvAttributes {
        guard let kernel = sourceParameter(of: node, role: .depthwiseKernel) else {
            throw failure(node.name, "is missing its 'depthwise_kernel' weights")
        }
        let spatialRank = a.rank
        guard kernel.shape.count == spatialRank + 2 else {
            throw failure(node.name, "depthwise kernel \(kernel.shape) does not have rank \(spatialRank + 2)")
        }
        let channels = kernel.shape[spatialRank]
        let multiplier = kernel.shape[spatialRank + 1]
        guard multiplier == a.depthMultiplier, channels > 0 else {
            throw failure(node.name, "depthwise kernel \(kernel.shape) does not fit depth multiplier \(a.depthMultiplier)")
        }
        let (filters, overflow) = channels.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw failure(node.name, "depthwise kernel \(kernel.shape) is too large") }
        try permuteParameter(of: node, role: .depthwiseKernel, change: "depthwise kernel to grouped OIHW",
                             permutation: ChannelsFirstAxes.depthwiseKernelToGrouped(spatialRank: spatialRank),
                             newShape: [filters, 1] + Array(kernel.shape.prefix(spatialRank)), newRole: .kernel)
        return ConvAttributes(filters: filters, kernelSize: a.kernelSize, strides: a.strides, dilations: a.dilations,
                              padding: a.padding, groups: channels, useBias: useBias ?? a.useBias,
                              activation: activation, layout: .channelsFirst)
    }

    /// A separable convolution as two convolutions: `name/depthwise` (the grouped depthwise part, no
    /// bias, no activation) then `name`, a 1×1 convolution with the pointwise kernel
    /// `[1..., in × multiplier, filters]` permuted to `[filters, in × multiplier, 1...]`, the bias and
    /// the activation. The node producing the original output keeps the original name.
    mutating func rewriteSeparable(_ node: Node, _ a: SeparableConvAttributes, input: String) throws {
        guard let depthwiseKernel = sourceParameter(of: node, role: .depthwiseKernel),
              sourceParameter(of: node, role: .pointwiseKernel) != nil,
              let output = node.outputs.first, node.outputs.count == 1 else {
            throw failure(node.name, "needs depthwise and pointwise kernels and one output")
        }
        let rank = a.rank + 2
        let depthwiseAttributes = try groupedDepthwise(node, a.depthwise, activation: .linear, useBias: false)
        let depthwiseValue = uniqueValueName("\(output)/depthwise")
        let depthwise = Node(name: uniqueNodeName("\(node.name)/depthwise"), op: .conv(depthwiseAttributes),
                             inputs: [input], outputs: [depthwiseValue], parameters: [depthwiseKernel.name],
                             layer: node.layer, scope: node.scope, trainable: node.trainable)
        nodes.append(depthwise)

        try permuteParameter(of: node, role: .pointwiseKernel, change: "pointwise kernel to OIHW",
                             permutation: ChannelsFirstAxes.kernelToChannelsFirst(spatialRank: a.rank), newRole: .kernel)
        let ones = Array(repeating: 1, count: a.rank)
        let pointwiseAttributes = ConvAttributes(
            filters: a.filters, kernelSize: ones, strides: ones, dilations: ones, padding: .valid, groups: 1,
            useBias: a.depthwise.useBias, activation: try remapped(a.depthwise.activation, rank: rank, node: node),
            layout: .channelsFirst)
        let pointwise = Node(name: node.name, op: .conv(pointwiseAttributes), inputs: [depthwiseValue],
                             outputs: [outputName(output, form: .channelsFirst)],
                             parameters: node.parameters.filter { $0 != depthwiseKernel.name },
                             layer: node.layer, scope: node.scope, trainable: node.trainable)
        emit(pointwise, sourceOutputs: node.outputs, form: .channelsFirst)
    }

    /// An activation with an axis (softmax) applied to a value that is now channels-first.
    func remapped(_ activation: Activation, rank: Int, node: Node) throws -> Activation {
        guard let axis = activation.axis else { return activation }
        return activation.withAxis(try position(of: axis, rank: rank, node: node))
    }

    /// Channels-first position of a channels-last axis, or an error naming the node.
    func position(of axis: Int, rank: Int, node: Node) throws -> Int {
        guard let moved = ChannelsFirstAxes.channelsFirstPosition(of: axis, rank: rank) else {
            throw failure(node.name, "axis \(axis) is outside a value of rank \(rank)")
        }
        return moved
    }

    /// Replaces the node's parameter with `role` by its bytes permuted lazily (see
    /// `ParameterPermutation.apply`), once however many nodes share it.
    @discardableResult
    mutating func permuteParameter(of node: Node, role: ParameterRole, change: String, permutation: [Int],
                                   viewShape: [Int]? = nil, newShape: [Int]? = nil, newRole: ParameterRole? = nil,
                                   firstElement: Int? = nil) throws -> Parameter {
        guard let original = sourceParameter(of: node, role: role) else {
            throw failure(node.name, "is missing its '\(role)' weights")
        }
        let request = ParameterPermutation(change: change, permutation: permutation, viewShape: viewShape,
                                           newShape: newShape, newRole: newRole, firstElement: firstElement)
        return try request.apply(to: original, in: &parameters, changes: &parameterChanges, pass: passName, node: node.name)
    }

}
