import ScionIR

/// ONNX node to IR op, for ops whose meaning the IR holds exactly. nil means "keep it opaque": an
/// attribute form, a non-constant weight or an unknown rank the IR op cannot express.
extension ONNXImportSession {
    func floatAttribute(_ node: ONNXNode, _ name: String, _ fallback: Float) -> Float {
        if case .float(let value)? = node.attribute(name) { return value }
        return fallback
    }

    func intsAttribute(_ node: ONNXNode, _ name: String) -> [Int]? {
        if case .ints(let values)? = node.attribute(name) { return values.map { Int(truncatingIfNeeded: $0) } }
        return nil
    }

    func stringAttribute(_ node: ONNXNode, _ name: String, _ fallback: String) -> String {
        if case .string(let bytes)? = node.attribute(name) { return String(decoding: bytes, as: UTF8.self) }
        return fallback
    }

    func rank(_ value: String) -> Int? { known[value]?.shape?.rank ?? constants[value]?.shape.count }
    func shape(_ value: String) -> Shape? { known[value]?.shape ?? constants[value].map { Shape($0.shape.map { $0 }) } }
    func isConstant(_ value: String) -> Bool { !value.isEmpty && constants[value] != nil }
    func input(_ node: ONNXNode, _ position: Int) -> String? {
        position < node.inputs.count && !node.inputs[position].isEmpty ? node.inputs[position] : nil
    }

    mutating func map(_ node: ONNXNode, subject: String) throws -> MappedNode? {
        guard let x = input(node, 0) else { return nil }
        let single = { (op: Op) in MappedNode(op: op, inputs: [x]) }
        switch node.opType {
        case "Conv": return try convolution(node, x)
        case "ConvTranspose": return try transposedConvolution(node, x)
        case "MaxPool", "AveragePool": return pooling(node, x)
        case "GlobalAveragePool", "GlobalMaxPool":
            guard let rank = rank(x), rank >= 3 else { return nil }
            return single(.globalPool(GlobalPoolAttributes(kind: node.opType == "GlobalMaxPool" ? .max : .average, rank: rank - 2,
                                                           keepDimensions: true, layout: .channelsFirst)))
        case "BatchNormalization":
            guard node.inputs.count == 5, intAttribute(node, "spatial", 1) == 1, intAttribute(node, "training_mode", 0) == 0 else {
                return nil
            }
            guard node.inputs.dropFirst().allSatisfy(isConstant) else {
                // Statistics computed in the graph (tf2onnx's LayerNormalization): operands, not weights.
                return MappedNode(op: .onnx(.computedBatchNormalization(ComputedNormalizationAttributes(
                    epsilon: floatAttribute(node, "epsilon", 1e-5)))), inputs: node.inputs)
            }
            let attributes = BatchNormalizationAttributes(axis: 1, epsilon: floatAttribute(node, "epsilon", 1e-5),
                                                          momentum: floatAttribute(node, "momentum", 0.9), center: true, scale: true)
            return MappedNode(op: .batchNormalization(attributes), inputs: [x], parameters: [
                (node.inputs[1], .gamma, nil), (node.inputs[2], .beta, nil),
                (node.inputs[3], .movingMean, nil), (node.inputs[4], .movingVariance, nil),
            ])
        case "LayerNormalization":
            guard let scale = input(node, 1), isConstant(scale), let rank = rank(x) else { return nil }
            let axis = intAttribute(node, "axis", -1)
            let first = axis < 0 ? axis + rank : axis
            guard (0..<rank).contains(first) else { return nil }
            let bias = input(node, 2)
            if let bias, !isConstant(bias) { return nil }
            let attributes = LayerNormalizationAttributes(axes: Array(first..<rank), epsilon: floatAttribute(node, "epsilon", 1e-5),
                                                          center: bias != nil, scale: true)
            var parameters: [(source: String, role: ParameterRole, shape: [Int]?)] = [(scale, .gamma, nil)]
            if let bias { parameters.append((bias, .beta, nil)) }
            return MappedNode(op: .layerNormalization(attributes), inputs: [x], parameters: parameters)
        case "InstanceNormalization": return instanceNormalization(node, x)
        case "GroupNormalization": return groupNormalization(node, x)
        case "PRelu": return prelu(node, x)
        case "LRN":
            return single(.onnx(.localResponseNormalization(LocalResponseNormalizationAttributes(
                size: intAttribute(node, "size", 1), alpha: floatAttribute(node, "alpha", 1e-4),
                beta: floatAttribute(node, "beta", 0.75), bias: floatAttribute(node, "bias", 1)))))
        case "Gemm": return gemm(node, x)
        case "MatMul":
            guard let b = input(node, 1) else { return nil }
            if isConstant(b) { return MappedNode(op: .onnx(.matMul), inputs: [x], parameters: [(b, .kernel, nil)]) }
            return MappedNode(op: .onnx(.matMul), inputs: [x, b])
        case "Gather":
            let axis = intAttribute(node, "axis", 0)
            guard let indices = input(node, 1) else { return nil }
            if axis == 0, let table = constants[x], table.shape.count == 2, table.dtype == .float32, !isConstant(indices) {
                return MappedNode(op: .embedding(EmbeddingAttributes(inputDimension: table.shape[0], outputDimension: table.shape[1])),
                                  inputs: [indices], parameters: [(x, .embeddings, nil)])
            }
            return MappedNode(op: .onnx(.gather(GatherAttributes(axis: axis))), inputs: [x, indices])
        case "Dropout":
            if let training = input(node, 2), try numbers(training)?.integers.first != 0 { return nil }
            var rate = floatAttribute(node, "ratio", 0.5)
            if let ratio = input(node, 1) {
                guard let value = try numbers(ratio)?.reals.first else { return nil }
                rate = Float(value)
            }
            return single(.dropout(DropoutAttributes(rate: rate)))
        case "Identity": return single(.identity)
        case "RNN", "LSTM", "GRU": return try recurrent(node, x)
        default:
            if let activation = try activation(node, x) { return single(.activation(activation)) }
            return try mapTensorOp(node, x)
        }
    }

