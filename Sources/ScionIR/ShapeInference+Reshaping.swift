/// Shape rules of the ops that move, drop, add or select elements without computing new ones:
/// reshapes, axis permutations, squeezes, slicing, splitting, padding, gathering, resizing and
/// concatenation. ONNX forms follow the operator definitions at opset 13+; unknown dimensions stay
/// unknown rather than failing.
extension Context {
    func reshape(_ a: ReshapeAttributes) throws -> Shape? {
        if a.includesBatch { return try fullReshape(a) }
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 1) else { return nil }
        let total = Shape.product(Array(shape.dimensions.dropFirst()))
        let unknownCount = a.targetShape.filter { $0 == -1 }.count
        guard unknownCount <= 1, a.targetShape.allSatisfy({ $0 == -1 || $0 > 0 }) else {
            throw fail("target shape \(a.targetShape) is not valid")
        }
        let known = a.targetShape.filter { $0 != -1 }.checkedProduct ?? 0
        var dimensions: [Int?] = a.targetShape.map { $0 }
        if let total {
            if unknownCount == 1 {
                guard known > 0, total % known == 0 else {
                    throw fail("cannot reshape \(shape) to \(a.targetShape)")
                }
                dimensions = a.targetShape.map { $0 == -1 ? total / known : $0 }
            } else if known != total {
                throw fail("cannot reshape \(shape) (\(total) elements per sample) to \(a.targetShape)")
            }
        } else if unknownCount == 1 {
            dimensions = a.targetShape.map { $0 == -1 ? nil : $0 }
        }
        return Shape([shape[0]] + dimensions)
    }

    /// ONNX Reshape: 0 copies the input's dimension (unless `allowZero`), one -1 is inferred.
    func fullReshape(_ a: ReshapeAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape() else { return nil }
        guard a.targetShape.filter({ $0 == -1 }).count <= 1, a.targetShape.allSatisfy({ $0 >= -1 }) else {
            throw fail("target shape \(a.targetShape) is not valid")
        }
        var dimensions: [Int?] = try a.targetShape.enumerated().map { index, value in
            if value == 0 && !a.allowZero {
                guard index < shape.rank else { throw fail("target shape \(a.targetShape) copies a dimension \(shape) lacks") }
                return shape[index]
            }
            return value == -1 ? nil : value
        }
        if let inferred = a.targetShape.firstIndex(of: -1) {
            var others = dimensions
            others.remove(at: inferred)
            if let total = shape.elementCount, let known = Shape.product(others), known > 0 {
                guard total % known == 0 else { throw fail("cannot reshape \(shape) to \(a.targetShape)") }
                dimensions[inferred] = total / known
            } else if a.targetShape.first == 0, !a.allowZero, let perSample = Shape.product(Array(shape.dimensions.dropFirst())),
                      let known = Shape.product(Array(others.dropFirst())), known > 0 {
                // The batch is copied (0), so the inferred length is what is left of one sample, whatever
                // the batch (torch's GroupNorm reshapes to [0, groups, -1] under a dynamic batch).
                guard perSample % known == 0 else { throw fail("cannot reshape \(shape) to \(a.targetShape)") }
                dimensions[inferred] = perSample / known
            }
        } else if let total = shape.elementCount, let known = Shape.product(dimensions), total != known {
            throw fail("cannot reshape \(shape) to \(a.targetShape)")
        }
        return Shape(dimensions)
    }

    func flatten(_ a: FlattenAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 1) else { return nil }
        guard a.axis >= 0, a.axis <= shape.rank else { throw fail("flatten axis \(a.axis) is outside \(shape)") }
        return Shape([Shape.product(Array(shape.dimensions.prefix(a.axis))),
                      Shape.product(Array(shape.dimensions.dropFirst(a.axis)))])
    }

    /// Keras's Permute: the batch axis stays, `dimensions` count from 1.
    func permute(_ a: PermuteAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape(minimumRank: 1) else { return nil }
        let sorted = a.dimensions.sorted()
        guard a.dimensions.count == shape.rank - 1, sorted == Array(1..<shape.rank) else {
            throw fail("permutation \(a.dimensions) does not fit input \(shape)")
        }
        return Shape([shape[0]] + a.dimensions.map { shape[$0] })
    }

    func transpose(_ a: TransposeAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape() else { return nil }
        guard a.permutation.sorted() == Array(0..<shape.rank) else {
            throw fail("permutation \(a.permutation) does not fit input \(shape)")
        }
        return Shape(a.permutation.map { shape[$0] })
    }

    func squeeze(_ a: AxesAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape() else { return nil }
        let axes = try resolve(a.axes, rank: shape.rank)
        for axis in axes where shape[axis].map({ $0 != 1 }) ?? false {
            throw fail("cannot squeeze axis \(axis) of \(shape): it is not 1")
        }
        return Shape(shape.dimensions.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }

    func unsqueeze(_ a: AxesAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape() else { return nil }
        let rank = shape.rank + a.axes.count
        let axes = try resolve(a.axes, rank: rank)
        var remaining = shape.dimensions.makeIterator()
        return Shape((0..<rank).map { axes.contains($0) ? 1 : (remaining.next() ?? nil) })
    }

    func slice(_ a: SliceAttributes) throws -> Shape? {
        try requireInputs(1)
        guard var shape = try firstShape() else { return nil }
        for (index, axis) in try resolve(a.axes, rank: shape.rank).enumerated() {
            guard let length = shape[axis] else { continue }
            let step = a.steps[index]
            guard step != 0 else { throw fail("slice step is 0") }
            func clamp(_ value: Int, _ low: Int, _ high: Int) -> Int { Swift.min(Swift.max(value, low), high) }
            var start = a.starts[index] < 0 ? a.starts[index] + length : a.starts[index]
            var end = a.ends[index] < 0 ? a.ends[index] + length : a.ends[index]
            if step > 0 {
                start = clamp(start, 0, length); end = clamp(end, 0, length)
                shape[axis] = Swift.max(0, (end - start + step - 1) / step)
            } else {
                start = clamp(start, 0, length - 1); end = clamp(end, -1, length - 1)
                shape[axis] = Swift.max(0, (start - end - step - 1) / -step)
            }
        }
        return shape
    }

    func split(_ a: SplitAttributes) throws -> [Shape?] {
        try requireInputs(1)
        guard let shape = try firstShape() else { return Array(repeating: nil, count: a.parts) }
        guard let axis = shape.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside \(shape)") }
        if let length = shape[axis], a.sizes.reduce(0, +) != length, !a.sizes.isEmpty {
            throw fail("split sizes \(a.sizes) do not add up to \(length)")
        }
        let sizes: [Int?] = shape[axis].map { a.sizes(alongLength: $0) } ?? (a.sizes.isEmpty ? Array(repeating: nil, count: a.parts) : a.sizes)
        return sizes.map { size in
            var part = shape
            part[axis] = size
            return part
        }
    }

    func pad(_ a: PadAttributes) throws -> Shape? {
        try requireInputs(1)
        guard var shape = try firstShape() else { return nil }
        guard a.pads.count == 2 * shape.rank else { throw fail("has \(a.pads.count) pads for rank \(shape.rank)") }
        for axis in 0..<shape.rank {
            guard let length = shape[axis] else { continue }
            let total = try? checkedSum(length, a.pads[axis], a.pads[axis + shape.rank])
            guard let total, total >= 0 else { throw fail("pads \(a.pads) do not fit shape \(shape)") }
            shape[axis] = total
        }
        return shape
    }

    func gather(_ a: GatherAttributes) throws -> Shape? {
        try requireInputs(2)
        guard let data = inputs[0].shape, let indices = inputs[1].shape else { return nil }
        guard let axis = data.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside \(data)") }
        return Shape(Array(data.dimensions[..<axis]) + indices.dimensions + Array(data.dimensions[(axis + 1)...]))
    }

    func resize(_ a: ResizeAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape() else { return nil }
        if let sizes = a.sizes {
            guard sizes.count == shape.rank else { throw fail("resize sizes \(sizes) do not fit \(shape)") }
            return Shape(sizes.map { $0 })
        }
        guard let scales = a.scales, scales.count == shape.rank else { throw fail("resize scales do not fit \(shape)") }
        return Shape(zip(shape.dimensions, scales).map { dimension, scale in
            dimension.map { Int((Float($0) * scale).rounded(.down)) }
        })
    }

    func concatenate(axis: Int) throws -> Shape? {
        guard let first = inputs.first else { throw fail("has no input") }
        guard var result = first.shape else { return nil }
        guard let resolved = result.normalizedAxis(axis) else { throw fail("axis \(axis) is outside \(result)") }
        var total: Int? = 0
        for input in inputs {
            guard let shape = input.shape else { return nil }
            guard shape.rank == result.rank else { throw fail("inputs have different ranks: \(result) and \(shape)") }
            for dimension in 0..<shape.rank where dimension != resolved {
                if let a = result[dimension], let b = shape[dimension], a != b {
                    throw fail("inputs differ outside the concatenation axis: \(result) and \(shape)")
                }
                if result[dimension] == nil { result[dimension] = shape[dimension] }
            }
            total = total.flatMap { sum in shape[resolved].map { sum + $0 } }
        }
        result[resolved] = total
        return result
    }

    func resolve(_ axes: [Int], rank: Int) throws -> [Int] {
        try axes.map { axis in
            let resolved = axis < 0 ? axis + rank : axis
            guard (0..<rank).contains(resolved) else { throw fail("axis \(axis) is outside rank \(rank)") }
            return resolved
        }
    }
}

