/// Shape rules of the spatial ops: convolutions, pooling, padding, cropping and upsampling, whose
/// spatial axes follow their layout.
extension Context {
    func spatialAxes(rank: Int, layout: Layout) -> [Int] {
        layout == .channelsLast ? Array(1..<max(rank - 1, 1)) : Array(2..<max(rank, 2))
    }

    func channelAxis(rank: Int, layout: Layout) -> Int { layout == .channelsLast ? rank - 1 : 1 }

    /// Output length of a sliding window along one axis.
    /// `a + b + ...`, or an error when hostile sizes would overflow (a trap otherwise).
    func checkedSum(_ terms: Int...) throws -> Int {
        try terms.reduce(0) { total, term in
            let (sum, overflow) = total.addingReportingOverflow(term)
            if overflow { throw fail("sizes overflow: \(terms.map(String.init).joined(separator: " + "))") }
            return sum
        }
    }

    /// `a · b`, or an error when it would overflow.
    func checkedProduct(_ a: Int, _ b: Int) throws -> Int {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        if overflow { throw fail("sizes overflow: \(a) × \(b)") }
        return product
    }

    func windowOutput(_ input: Int?, kernel: Int, stride: Int, dilation: Int, padding: Padding,
                      axis: Int, spatialRank: Int, ceilMode: Bool = false) throws -> Int? {
        guard let input else { return nil }
        guard stride > 0, kernel > 0, dilation > 0 else { throw fail("kernel, stride and dilation must be positive") }
        let span = try checkedSum(checkedProduct(dilation, kernel - 1), 1)
        let padded: Int
        switch padding {
        case .same: return try checkedSum(input, stride - 1) / stride
        case .valid: padded = input
        case .causal: padded = try checkedSum(input, span - 1)
        case .explicit(let pads):
            guard pads.count == 2 * spatialRank else { throw fail("has \(pads.count) pads for \(spatialRank) axes") }
            padded = try checkedSum(input, pads[axis], pads[axis + spatialRank])
        }
        if padded < span { throw fail("window of \(span) does not fit an input of length \(padded)") }
        let steps = ceilMode ? try checkedSum(padded - span, stride - 1) / stride : (padded - span) / stride
        return steps + 1
    }

