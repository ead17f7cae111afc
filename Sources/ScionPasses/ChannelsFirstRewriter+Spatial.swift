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
        case .depthwiseConv, .separableConv:
            // `ChannelsFirstLayoutPass` runs `GroupedConvolutionPass` first: none is left here.
            throw failure(node.name, "a \(node.op.typeName) must be lowered to grouped convolutions first (GroupedConvolutionPass)")
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