    /// Padding from `auto_pad` and `pads`; nil for SAME_LOWER, which the IR has no name for.
    func windowPadding(_ node: ONNXNode, rank: Int) -> Padding? {
        switch stringAttribute(node, "auto_pad", "NOTSET") {
        case "SAME_UPPER": return .same
        case "VALID": return .valid
        case "NOTSET", "": return .explicit(intsAttribute(node, "pads") ?? Array(repeating: 0, count: 2 * rank))
        default: return nil
        }
    }

    func convolution(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        guard let w = input(node, 1), let kernel = constants[w], kernel.shape.count >= 3 else { return nil }
        let rank = kernel.shape.count - 2
        let bias = input(node, 2)
        if let bias, !isConstant(bias) { return nil }
        guard let padding = windowPadding(node, rank: rank) else { return nil }
        let ones = Array(repeating: 1, count: rank)
        let attributes = ConvAttributes(
            filters: kernel.shape[0], kernelSize: intsAttribute(node, "kernel_shape") ?? Array(kernel.shape[2...]),
            strides: intsAttribute(node, "strides") ?? ones, dilations: intsAttribute(node, "dilations") ?? ones,
            padding: padding, groups: intAttribute(node, "group", 1), useBias: bias != nil, layout: .channelsFirst)
        var parameters: [(source: String, role: ParameterRole, shape: [Int]?)] = [(w, .kernel, nil)]
        if let bias { parameters.append((bias, .bias, nil)) }
        return MappedNode(op: .conv(attributes), inputs: [x], parameters: parameters)
    }

