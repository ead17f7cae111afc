/// Output shapes and types of each op, checked against the op's parameters. One exhaustive switch.
public enum ShapeInference {
    /// Shapes and types of `node`'s outputs given its inputs; `parameterShapes` maps roles
    /// (`kernel`, `bias`...) to shapes.
    public static func outputs(of node: Node, inputs: [ValueInfo], parameterShapes: [ParameterRole: [Int]]) throws
        -> [ValueInfo]
    {
        var context = Context(node: node, inputs: inputs, parameterShapes: parameterShapes)
        let shapes = try context.infer()
        let dtype = context.outputType
        return shapes.enumerated().map { offset, shape in
            ValueInfo(name: offset < node.outputs.count ? node.outputs[offset] : "", shape: shape, dtype: dtype)
        }
    }
}

/// Per-node state of shape inference: the node, its input shapes and its parameter shapes.
struct Context {
    let node: Node
    let inputs: [ValueInfo]
    let parameterShapes: [ParameterRole: [Int]]

    init(node: Node, inputs: [ValueInfo], parameterShapes: [ParameterRole: [Int]]) {
        self.node = node; self.inputs = inputs; self.parameterShapes = parameterShapes
    }

    var outputType: DType {
        if case .embedding = node.op { return .float32 }
        if let type = onnxOutputType { return type }
        return inputs.first?.dtype ?? .float32
    }

    func fail(_ reason: String) -> IRError { IRError(node.name, reason, kind: .shape) }

    func parameterFailure(_ reason: String) -> IRError { IRError(node.name, reason, kind: .parameter) }

    /// The first input's shape; nil when unknown (then every output is unknown too).
    func firstShape(minimumRank: Int = 0) throws -> Shape? {
        guard let first = inputs.first else { throw fail("has no input") }
        guard let shape = first.shape else { return nil }
        if shape.rank < minimumRank {
            throw fail("needs an input of rank \(minimumRank) or more, got shape \(shape)")
        }
        return shape
    }

    func requireInputs(_ count: Int) throws {
        if inputs.count != count { throw fail("needs \(count) input(s), got \(inputs.count)") }
    }

    /// Checks that parameter `role` exists with `expected` shape (nil entries match anything).
    func expectParameter(_ role: ParameterRole, _ expected: [Int?]) throws {
        guard let actual = parameterShapes[role] else { throw parameterFailure("is missing its '\(role)' weights") }
        let matches = actual.count == expected.count
            && zip(actual, expected).allSatisfy { pair in pair.1.map { $0 == pair.0 } ?? true }
        if !matches {
            let wanted = "[" + expected.map { $0.map(String.init) ?? "?" }.joined(separator: ", ") + "]"
            throw parameterFailure("weight '\(role)' has shape \(actual) but the layer needs \(wanted)")
        }
    }

    func expectBias(_ used: Bool, _ count: Int?) throws {
        if used { try expectParameter(.bias, [count]) }
    }

