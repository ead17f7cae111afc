/// Shape rules of the layers with per-channel (or per-feature) weights that keep their input's
/// shape: the normalizations, LayerScale and PReLU. Each checks its weights against the axes it
/// normalizes or scales.
extension Context {
    func batchNormalization(_ a: BatchNormalizationAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 1) else { return nil }
        guard let axis = shape.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside \(shape)") }
        let channels = shape[axis]
        if a.scale { try expectParameter(.gamma, [channels]) }
        if a.center { try expectParameter(.beta, [channels]) }
        try expectParameter(.movingMean, [channels])
        try expectParameter(.movingVariance, [channels])
        return shape
    }

    /// A normalization whose per-channel operands (scale, bias, and for BatchNormalization mean and
    /// variance) are inputs: each a vector as long as the channel axis (1).
    func computedNormalization(operands: Int) throws -> Shape? {
        try requireInputs(1 + operands)
        guard let shape = try firstShape(minimumRank: 2) else { return nil }
        for (position, operand) in inputs.dropFirst().enumerated() {
            guard let operandShape = operand.shape else { continue }
            guard operandShape.rank == 1, operandShape[0] == nil || shape[1] == nil || operandShape[0] == shape[1] else {
                throw fail("operand \(position + 2) has shape \(operandShape), not one value per channel of \(shape)")
            }
        }
        return shape
    }

    /// The channel axis must exist beside the batch and its length split into the groups.
    func groupNormalization(_ a: GroupNormalizationAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 2) else { return nil }
        guard let axis = shape.normalizedAxis(a.axis), axis > 0 else { throw fail("axis \(a.axis) is not a channel axis of \(shape)") }
        if let channels = shape[axis], a.groupCount(channels: channels) == nil {
            throw fail("\(channels) channels do not split into \(a.groups) groups")
        }
        if a.scale { try expectParameter(.gamma, [shape[axis]]) }
        if a.center { try expectParameter(.beta, [shape[axis]]) }
        return shape
    }

    func layerNormalization(_ a: LayerNormalizationAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 1) else { return nil }
        let axes = try a.axes.map { axis -> Int in
            guard let resolved = shape.normalizedAxis(axis) else { throw fail("axis \(axis) is outside \(shape)") }
            return resolved
        }
        let expected = axes.sorted().map { shape[$0] }
        if a.scale { try expectParameterElements(.gamma, expected) }
        if a.center { try expectParameterElements(.beta, expected) }
        return shape
    }

    /// Statistics are optional (an adapted layer holds them, a configured one may not).
    func normalization(_ a: NormalizationAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 1) else { return nil }
        let kept = try a.axes.map { axis -> Int? in
            guard let resolved = shape.normalizedAxis(axis) else { throw fail("axis \(axis) is outside \(shape)") }
            return shape[resolved]
        }
        for role in [ParameterRole.mean, .variance] where parameterShapes[role] != nil {
            try expectParameterElements(role, kept)
        }
        return shape
    }

    func layerScale(_ a: LayerScaleAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 1) else { return nil }
        guard let axis = shape.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside \(shape)") }
        try expectParameterElements(.gamma, [shape[axis]])
        return shape
    }

    /// One slope per element of a sample, shared (length 1) along `sharedAxes`.
    func prelu(_ a: PReLUAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 2) else { return nil }
        var expected = Array(shape.dimensions.dropFirst())
        for axis in a.sharedAxes where axis >= 1 && axis <= expected.count { expected[axis - 1] = 1 }
        try expectParameter(.alpha, expected)
        return shape
    }
}