    func transposedConvolution(_ node: ONNXNode, _ x: String) throws -> MappedNode? {
        guard let w = input(node, 1), let kernel = constants[w], kernel.shape.count >= 3,
              node.attribute("output_shape") == nil, stringAttribute(node, "auto_pad", "NOTSET") == "NOTSET" else { return nil }
        let rank = kernel.shape.count - 2
        let bias = input(node, 2)
        if let bias, !isConstant(bias) { return nil }
        let ones = Array(repeating: 1, count: rank)
        let groups = intAttribute(node, "group", 1)
        let attributes = ConvTransposeAttributes(
            filters: kernel.shape[1] * groups, kernelSize: intsAttribute(node, "kernel_shape") ?? Array(kernel.shape[2...]),
            strides: intsAttribute(node, "strides") ?? ones, dilations: intsAttribute(node, "dilations") ?? ones,
            padding: .explicit(intsAttribute(node, "pads") ?? Array(repeating: 0, count: 2 * rank)),
            outputPadding: intsAttribute(node, "output_padding") ?? Array(repeating: 0, count: rank),
            useBias: bias != nil, activation: .linear, layout: .channelsFirst, groups: groups)
        var parameters: [(source: String, role: ParameterRole, shape: [Int]?)] = [(w, .kernel, nil)]
        if let bias { parameters.append((bias, .bias, nil)) }
        return MappedNode(op: .convTranspose(attributes), inputs: [x], parameters: parameters)
    }

    func pooling(_ node: ONNXNode, _ x: String) -> MappedNode? {
        guard let size = intsAttribute(node, "kernel_shape") else { return nil }
        let ones = Array(repeating: 1, count: size.count)
        let dilations = intsAttribute(node, "dilations") ?? ones
        // Dilated windows: max pooling only (AveragePool's dilations, opset 19, are not run).
        guard intAttribute(node, "storage_order", 0) == 0, dilations.count == size.count,
              dilations == ones || node.opType == "MaxPool",
              let padding = windowPadding(node, rank: size.count) else { return nil }
        let attributes = PoolAttributes(
            kind: node.opType == "MaxPool" ? .max : .average, poolSize: size, strides: intsAttribute(node, "strides") ?? ones,
            padding: padding, countIncludePad: intAttribute(node, "count_include_pad", 0) == 1,
            ceilMode: intAttribute(node, "ceil_mode", 0) == 1, layout: .channelsFirst, dilations: dilations)
        return MappedNode(op: .pool(attributes), inputs: [x])
    }

    /// PRelu's slope broadcasts against the input's trailing axes; the IR's `alpha` has the input's
    /// shape without the batch. Padding the slope's shape with leading ones keeps its bytes and meaning.
    func prelu(_ node: ONNXNode, _ x: String) -> MappedNode? {
        guard let slope = input(node, 1), let constant = constants[slope], let inputShape = shape(x), inputShape.rank >= 2,
              constant.shape.count <= inputShape.rank - 1 else { return nil }
        var padded = Array(repeating: 1, count: inputShape.rank - 1 - constant.shape.count) + constant.shape
        if opset < 7, constant.shape.count == 1, constant.elementCount > 1 {
            // PRelu before opset 7 runs a 1-D slope along the channel axis, not the last one.
            padded = constant.shape + Array(repeating: 1, count: inputShape.rank - 2)
        }
        for (offset, dimension) in padded.enumerated() where dimension != 1 && inputShape[offset + 1] != dimension {
            return nil
        }
        let shared = padded.enumerated().filter { $0.element == 1 && inputShape[$0.offset + 1] != 1 }.map { $0.offset + 1 }
        return MappedNode(op: .prelu(PReLUAttributes(sharedAxes: shared)), inputs: [x], parameters: [(slope, .alpha, padded)])
    }