    mutating func infer() throws -> [Shape?] {
        switch node.op {
        case .dense(let a):
            try requireInputs(1)
            guard var shape = try firstShape(minimumRank: 2) else { return [nil] }
            try expectParameter(.kernel, [shape[shape.rank - 1], a.units])
            try expectBias(a.useBias, a.units)
            shape[shape.rank - 1] = a.units
            return [shape]
        case .conv(let a):
            return [try convolution(a)]
        case .depthwiseConv(let a):
            return [try depthwise(a, checkBias: true)]
        case .separableConv(let a):
            return [try separable(a)]
        case .convTranspose(let a):
            return [try transposedConvolution(a)]
        case .pool(let a):
            return [try pooling(a)]
        case .globalPool(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: a.rank + 2) else { return [nil] }
            let channels = a.layout == .channelsLast ? shape[shape.rank - 1] : shape[1]
            if a.keepDimensions {
                var result = shape
                for axis in spatialAxes(rank: shape.rank, layout: a.layout) { result[axis] = 1 }
                return [result]
            }
            return [Shape([shape[0], channels])]
        case .batchNormalization(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 1) else { return [nil] }
            guard let axis = shape.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside \(shape)") }
            let channels = shape[axis]
            if a.scale { try expectParameter(.gamma, [channels]) }
            if a.center { try expectParameter(.beta, [channels]) }
            try expectParameter(.movingMean, [channels])
            try expectParameter(.movingVariance, [channels])
            return [shape]
        case .groupNormalization(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 2) else { return [nil] }
            guard let axis = shape.normalizedAxis(a.axis), axis > 0 else { throw fail("axis \(a.axis) is not a channel axis of \(shape)") }
            if let channels = shape[axis], a.groupCount(channels: channels) == nil {
                throw fail("\(channels) channels do not split into \(a.groups) groups")
            }
            if a.scale { try expectParameter(.gamma, [shape[axis]]) }
            if a.center { try expectParameter(.beta, [shape[axis]]) }
            return [shape]
        case .layerNormalization(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 1) else { return [nil] }
            let axes = try a.axes.map { axis -> Int in
                guard let resolved = shape.normalizedAxis(axis) else { throw fail("axis \(axis) is outside \(shape)") }
                return resolved
            }
            let expected = axes.sorted().map { shape[$0] }
            if a.scale { try expectParameterElements(.gamma, expected) }
            if a.center { try expectParameterElements(.beta, expected) }
            return [shape]
        case .prelu(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 2) else { return [nil] }
            var expected = Array(shape.dimensions.dropFirst())
            for axis in a.sharedAxes where axis >= 1 && axis <= expected.count { expected[axis - 1] = 1 }
            try expectParameter(.alpha, expected)
            return [shape]
        case .activation, .dropout, .stochasticDepth, .identity:
            try requireInputs(1)
            return [try firstShape()]
        case .rescaling:
            try requireInputs(1)
            return [try firstShape()]
        case .normalization(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 1) else { return [nil] }
            let kept = try a.axes.map { axis -> Int? in
                guard let resolved = shape.normalizedAxis(axis) else { throw fail("axis \(axis) is outside \(shape)") }
                return shape[resolved]
            }
            for role in [ParameterRole.mean, .variance] where parameterShapes[role] != nil {
                try expectParameterElements(role, kept)
            }
            return [shape]
        case .layerScale(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 1) else { return [nil] }
            guard let axis = shape.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside \(shape)") }
            try expectParameterElements(.gamma, [shape[axis]])
            return [shape]
        case .transpose(let a):
            try requireInputs(1)
            guard let shape = try firstShape() else { return [nil] }
            guard a.permutation.sorted() == Array(0..<shape.rank) else {
                throw fail("permutation \(a.permutation) does not fit input \(shape)")
            }
            return [Shape(a.permutation.map { shape[$0] })]
        case .flatten(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 1) else { return [nil] }
            guard a.axis >= 0, a.axis <= shape.rank else { throw fail("flatten axis \(a.axis) is outside \(shape)") }
            return [Shape([Shape.product(Array(shape.dimensions.prefix(a.axis))),
                           Shape.product(Array(shape.dimensions.dropFirst(a.axis)))])]
        case .reshape(let a):
            return [try reshape(a)]
        case .permute(let a):
            try requireInputs(1)
            guard let shape = try firstShape(minimumRank: 1) else { return [nil] }
            let sorted = a.dimensions.sorted()
            guard a.dimensions.count == shape.rank - 1, sorted == Array(1..<shape.rank) else {
                throw fail("permutation \(a.dimensions) does not fit input \(shape)")
            }
            return [Shape([shape[0]] + a.dimensions.map { shape[$0] })]
        case .zeroPadding(let a), .cropping(let a):
            return [try spatialPadding(a)]
        case .upSampling(let a):
            try requireInputs(1)
            guard var shape = try firstShape(minimumRank: a.size.count + 2) else { return [nil] }
            for (axis, factor) in zip(spatialAxes(rank: shape.rank, layout: a.layout), a.size) {
                shape[axis] = shape[axis].map { $0 * factor }
            }
            return [shape]
        case .elementwise(let operation):
            if inputs.count < 2 && operation != .add && operation != .multiply {
                throw fail("needs at least 2 inputs, got \(inputs.count)")
            }
            return [try broadcastInputs()]
        case .scaledResidual:
            try requireInputs(2)
            return [try broadcastInputs()]
        case .concatenate(let a):
            return [try concatenate(axis: a.axis)]
        case .embedding(let a):
            try requireInputs(1)
            try expectParameter(.embeddings, [a.inputDimension, a.outputDimension])
            guard let shape = try firstShape() else { return [nil] }
            return [Shape(shape.dimensions + [a.outputDimension])]
        case .opaque(let a):
            return a.outputShapes ?? Array(repeating: nil, count: max(node.outputs.count, 1))
        case .constant, .gemm, .matMul, .unary, .comparison, .select, .reduce, .gather, .cast, .squeeze, .unsqueeze,
             .slice, .split, .pad, .clip, .resize, .localResponseNormalization, .coercedSoftmax:
            return try inferImported()
        }
    }

    /// Checks a parameter's element count (Keras stores some statistics with broadcast shapes).
    func expectParameterElements(_ role: ParameterRole, _ dimensions: [Int?]) throws {
        guard let actual = parameterShapes[role] else { throw parameterFailure("is missing its '\(role)' weights") }
        guard let expected = Shape.product(dimensions) else { return }
        if actual.checkedProduct != expected {
            throw parameterFailure("weight '\(role)' has shape \(actual) but the layer needs \(expected) elements")
        }
    }
}
