import ScionIR

/// One IR node to ONNX nodes. Every spatial op must be channels-first here (the layout pass runs
/// first); per-op patterns are the ones onnxruntime and the ONNX checker accept from opset 13 on.
extension ONNXGraphBuilder {
    mutating func emit(_ node: Node, parameters: [Parameter], inputShapes: [Shape?], outputShape: Shape?) throws {
        let role = Dictionary(parameters.map { ($0.role, $0.name) }, uniquingKeysWith: { first, _ in first })
        let output = node.outputs.first ?? node.name
        let input = node.inputs.first ?? ""
        let inputShape = inputShapes.first ?? nil
        func parameter(_ name: ParameterRole) throws -> String {
            guard let value = role[name] else { throw unsupported(node, "has no '\(name)' weights") }
            return value
        }
        switch node.op {
        case .dense(let a):
            let kernel = try parameter(.kernel)
            let target = a.activation == .linear ? output : uniqueName("\(node.name)/linear")
            if inputShape?.rank == 2 {
                add("Gemm", name: node.name, inputs: [input, kernel] + (a.useBias ? [try parameter(.bias)] : []), output: target)
            } else if a.useBias {
                let product = intermediate("MatMul", name: node.name, inputs: [input, kernel])
                add("Add", name: "\(node.name)/bias", inputs: [product, try parameter(.bias)], output: target)
            } else {
                add("MatMul", name: node.name, inputs: [input, kernel], output: target)
            }
            if a.activation != .linear { try activation(a.activation, node: node, input: target, output: output, rank: outputShape?.rank) }
        case .conv(let a):
            try requireChannelsFirst(a.layout, node)
            let target = a.activation == .linear ? output : uniqueName("\(node.name)/linear")
            var attributes: [ONNXAttribute] = [.ints("kernel_shape", a.kernelSize), .ints("strides", a.strides),
                                               .ints("dilations", a.dilations), .int("group", a.groups)]
            attributes += try padding(a.padding, node: node, input: inputShape, kernel: a.kernelSize, strides: a.strides,
                                      dilations: a.dilations)
            add("Conv", name: node.name, inputs: [input, try parameter(.kernel)] + (a.useBias ? [try parameter(.bias)] : []),
                output: target, attributes: attributes)
            if a.activation != .linear { try activation(a.activation, node: node, input: target, output: output, rank: outputShape?.rank) }
        case .convTranspose(let a) where a.groups != 1 || a.outputPadding != nil && a.padding != .valid && a.padding != .same:
            try requireChannelsFirst(a.layout, node)
            try emitImportedConvTranspose(node, a, role: role)
        case .convTranspose(let a):
            try requireChannelsFirst(a.layout, node)
            let target = a.activation == .linear ? output : uniqueName("\(node.name)/linear")
            let attributes = try transposedPadding(a, node: node, input: inputShape, output: outputShape)
            add("ConvTranspose", name: node.name,
                inputs: [input, try parameter(.kernel)] + (a.useBias ? [try parameter(.bias)] : []),
                output: target, attributes: attributes)
            if a.activation != .linear { try activation(a.activation, node: node, input: target, output: output, rank: outputShape?.rank) }
        case .depthwiseConv, .separableConv:
            throw unsupported(node, "depthwise and separable convolutions must be rewritten by the layout pass before export")
        case .pool(let a):
            try requireChannelsFirst(a.layout, node)
            var attributes: [ONNXAttribute] = [.ints("kernel_shape", a.poolSize), .ints("strides", a.strides)]
            attributes += try padding(a.padding, node: node, input: inputShape, kernel: a.poolSize, strides: a.strides,
                                      dilations: a.dilations)
            if !a.isDense { attributes.append(.ints("dilations", a.dilations)) }
            if a.ceilMode { attributes.append(.int("ceil_mode", 1)) }
            if a.kind == .average { attributes.append(.int("count_include_pad", a.countIncludePad ? 1 : 0)) }
            add(a.kind == .max ? "MaxPool" : "AveragePool", name: node.name, inputs: [input], output: output, attributes: attributes)
        case .globalPool(let a) where a.maskValue != nil:
            try emitMaskedGlobalAverage(node, a, sourceRank: inputShapes.count > 1 ? inputShapes[1]?.rank : nil, output: output)
        case .globalPool(let a):
            try requireChannelsFirst(a.layout, node)
            let type = a.kind == .max ? "GlobalMaxPool" : "GlobalAveragePool"
            if a.keepDimensions {
                add(type, name: node.name, inputs: [input], output: output)
            } else {
                let pooled = intermediate(type, name: node.name, inputs: [input])
                add("Flatten", name: "\(node.name)/flatten", inputs: [pooled], output: output, attributes: [.int("axis", 1)])
            }
        case .batchNormalization(let a):
            guard a.axis == 1 || inputShape?.normalizedAxis(a.axis) == 1 || (inputShape?.rank ?? 3) <= 2 && a.axis == -1 else {
                throw unsupported(node, "BatchNormalization over axis \(a.axis) of a rank-\(inputShape?.rank ?? 0) tensor (ONNX normalizes axis 1)")
            }
            let channels = try parameterLength(parameters, .movingMean, node)
            let scale = a.scale ? try parameter(.gamma) : constant("\(node.name)/gamma", floats: Array(repeating: 1, count: channels), dimensions: [Int64(channels)])
            let bias = a.center ? try parameter(.beta) : constant("\(node.name)/beta", floats: Array(repeating: 0, count: channels), dimensions: [Int64(channels)])
            add("BatchNormalization", name: node.name,
                inputs: [input, scale, bias, try parameter(.movingMean), try parameter(.movingVariance)],
                output: output, attributes: [.float("epsilon", a.epsilon), .float("momentum", a.momentum)])
        case .groupNormalization(let a):
            try emitGroupNormalization(node, a, parameters: parameters, role: role, inputShape: inputShape)
        case .layerNormalization(let a):
            guard let shape = inputShape else { throw unsupported(node, "LayerNormalization needs a known input rank") }
            let axes = a.axes.compactMap { shape.normalizedAxis($0) }.sorted()
            guard let first = axes.first, axes.count == a.axes.count else {
                throw unsupported(node, "LayerNormalization axes \(a.axes) do not fit a rank-\(shape.rank) input")
            }
            let count = Shape.product(axes.map { shape[$0] }) ?? 0
            let scale = a.scale ? try parameter(.gamma) : constant("\(node.name)/gamma", floats: Array(repeating: 1, count: count), dimensions: axes.map { Int64(shape[$0] ?? 0) })
            var inputs = [input, scale]
            if a.center { inputs.append(try parameter(.beta)) }
            if axes == Array(first..<shape.rank) {
                inputs[0] = input
                layerNormalization(inputs, axis: first, rank: shape.rank, epsilon: a.epsilon, name: node.name, output: output)
            } else {
                // ONNX normalizes trailing axes only: move the normalized axes to the end (in order, so
                // gamma and beta keep their layout), normalize, and move them back.
                let others = (0..<shape.rank).filter { !axes.contains($0) }
                let permutation = others + axes
                let inverse = (0..<shape.rank).map { axis in permutation.firstIndex(of: axis) ?? axis }
                inputs[0] = intermediate("Transpose", name: node.name, inputs: [input], attributes: [.ints("perm", permutation)])
                let normalized = uniqueName("\(node.name)/normalized")
                layerNormalization(inputs, axis: others.count, rank: shape.rank, epsilon: a.epsilon, name: node.name, output: normalized)
                add("Transpose", name: "\(node.name)/restore", inputs: [normalized], output: output,
                    attributes: [.ints("perm", inverse)])
            }
        case .multiHeadAttention(let a):
            try emitMultiHeadAttention(node, a, parameters: parameters, inputShapes: inputShapes, output: output)
        case .attention(let a):
            try emitAttention(node, a, parameters: parameters, inputShapes: inputShapes, output: output)
        case .unitNormalization(let a):
            // x / max(sqrt(ReduceSum(x·x)), floor): ReduceSum takes its axes as an input from opset 13.
            guard let rank = inputShape?.rank else { throw unsupported(node, "UnitNormalization needs its input's rank") }
            let axes = a.axes.map { Int64($0 < 0 ? $0 + rank : $0) }
            let squares = intermediate("Mul", name: "\(node.name)/square", inputs: [input, input])
            let sum = intermediate("ReduceSum", name: "\(node.name)/sum", inputs: [squares, constant("\(node.name)/axes", int64s: axes)],
                                   attributes: [.int("keepdims", 1)])
            let norm = intermediate("Sqrt", name: "\(node.name)/norm", inputs: [sum])
            let floored = intermediate("Max", name: "\(node.name)/floor", inputs: [norm, scalar("\(node.name)/minimum", a.minimumNorm)])
            add("Div", name: node.name, inputs: [input, floored], output: output)
        case .einsumDense(let a):
            // ONNX's Einsum takes Keras's equation as written; the bias broadcasts over the trailing axes.
            let target = a.activation == .linear ? output : uniqueName("\(node.name)/linear")
            if a.biasAxes != nil {
                let product = intermediate("Einsum", name: node.name, inputs: [input, try parameter(.kernel)],
                                           attributes: [.string("equation", a.equation)])
                add("Add", name: "\(node.name)/bias", inputs: [product, try parameter(.bias)], output: target)
            } else {
                add("Einsum", name: node.name, inputs: [input, try parameter(.kernel)], output: target,
                    attributes: [.string("equation", a.equation)])
            }
            if a.activation != .linear { try activation(a.activation, node: node, input: target, output: output, rank: outputShape?.rank) }
        case .activation(let activation):
            try self.activation(activation, node: node, input: input, output: output, rank: inputShape?.rank)
        case .prelu:
            add("PRelu", name: node.name, inputs: [input, try parameter(.alpha)], output: output)
        case .dropout, .stochasticDepth, .identity, .augmentation:
            add("Identity", name: node.name, inputs: [input], output: output)
        case .flatten(let a):
            add("Flatten", name: node.name, inputs: [input], output: output, attributes: [.int("axis", a.axis)])
        case .reshape(let a) where a.includesBatch:
            // allowzero (opset 14) changes only a target holding a 0: torch's dynamo sets it on
            // every Reshape, and without a 0 the model says the same in opset 13.
            let allowZero = a.allowZero && a.targetShape.contains(0)
            guard !allowZero || hasNative(14) else { throw unsupported(node, "Reshape with allowzero needs opset 14 or later") }
            let shape = constant("\(node.name)/shape", int64s: a.targetShape.map { Int64($0) })
            add("Reshape", name: node.name, inputs: [input, shape], output: output,
                attributes: allowZero ? [.int("allowzero", 1)] : [])
        case .reshape(let a):
            let shape = constant("\(node.name)/shape", int64s: [0] + a.targetShape.map { Int64($0) })
            add("Reshape", name: node.name, inputs: [input, shape], output: output)
        case .permute(let a):
            add("Transpose", name: node.name, inputs: [input], output: output, attributes: [.ints("perm", [0] + a.dimensions)])
        case .transpose(let a):
            add("Transpose", name: node.name, inputs: [input], output: output, attributes: [.ints("perm", a.permutation)])
        case .zeroPadding(let a):
            try requireChannelsFirst(a.layout, node)
            let begins = [0, 0] + a.padding.map { Int64($0[0]) }
            let ends = [0, 0] + a.padding.map { Int64($0[1]) }
            let pads = constant("\(node.name)/pads", int64s: begins + ends)
            add("Pad", name: node.name, inputs: [input, pads], output: output, attributes: [.string("mode", "constant")])
        case .cropping(let a):
            try requireChannelsFirst(a.layout, node)
            let axes = a.padding.indices.map { Int64($0 + 2) }
            let starts = constant("\(node.name)/starts", int64s: a.padding.map { Int64($0[0]) })
            // An end counted from the back: -after, or "to the end" when nothing is cropped there.
            let ends = constant("\(node.name)/ends", int64s: a.padding.map { $0[1] > 0 ? Int64(-$0[1]) : Int64.max })
            let axesName = constant("\(node.name)/axes", int64s: axes)
            add("Slice", name: node.name, inputs: [input, starts, ends, axesName], output: output)
        case .upSampling(let a):
            try requireChannelsFirst(a.layout, node)
            let scales = constant("\(node.name)/scales", floats: [1, 1] + a.size.map { Float($0) }, dimensions: [Int64(a.size.count + 2)])
            let linear = a.interpolation == "bilinear"
            add("Resize", name: node.name, inputs: [input, "", scales], output: output, attributes: [
                .string("mode", linear ? "linear" : "nearest"),
                .string("coordinate_transformation_mode", linear ? "half_pixel" : "asymmetric"),
                .string("nearest_mode", "floor"),
            ])
        case .elementwise(let operation):
            try elementwise(operation, node: node, output: output)
        case .concatenate(let a):
            let rank = outputShape?.rank ?? inputShape?.rank ?? 0
            add("Concat", name: node.name, inputs: node.inputs, output: output,
                attributes: [.int("axis", a.axis < 0 ? a.axis + rank : a.axis)])
        case .rescaling(let a):
            let rank = inputShape?.rank ?? 1
            let scaled = a.scale == [1] ? input : intermediate("Mul", name: node.name, inputs: [
                input, constant("\(node.name)/scale", floats: a.scale, dimensions: broadcastDimensions(a.scale.count, axis: a.axis, rank: rank)),
            ])
            if a.offset.allSatisfy({ $0 == 0 }) {
                add("Identity", name: "\(node.name)/identity", inputs: [scaled], output: output)
            } else {
                add("Add", name: "\(node.name)/offset", inputs: [
                    scaled, constant("\(node.name)/offset", floats: a.offset, dimensions: broadcastDimensions(a.offset.count, axis: a.axis, rank: rank)),
                ], output: output)
            }
        case .resizing(let a):
            try emitResizing(node, a, input: input, output: output, inputShape: inputShape)
        case .normalization(let a):
            try normalization(a, node: node, parameters: parameters, input: input, output: output, inputShape: inputShape)
        case .embedding:
            let indices = intermediate("Cast", name: node.name, inputs: [input], attributes: [.int("to", Int(ONNXDataType.int64.rawValue))])
            add("Gather", name: node.name, inputs: [try parameter(.embeddings), indices], output: output, attributes: [.int("axis", 0)])
        case .masking(let a):
            // Keras's where(any(x != v, axis=-1, keepdims=True), x, 0), the any as a count of differing
            // features above 0 (ReduceSum takes its axes as an input from opset 13 on, ReduceMax only
            // from 18). The layout pass keeps Masking's input in Keras's order, so its last axis is Keras's.
            let equal = intermediate("Equal", name: "\(node.name)/equal", inputs: [input, scalar("\(node.name)/mask_value", a.maskValue)])
            let differs = intermediate("Not", name: "\(node.name)/differs", inputs: [equal])
            let counted = intermediate("Cast", name: "\(node.name)/count", inputs: [differs],
                                       attributes: [.int("to", Int(ONNXDataType.float.rawValue))])
            let count = intermediate("ReduceSum", name: "\(node.name)/any", inputs: [counted, constant("\(node.name)/axes", int64s: [-1])],
                                     attributes: [.int("keepdims", 1)])
            let kept = intermediate("Greater", name: "\(node.name)/kept", inputs: [count, scalar("\(node.name)/none", 0)])
            add("Where", name: node.name, inputs: [kept, input, scalar("\(node.name)/zero", 0)], output: output)
        case .recurrent(let a):
            if let convolution = a.convolution {
                try convolutionalRecurrent(node, a, convolution, parameters: parameters, input: input, inputShape: inputShape)
            } else {
                try recurrent(node, a, parameters: parameters, inputShapes: inputShapes)
            }
        case .scaledResidual(let a):
            let scaled = intermediate("Mul", name: node.name, inputs: [
                node.inputs[1], constant("\(node.name)/scale", floats: [a.scale], dimensions: []),
            ])
            add("Add", name: node.name, inputs: [input, scaled], output: output)
        case .layerScale(let a):
            let rank = inputShape?.rank ?? 1
            let axis = a.axis < 0 ? a.axis + rank : a.axis
            var gamma = try parameter(.gamma)
            if axis != rank - 1 {
                let shape = constant("\(node.name)/gamma_shape", int64s: [-1] + Array(repeating: 1, count: rank - 1 - axis))
                gamma = intermediate("Reshape", name: "\(node.name)/gamma", inputs: [gamma, shape])
            }
            add("Mul", name: node.name, inputs: [input, gamma], output: output)
        case .opaque(let a) where a.domain != "keras" && a.configuration.hasPrefix(ONNXNodePacking.prefix):
            try emitOpaqueONNX(node, a)
        case .opaque(let a):
            throw unsupported(node, "no ONNX for it: \(a.uninterpretedReason)")
        case .onnx(let operation):
            try emitImported(node, operation, role: role, inputShape: inputShape)
        }
    }

