import ScionIR

/// Spatial ops become channels-last, kernels permuted lazily to Keras's layouts, and ONNX's explicit
/// padding becomes what Keras can say: `valid`, `same` where it places the padding exactly as ONNX
/// does, or a ZeroPadding layer in front.
extension ChannelsLastRewriter {
    mutating func rewriteSpatial(_ node: Node) throws {
        guard node.inputs.count == 1, let sourceInput = node.inputs.first, node.outputs.count == 1,
              let spatialRank = ChannelsFirstRewriter.spatialRank(of: node.op) else {
            throw failure(node.name, "a \(node.op.typeName) needs exactly one input and one output")
        }
        let rank = spatialRank + 2
        var input = try materialize(sourceInput, in: .channelsLast, rank: rank)
        let lengths = shape(of: sourceInput).map { Array($0.dimensions.dropFirst(2)) } ?? Array(repeating: nil, count: spatialRank)
        var op = node.op
        /// A layer after the main one, writing the node's output: `(op, name suffix)`.
        var after: (op: Op, suffix: String)?
        switch node.op {
        case .conv(var a):
            let window = Self.effectiveWindow(a.kernelSize, dilations: a.dilations)
            // Keras refuses strides together with dilations: the convolution runs with stride 1 and a
            // MaxPooling of size 1 keeps every stride-th position, the same numbers. ONNX's padding
            // (placed for the strided convolution) is then applied explicitly.
            let subsample = a.dilations.contains { $0 > 1 } && a.strides.contains { $0 > 1 }
            let (padding, before) = try kerasPadding(a.padding, lengths: lengths, window: window, strides: a.strides,
                                                     node: node, allowSame: !subsample)
            if let before { input = try emitZeroPadding(before, for: node, input: input) }
            if subsample {
                let ones = Array(repeating: 1, count: spatialRank)
                after = (.pool(PoolAttributes(kind: .max, poolSize: ones, strides: a.strides, padding: .valid, layout: .channelsLast)),
                         "subsample")
                a.strides = ones
            }
            a.padding = padding
            a.layout = .channelsLast
            a.activation = try remapped(a.activation, rank: rank, node: node)
            op = try convolution(node, a)
        case .convTranspose(var a):
            guard a.groups == 1 else { throw failure(node.name, "a grouped ConvTranspose has no Keras layer") }
            try permuteKernel(of: node, role: .kernel, change: "transposed convolution kernel to Keras's [k..., out, in]",
                              permutation: ChannelsLastAxes.kernelToChannelsLast(spatialRank: spatialRank))
            if case .explicit(let pads) = a.padding, pads.contains(where: { $0 != 0 }) {
                guard pads.allSatisfy({ $0 >= 0 }) else { throw failure(node.name, "negative pads \(pads) have no Keras equivalent") }
                let crops = (0..<spatialRank).map { [pads[$0], pads[spatialRank + $0]] }
                after = (.cropping(SpatialPaddingAttributes(padding: crops, layout: .channelsLast)), "crop")
            } else if case .same = a.padding {
                throw failure(node.name, "ConvTranspose with auto_pad SAME has no exact Keras equivalent")
            }
            // Keras's `valid` length with an explicit output padding is ONNX's unpadded one:
            // (n - 1) × stride + dilated kernel + output padding; ONNX's pads are then cropped.
            a.padding = .valid
            a.outputPadding = a.outputPadding ?? Array(repeating: 0, count: spatialRank)
            a.layout = .channelsLast
            a.activation = try remapped(a.activation, rank: rank, node: node)
            op = .convTranspose(a)
        case .pool(var a):
            let (padding, before) = try poolPadding(node, a, lengths: lengths, input: sourceInput)
            if let before { input = try emitZeroPadding(before, for: node, input: input) }
            a.padding = padding
            a.ceilMode = false
            a.countIncludePad = false
            a.layout = .channelsLast
            op = .pool(a)
        case .globalPool(var a):
            a.layout = .channelsLast
            op = .globalPool(a)
        case .zeroPadding(var a):
            a.layout = .channelsLast
            op = .zeroPadding(a)
        case .cropping(var a):
            a.layout = .channelsLast
            op = .cropping(a)
        case .upSampling(var a):
            a.layout = .channelsLast
            op = .upSampling(a)
        default:
            throw failure(node.name, "\(node.op.typeName) is not a spatial op")
        }
        guard let after else {
            try emit(node, form: .channelsLast, op: op, inputs: [input])
            return
        }
        let intermediate = uniqueValueName("\(node.outputs[0])/\(after.suffix)_input")
        var layer = node
        layer.op = op
        layer.inputs = [input]
        layer.outputs = [intermediate]
        nodes.append(layer)
        let follower = Node(name: uniqueNodeName("\(node.name)/\(after.suffix)"), op: after.op,
                            inputs: [intermediate], outputs: node.outputs, scope: node.scope, trainable: node.trainable)
        try emit(follower, form: .channelsLast, op: after.op, inputs: [intermediate])
    }