    func gemm(_ node: ONNXNode, _ x: String) -> MappedNode? {
        // Before opset 7 `broadcast=0` required C to have the output's shape, which broadcasting leaves
        // as it is: the attribute changes nothing the IR's Gemm does.
        guard let b = input(node, 1) else { return nil }
        let attributes = GemmAttributes(alpha: floatAttribute(node, "alpha", 1), beta: floatAttribute(node, "beta", 1),
                                        transposeA: intAttribute(node, "transA", 0) == 1, transposeB: intAttribute(node, "transB", 0) == 1)
        var mapped = MappedNode(op: .onnx(.gemm(attributes)), inputs: [x])
        if let c = input(node, 2), !isConstant(c) {
            // A C computed at run time is the third input, so B is an operand too (a constant node).
            mapped.inputs += [b, c]
            return mapped
        }
        if isConstant(b) { mapped.parameters.append((b, .kernel, nil)) } else { mapped.inputs.append(b) }
        if let c = input(node, 2) { mapped.parameters.append((c, .bias, nil)) }
        return mapped
    }

    func activation(_ node: ONNXNode, _ x: String) throws -> Activation? {
        switch node.opType {
        case "Relu": return .plainRelu
        case "LeakyRelu": return .leakyRelu(alpha: floatAttribute(node, "alpha", 0.01))
        case "Elu": return .elu(alpha: floatAttribute(node, "alpha", 1))
        case "Celu": return .celu(alpha: floatAttribute(node, "alpha", 1))
        case "Selu":
            let alpha = floatAttribute(node, "alpha", 1.67326319217681884765625)
            let gamma = floatAttribute(node, "gamma", 1.05070102214813232421875)
            return abs(alpha - 1.6732632) < 1e-6 && abs(gamma - 1.050701) < 1e-6 ? .selu : nil
        case "Sigmoid": return .sigmoid
        case "HardSigmoid": return .hardSigmoid(alpha: floatAttribute(node, "alpha", 0.2), beta: floatAttribute(node, "beta", 0.5))
        case "HardSwish": return .hardSwish
        case "Tanh": return .tanh
        case "Softplus": return .softplus
        case "Softsign": return .softsign
        case "Exp": return .exponential
        case "Mish": return .mish
        case "Gelu": return .gelu(approximate: stringAttribute(node, "approximate", "none") == "tanh")
        case "Shrink":
            let lambd = floatAttribute(node, "lambd", 0.5), bias = floatAttribute(node, "bias", 0)
            return bias == 0 ? .hardShrink(threshold: lambd) : bias == lambd ? .softShrink(threshold: lambd) : nil
        case "Clip":
            guard let (minimum, maximum) = try clipBounds(node) else { return nil }
            if minimum == 0, known[x]?.dtype ?? .float32 == .float32 {
                return maximum.map { .relu(maxValue: $0, negativeSlope: 0, threshold: 0) } ?? .plainRelu
            }
            return nil
        case "Softmax", "LogSoftmax":
            let logarithm = node.opType == "LogSoftmax"
            let axis = intAttribute(node, "axis", opset >= 13 ? -1 : 1)
            if opset >= 13 { return logarithm ? .logSoftmax(axis: axis) : .softmax(axis: axis) }
            guard let shape = shape(x), let resolved = shape.normalizedAxis(axis),
                  shape.dimensions[(resolved + 1)...].allSatisfy({ $0 == 1 }) else { return nil }
            return logarithm ? .logSoftmax(axis: resolved) : .softmax(axis: resolved)
        default: return nil
        }
    }

    /// Clip's bounds: attributes before opset 11, optional constant inputs after. nil when not constant.
    func clipBounds(_ node: ONNXNode) throws -> (Float?, Float?)? {
        if opset < 11 {
            let minimum = node.attribute("min") != nil ? floatAttribute(node, "min", 0) : nil
            let maximum = node.attribute("max") != nil ? floatAttribute(node, "max", 0) : nil
            return (minimum, maximum)
        }
        var bounds: [Float?] = []
        for position in [1, 2] {
            guard let name = input(node, position) else { bounds.append(nil); continue }
            guard let value = try numbers(name)?.reals, value.count == 1 else { return nil }
            bounds.append(Float(value[0]))
        }
        return (bounds[0], bounds[1])
    }
}