    func slidingWindow(kernel: [Int], strides: [Int], dilations: [Int], padding: Padding, layout: Layout,
                       outputChannels: Int?) throws -> (input: Shape, output: Shape)? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: kernel.count + 2) else { return nil }
        guard shape.rank == kernel.count + 2 else {
            throw fail("needs an input of rank \(kernel.count + 2), got shape \(shape)")
        }
        guard strides.count == kernel.count, dilations.count == kernel.count else {
            throw fail("kernel, strides and dilations have different ranks")
        }
        var output = shape
        for (offset, axis) in spatialAxes(rank: shape.rank, layout: layout).enumerated() {
            output[axis] = try windowOutput(shape[axis], kernel: kernel[offset], stride: strides[offset],
                                            dilation: dilations[offset], padding: padding, axis: offset,
                                            spatialRank: kernel.count)
        }
        if let outputChannels { output[channelAxis(rank: shape.rank, layout: layout)] = outputChannels }
        return (shape, output)
    }

    func convolution(_ a: ConvAttributes) throws -> Shape? {
        guard let (input, output) = try slidingWindow(
            kernel: a.kernelSize, strides: a.strides, dilations: a.dilations, padding: a.padding,
            layout: a.layout, outputChannels: a.filters) else { return nil }
        let channels = input[channelAxis(rank: input.rank, layout: a.layout)]
        guard a.groups > 0, channels.map({ $0 % a.groups == 0 }) ?? true, a.filters % a.groups == 0 else {
            throw fail("\(a.groups) groups do not divide \(channels.map(String.init) ?? "?") input channels and \(a.filters) filters")
        }
        let perGroup = channels.map { $0 / a.groups }
        let kernel: [Int?] = a.layout == .channelsLast
            ? a.kernelSize.map { $0 } + [perGroup, a.filters]
            : [a.filters, perGroup] + a.kernelSize.map { $0 }
        try expectParameter(.kernel, kernel)
        try expectBias(a.useBias, a.filters)
        return output
    }

    func depthwise(_ a: DepthwiseConvAttributes, checkBias: Bool) throws -> Shape? {
        guard let (input, _) = try slidingWindow(
            kernel: a.kernelSize, strides: a.strides, dilations: a.dilations, padding: a.padding,
            layout: a.layout, outputChannels: nil) else { return nil }
        let channels = input[channelAxis(rank: input.rank, layout: a.layout)]
        let outputChannels = channels.map { $0 * a.depthMultiplier }
        guard let (_, output) = try slidingWindow(
            kernel: a.kernelSize, strides: a.strides, dilations: a.dilations, padding: a.padding,
            layout: a.layout, outputChannels: outputChannels) else { return nil }
        try expectParameter(.depthwiseKernel, a.kernelSize.map { $0 } + [channels, a.depthMultiplier])
        if checkBias { try expectBias(a.useBias, outputChannels) }
        return output
    }

    func separable(_ a: SeparableConvAttributes) throws -> Shape? {
        guard var output = try depthwise(a.depthwise, checkBias: false) else { return nil }
        let axis = channelAxis(rank: output.rank, layout: a.depthwise.layout)
        try expectParameter(.pointwiseKernel, Array(repeating: 1, count: a.rank) + [output[axis], a.filters])
        try expectBias(a.depthwise.useBias, a.filters)
        output[axis] = a.filters
        return output
    }

    /// Keras's `deconv_output_length`.
    func transposedConvolution(_ a: ConvTransposeAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: a.rank + 2) else { return nil }
        guard a.strides.count == a.rank, a.dilations.count == a.rank, a.outputPadding.map({ $0.count == a.rank }) ?? true,
              a.strides.allSatisfy({ $0 > 0 }), a.dilations.allSatisfy({ $0 > 0 }), a.kernelSize.allSatisfy({ $0 > 0 }) else {
            throw fail("kernel, strides, dilations and output padding must have \(a.rank) positive values each")
        }
        if case .explicit(let pads) = a.padding, pads.count != 2 * a.rank { throw fail("needs \(2 * a.rank) pads, got \(pads.count)") }
        var output = shape
        let channels = channelAxis(rank: shape.rank, layout: a.layout)
        for (offset, axis) in spatialAxes(rank: shape.rank, layout: a.layout).enumerated() {
            guard let length = shape[axis] else { continue }
            let stride = a.strides[offset]
            let kernel = try checkedSum(checkedProduct(a.kernelSize[offset] - 1, a.dilations[offset]), 1)
            if let outputPadding = a.outputPadding {
                let pad: Int
                switch a.padding {
                case .same: pad = kernel / 2
                case .explicit(let pads): pad = pads[offset] + pads[offset + a.rank]
                case .valid, .causal: pad = 0
                }
                let total = if case .explicit = a.padding { pad } else { 2 * pad }
                output[axis] = try checkedSum(checkedProduct(length - 1, stride), kernel, -total, outputPadding[offset])
            } else {
                switch a.padding {
                case .same: output[axis] = try checkedProduct(length, stride)
                case .valid, .causal,
                     .explicit: output[axis] = try checkedSum(checkedProduct(length, stride), max(kernel - stride, 0))
                }
            }
        }
        output[channels] = a.filters
        let kernel: [Int?] = a.layout == .channelsLast
            ? a.kernelSize.map { $0 } + [a.filters, shape[channels]]
            : [shape[channels], a.groups > 0 ? a.filters / a.groups : a.filters] + a.kernelSize.map { $0 }
        try expectParameter(.kernel, kernel)
        try expectBias(a.useBias, a.filters)
        return output
    }

    func pooling(_ a: PoolAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: a.rank + 2) else { return nil }
        guard a.strides.count == a.rank, a.dilations.count == a.rank, shape.rank == a.rank + 2 else {
            throw fail("pool size \(a.poolSize), strides \(a.strides) and dilations \(a.dilations) do not fit an input of shape \(shape)")
        }
        var output = shape
        for (offset, axis) in spatialAxes(rank: shape.rank, layout: a.layout).enumerated() {
            output[axis] = try windowOutput(shape[axis], kernel: a.poolSize[offset], stride: a.strides[offset],
                                            dilation: a.dilations[offset], padding: a.padding, axis: offset, spatialRank: a.rank,
                                            ceilMode: a.ceilMode)
        }
        return output
    }

    func spatialPadding(_ a: SpatialPaddingAttributes) throws -> Shape? {
        try requireInputs(1)
        guard var shape = try firstShape(minimumRank: a.padding.count + 2) else { return nil }
        let sign = if case .cropping = node.op { -1 } else { 1 }
        for (pair, axis) in zip(a.padding, spatialAxes(rank: shape.rank, layout: a.layout)) {
            guard pair.count == 2 else { throw fail("padding \(pair) is not a (before, after) pair") }
            guard let length = shape[axis] else { continue }
            let result = try checkedSum(length, checkedProduct(sign, checkedSum(pair[0], pair[1])))
            if result <= 0 { throw fail("cropping \(pair) leaves nothing of length \(length)") }
            shape[axis] = result
        }
        return shape
    }

    func globalPooling(_ a: GlobalPoolAttributes) throws -> Shape? {
        // With Keras's mask, the second input is the mask source `[batch, time, ...]` (the tokens).
        try requireInputs(a.maskValue == nil ? 1 : 2)
        if a.maskValue != nil, a.rank != 1 || a.kind != .average {
            throw fail("only a GlobalAveragePooling1D reads a Keras mask, not a \(node.op.typeName)")
        }
        guard let shape = try firstShape(minimumRank: a.rank + 2) else { return nil }
        let channels = a.layout == .channelsLast ? shape[shape.rank - 1] : shape[1]
        if a.maskValue != nil, let source = inputs[1].shape {
            let time = a.layout == .channelsLast ? shape[1] : shape[2]
            func differ(_ x: Int?, _ y: Int?) -> Bool { x != nil && y != nil && x != y }
            if source.rank < 2 || differ(source[0], shape[0]) || differ(source[1], time) {
                throw fail("\(node.op.typeName)'s mask source \(source) does not match its input \(shape) in batch and time")
            }
        }
        if a.keepDimensions {
            var result = shape
            for axis in spatialAxes(rank: shape.rank, layout: a.layout) { result[axis] = 1 }
            return result
        }
        return Shape([shape[0], channels])
    }

    func upSampling(_ a: UpSamplingAttributes) throws -> Shape? {
        try requireInputs(1)
        guard var shape = try firstShape(minimumRank: a.size.count + 2) else { return nil }
        for (axis, factor) in zip(spatialAxes(rank: shape.rank, layout: a.layout), a.size) {
            shape[axis] = shape[axis].map { $0 * factor }
        }
        return shape
    }

    /// Resizing and CenterCrop give height x width whatever the input; Keras 3's RandomCrop passes
    /// its input through outside training.
    func resizing(_ a: ResizingAttributes) throws -> Shape? {
        try requireInputs(1)
        guard a.height > 0, a.width > 0 else { throw fail("resizes to \(a.height)x\(a.width); both must be positive") }
        guard var shape = try firstShape(minimumRank: 4) else { return nil }
        guard shape.rank == 4 else { throw fail("needs a batch of images (rank 4), got shape \(shape)") }
        if a.isPassThrough { return shape }
        let axes = spatialAxes(rank: 4, layout: a.layout)
        shape[axes[0]] = a.height
        shape[axes[1]] = a.width
        return shape
    }
}