    /// A convolution's Keras form: a DepthwiseConv when every group is one input channel (rank 1
    /// or 2; Keras has no DepthwiseConv3D), otherwise a (grouped) Conv with the kernel permuted.
    mutating func convolution(_ node: Node, _ a: ConvAttributes) throws -> Op {
        guard let kernel = sourceParameter(of: node, role: .kernel), kernel.shape.count == a.rank + 2 else {
            throw failure(node.name, "is missing a kernel of rank \(a.rank + 2)")
        }
        let channels = kernel.shape[1] * a.groups
        if a.groups > 1, kernel.shape[1] == 1, a.rank <= 2, a.filters % channels == 0 {
            let multiplier = a.filters / channels
            try permuteKernel(of: node, role: .kernel, change: "grouped kernel to a depthwise kernel",
                              permutation: ChannelsLastAxes.groupedKernelToDepthwise(spatialRank: a.rank),
                              viewShape: [channels, multiplier] + a.kernelSize, newRole: .depthwiseKernel)
            return .depthwiseConv(DepthwiseConvAttributes(
                kernelSize: a.kernelSize, strides: a.strides, dilations: a.dilations, padding: a.padding,
                depthMultiplier: multiplier, useBias: a.useBias, activation: a.activation, layout: .channelsLast))
        }
        try permuteKernel(of: node, role: .kernel, change: "convolution kernel to HWIO",
                          permutation: ChannelsLastAxes.kernelToChannelsLast(spatialRank: a.rank))
        return .conv(a)
    }

    /// Pooling padding. Keras's `same` excludes the padding from averages and never pads a max
    /// with anything but -inf; a ZeroPadding in front is exact for an average that counts the
    /// padding, and for a max over values that cannot be negative (after a ReLU).
    func poolPadding(_ node: Node, _ a: PoolAttributes, lengths: [Int?], input: String) throws -> (Padding, [[Int]]?) {
        let countsPadding = a.kind == .average && a.countIncludePad
        let (padding, before) = try kerasPadding(a.padding, lengths: lengths, window: a.poolSize, strides: a.strides,
                                                 node: node, allowSame: !countsPadding)
        if a.ceilMode {
            let pads = before ?? Array(repeating: [0, 0], count: a.rank)
            for (axis, length) in lengths.enumerated() {
                guard let length, padding != .same else { continue }
                let span = length + pads[axis][0] + pads[axis][1] - a.poolSize[axis]
                if span % a.strides[axis] != 0 {
                    throw failure(node.name, "ceil_mode changes the output length here; Keras pooling rounds down")
                }
            }
            if lengths.contains(where: { $0 == nil }) && padding != .same {
                throw failure(node.name, "ceil_mode with unknown input lengths has no Keras equivalent")
            }
        }
        guard before != nil else { return (padding, nil) }
        if a.kind == .max && !isNonNegative(input) {
            throw failure(node.name, "MaxPool pads \(a.padding) differ from Keras 'same' and its input may be negative "
                + "(Keras can only pad with zeros)")
        }
        if a.kind == .average && !a.countIncludePad {
            throw failure(node.name, "AveragePool pads \(a.padding) that excludes the padding from the average differ from Keras 'same'")
        }
        return (padding, before)
    }