    /// ONNX LayerNormalization from opset 17; before it, the same arithmetic spelled out:
    /// `(x - mean) / sqrt(variance + epsilon) * gamma + beta` over the trailing axes from `axis`.
    mutating func layerNormalization(_ inputs: [String], axis: Int, rank: Int, epsilon: Float, name: String, output: String) {
        if hasNative(17) {
            add("LayerNormalization", name: name, inputs: inputs, output: output,
                attributes: [.int("axis", axis), .float("epsilon", epsilon)])
            return
        }
        let axes = ONNXAttribute.ints("axes", Array(axis..<rank))
        let mean = intermediate("ReduceMean", name: name, inputs: [inputs[0]], attributes: [axes, .int("keepdims", 1)])
        let centered = intermediate("Sub", name: name, inputs: [inputs[0], mean])
        let variance = intermediate("ReduceMean", name: name, inputs: [intermediate("Mul", name: name, inputs: [centered, centered])],
                                    attributes: [axes, .int("keepdims", 1)])
        let deviation = intermediate("Sqrt", name: name, inputs: [intermediate("Add", name: name, inputs: [variance, scalar("\(name)/epsilon", epsilon)])])
        let normalized = intermediate("Div", name: name, inputs: [centered, deviation])
        if inputs.count > 2 {
            let scaled = intermediate("Mul", name: name, inputs: [normalized, inputs[1]])
            add("Add", name: name, inputs: [scaled, inputs[2]], output: output)
        } else {
            add("Mul", name: name, inputs: [normalized, inputs[1]], output: output)
        }
    }

    func requireChannelsFirst(_ layout: Layout, _ node: Node) throws {
        if layout != .channelsFirst { throw unsupported(node, "is channels-last; run the layout pass before export") }
    }

    func parameterLength(_ parameters: [Parameter], _ role: ParameterRole, _ node: Node) throws -> Int {
        guard let parameter = parameters.first(where: { $0.role == role }) else { throw unsupported(node, "has no '\(role)' weights") }
        return parameter.elementCount
    }

    /// Dimensions that make a per-channel vector broadcast along `axis` of a rank-`rank` tensor.
    func broadcastDimensions(_ count: Int, axis: Int, rank: Int) -> [Int64] {
        if count == 1 { return [] }
        let resolved = axis < 0 ? axis + rank : axis
        return [Int64(count)] + Array(repeating: 1, count: max(rank - 1 - resolved, 0))
    }
}