/// Ops whose lengths come from a tensor computed at run time (an exporter's shape arithmetic): the
/// rank is known from the operand's length, the lengths are not, except what the input fixes.
extension Context {
    /// Shape: a vector with one length per reported axis.
    func shapeOf(_ a: ShapeOfAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let shape = try firstShape() else { return nil }
        return Shape([a.range(rank: shape.rank).count])
    }

    /// The length of the vector operand at `position` (a shape or repeats), when known.
    func operandLength(_ position: Int) throws -> Int? {
        guard let operand = inputs[position].shape else { return nil }
        guard operand.rank == 1 else { throw fail("its operand \(position + 1) must be a vector, got shape \(operand)") }
        return operand[0]
    }

    /// Expand: numpy broadcasting of the input to the computed shape; a length the input has (not 1)
    /// survives broadcasting, so it stays known.
    func expand() throws -> Shape? {
        try requireInputs(2)
        guard let shape = try firstShape(), let length = try operandLength(1) else { return nil }
        let rank = max(shape.rank, length)
        let aligned = Array(repeating: 1, count: rank - shape.rank) + shape.dimensions
        return Shape(aligned.map { $0 == 1 ? nil : $0 })
    }

    /// Tile: the input's rank, each length multiplied by a computed count.
    func tile() throws -> Shape? {
        try requireInputs(2)
        guard let shape = try firstShape() else { return nil }
        if let length = try operandLength(1), length != shape.rank {
            throw fail("repeats has \(length) entries for a rank-\(shape.rank) input")
        }
        return Shape(Array(repeating: nil, count: shape.rank))
    }

    /// Reshape to a computed shape: as many axes as the shape operand has entries.
    func computedReshape() throws -> Shape? {
        try requireInputs(2)
        guard let length = try operandLength(1) else { return nil }
        return Shape(Array(repeating: nil, count: length))
    }
}