    /// Keras padding for an ONNX one: `valid` for no padding, `same` where it pads exactly like
    /// ONNX (`allowSame`), otherwise `valid` after a ZeroPadding of the returned `(before, after)`
    /// pairs.
    func kerasPadding(_ padding: Padding, lengths: [Int?], window: [Int], strides: [Int], node: Node,
                      allowSame: Bool = true) throws -> (Padding, [[Int]]?) {
        switch padding {
        case .valid: return (.valid, nil)
        case .causal: throw failure(node.name, "causal padding is not an ONNX padding")
        case .same:
            if allowSame { return (.same, nil) }
            guard let same = Self.samePadding(lengths: lengths, window: window, strides: strides) else {
                throw failure(node.name, "auto_pad SAME over unknown input lengths has no exact Keras equivalent here")
            }
            return (.valid, same)
        case .explicit(let pads):
            let spatialRank = window.count
            guard pads.count == 2 * spatialRank else { throw failure(node.name, "has \(pads.count) pads for \(spatialRank) axes") }
            guard pads.allSatisfy({ $0 >= 0 }) else { throw failure(node.name, "negative pads \(pads) have no Keras equivalent") }
            let pairs = (0..<spatialRank).map { [pads[$0], pads[spatialRank + $0]] }
            if pads.allSatisfy({ $0 == 0 }) { return (.valid, nil) }
            if allowSame, Self.samePadding(lengths: lengths, window: window, strides: strides) == pairs { return (.same, nil) }
            return (.valid, pairs)
        }
    }

    /// Where Keras (TensorFlow) `same` pads each axis: `total = max((ceil(n / s) - 1) × s + k - n, 0)`,
    /// `total / 2` before and the rest after. Nil when a length is unknown.
    static func samePadding(lengths: [Int?], window: [Int], strides: [Int]) -> [[Int]]? {
        var pairs: [[Int]] = []
        for (axis, length) in lengths.enumerated() {
            guard let length, axis < window.count, axis < strides.count, strides[axis] > 0 else { return nil }
            let output = (length + strides[axis] - 1) / strides[axis]
            let total = max((output - 1) * strides[axis] + window[axis] - length, 0)
            pairs.append([total / 2, total - total / 2])
        }
        return pairs
    }

    static func effectiveWindow(_ kernel: [Int], dilations: [Int]) -> [Int] {
        zip(kernel, dilations).map { ($0 - 1) * $1 + 1 }
    }

    /// Whether a source value is known never to be negative: the output of a ReLU-like activation
    /// (no leak, threshold at least 0), a sigmoid or softmax, or padding / max pooling of such.
    func isNonNegative(_ value: String) -> Bool {
        guard let producer = producers[value] else { return false }
        let node = source.nodes[producer]
        let activation: Activation?
        switch node.op {
        case .activation(let a): activation = a
        case .conv(let a): activation = a.activation
        case .dense(let a): activation = a.activation
        case .zeroPadding:
            return node.inputs.first.map(isNonNegative) ?? false
        case .pool(let a) where a.kind == .max:
            return node.inputs.first.map(isNonNegative) ?? false
        default: activation = nil
        }
        switch activation {
        case .relu(_, let slope, let threshold)?: return slope == 0 && threshold >= 0
        case .sigmoid?, .softmax?, .hardSigmoid?, .exponential?, .softplus?: return true
        default: return false
        }
    }

    /// A ZeroPadding layer in front of `node`, named `node/pad`, reading `input` (channels-last).
    mutating func emitZeroPadding(_ pairs: [[Int]], for node: Node, input: String) throws -> String {
        let output = uniqueValueName("\(node.outputs.first ?? node.name)/padded")
        nodes.append(Node(name: uniqueNodeName("\(node.name)/pad"),
                          op: .zeroPadding(SpatialPaddingAttributes(padding: pairs, layout: .channelsLast)),
                          inputs: [input], outputs: [output], scope: node.scope, trainable: node.trainable))
        return output
    }

    func sourceParameter(of node: Node, role: ParameterRole) -> Parameter? {
        source.parameter(of: node, role: role)
    }

    mutating func permuteKernel(of node: Node, role: ParameterRole, change: String, permutation: [Int],
                                viewShape: [Int]? = nil, newShape: [Int]? = nil, newRole: ParameterRole? = nil,
                                firstElement: Int? = nil) throws {
        guard let original = sourceParameter(of: node, role: role) else {
            throw failure(node.name, "is missing its '\(role)' weights")
        }
        let request = ParameterPermutation(change: change, permutation: permutation, viewShape: viewShape,
                                           newShape: newShape, newRole: newRole, firstElement: firstElement)
        _ = try request.apply(to: original, in: &parameters, changes: &parameterChanges, pass: passName, node: node.name)
    }
}
