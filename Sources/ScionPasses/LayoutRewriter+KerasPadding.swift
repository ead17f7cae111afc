import ScionIR

/// Going channels-last only: ONNX's explicit padding becomes what Keras can say (`valid`, `same`
/// where it places the padding exactly as ONNX does, or a ZeroPadding layer in front), and grouped
/// convolutions with one input channel per group become DepthwiseConv layers.
///
/// ```
///  before (ONNX)                              after (Keras layers)
///  Conv pads [1,1,1,1], k 3, stride 1         Conv2D padding "same"
///  Conv pads [0,0,1,1], k 3, stride 2         conv/pad ZeroPadding2D ((0,1),(0,1)), Conv2D "valid"
///  Conv dilations 2, strides 2                Conv2D stride 1, conv/subsample MaxPooling2D size 1 stride 2
///  ConvTranspose pads [1,1,1,1]               Conv2DTranspose "valid", conv/crop Cropping2D ((1,1),(1,1))
/// ```
extension LayoutRewriter {
    /// A convolution's Keras form, its padding made expressible: a ZeroPadding in front when Keras's
    /// `same` pads differently, a subsampling MaxPooling after it when it has both strides and
    /// dilations (Keras refuses the pair).
    mutating func kerasConvolution(_ node: Node, _ attributes: ConvAttributes, input: inout String,
                                   after: inout (op: Op, suffix: String)?) throws -> Op {
        var a = attributes
        let spatialRank = a.rank
        let lengths = node.inputs.first.flatMap { shape(of: $0) }.map { Array($0.dimensions.dropFirst(2)) }
            ?? Array(repeating: nil, count: spatialRank)
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
        a.activation = try remapped(a.activation, rank: spatialRank + 2, node: node)
        return try convolution(node, a)
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
            try permuteParameter(of: node, role: .kernel, change: "grouped kernel to a depthwise kernel",
                                 permutation: LayoutDirection.groupedKernelToDepthwise(spatialRank: a.rank),
                                 viewShape: [channels, multiplier] + a.kernelSize, newRole: .depthwiseKernel)
            return .depthwiseConv(DepthwiseConvAttributes(
                kernelSize: a.kernelSize, strides: a.strides, dilations: a.dilations, padding: a.padding,
                depthMultiplier: multiplier, useBias: a.useBias, activation: a.activation, layout: .channelsLast))
        }
        try permuteParameter(of: node, role: .kernel, change: direction.convolutionKernelChange,
                             permutation: direction.kernelPermutation(spatialRank: a.rank))
        return .conv(a)
    }

    /// A transposed convolution's Keras padding: Keras's `valid` length with an explicit output
    /// padding is ONNX's unpadded one, (n - 1) × stride + dilated kernel + output padding; ONNX's
    /// pads are then cropped by the returned Cropping layer.
    func kerasTransposedPadding(_ node: Node, _ a: inout ConvTransposeAttributes) throws -> (op: Op, suffix: String)? {
        let spatialRank = a.rank
        var after: (op: Op, suffix: String)?
        if case .explicit(let pads) = a.padding, pads.contains(where: { $0 != 0 }) {
            guard pads.allSatisfy({ $0 >= 0 }) else { throw failure(node.name, "negative pads \(pads) have no Keras equivalent") }
            let crops = (0..<spatialRank).map { [pads[$0], pads[spatialRank + $0]] }
            after = (.cropping(SpatialPaddingAttributes(padding: crops, layout: .channelsLast)), "crop")
        } else if case .same = a.padding {
            throw failure(node.name, "ConvTranspose with auto_pad SAME has no exact Keras equivalent")
        }
        a.padding = .valid
        a.outputPadding = a.outputPadding ?? Array(repeating: 0, count: spatialRank)
        return after
    }

    /// Pooling's Keras padding, with a ZeroPadding layer in front of `converted` where needed. Keras's
    /// `same` excludes the padding from averages and never pads a max with anything but -inf; a
    /// ZeroPadding in front is exact for an average that counts the padding, and for a max over
    /// values that cannot be negative (after a ReLU).
    mutating func kerasPoolPadding(_ node: Node, _ a: inout PoolAttributes, input: String, converted: inout String) throws {
        let lengths = shape(of: input).map { Array($0.dimensions.dropFirst(2)) } ?? Array(repeating: nil, count: a.rank)
        if a.ceilMode, let pairs = try ceilModePadding(node, a, lengths: lengths) {
            return try padForCeilMode(node, &a, pairs: pairs, input: input, converted: &converted)
        }
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
        if let before {
            if a.kind == .average && !a.countIncludePad {
                throw failure(node.name, "AveragePool pads \(a.padding) that excludes the padding from the average differ from Keras 'same'")
            }
            converted = a.kind == .max ? try emitMaxPoolPadding(before, for: node, input: input, converted: converted)
                : try emitZeroPadding(before, for: node, input: converted)
        }
        a.padding = padding
        a.ceilMode = false
        a.countIncludePad = false
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
        if case .zeroPadding = node.op { return node.inputs.first.map(isNonNegative) ?? false }
        if case .pool(let a) = node.op, a.kind == .max { return node.inputs.first.map(isNonNegative) ?? false }
        // GoogLeNet's inception blocks concatenate ReLU branches before the next ceil-mode MaxPool.
        if case .concatenate = node.op { return !node.inputs.isEmpty && node.inputs.allSatisfy(isNonNegative) }
        let activation: Activation?
        if case .activation(let a) = node.op {
            activation = a
        } else if case .conv(let a) = node.op {
            activation = a.activation
        } else if case .dense(let a) = node.op {
            activation = a.activation
        } else {
            activation = nil
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
}
