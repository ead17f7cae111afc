/// Shape rules of the index, mask, scatter and gather ops torch's exporters write (Range,
/// ConstantOfShape, Trilu, a Slice with computed bounds, ScatterND, GatherElements, Einsum). Lengths
/// computed at run time are unknown here; ranks are known whenever the operands' are.
extension Context {
    /// Range: one axis, its length computed from the scalars.
    func range() throws -> Shape? {
        try requireInputs(3)
        for input in inputs {
            if let shape = input.shape, shape.rank != 0 { throw fail("its start, limit and delta must be scalars, got shape \(shape)") }
        }
        return Shape([nil])
    }

    /// ConstantOfShape: as many axes as its shape operand has entries.
    func constantOfShape() throws -> Shape? {
        try requireInputs(1)
        guard let length = try operandLength(0) else { return nil }
        return Shape(Array(repeating: nil, count: length))
    }

    /// Trilu keeps its input's shape; it needs the two axes of a matrix.
    func trilu(_ a: TriluAttributes) throws -> Shape? {
        try requireInputs(a.k == nil ? 2 : 1)
        return try firstShape(minimumRank: 2)
    }

    /// A Slice with computed bounds keeps the rank; the axes it slices (when known) get unknown lengths.
    func computedSlice(_ a: ComputedSliceAttributes) throws -> Shape? {
        try requireInputs(3 + (a.hasAxes ? 1 : 0) + (a.hasSteps ? 1 : 0))
        guard let shape = try firstShape() else { return nil }
        guard let axes = a.knownAxes else { return Shape(Array(repeating: nil, count: shape.rank)) }
        var dimensions = shape.dimensions
        for axis in axes {
            guard let resolved = shape.normalizedAxis(axis) else { throw fail("slices axis \(axis) of a rank-\(shape.rank) value") }
            dimensions[resolved] = nil
        }
        return Shape(dimensions)
    }

    /// A Pad with computed pads keeps the rank; the axes it pads (every axis unless named) get
    /// unknown lengths.
    func computedPad(_ a: ComputedPadAttributes) throws -> Shape? {
        try requireInputs(a.value == nil ? 3 : 2)
        guard let shape = try firstShape() else { return nil }
        var dimensions = shape.dimensions
        for axis in a.axes ?? Array(0..<shape.rank) {
            guard let resolved = shape.normalizedAxis(axis) else { throw fail("pads axis \(axis) of a rank-\(shape.rank) value") }
            dimensions[resolved] = nil
        }
        return Shape(dimensions)
    }

    /// ScatterND: the data's shape; each index row names a slice of the data, updates fill them.
    func scatterND() throws -> Shape? {
        try requireInputs(3)
        guard let data = try firstShape(minimumRank: 1) else { return nil }
        if let indices = inputs[1].shape, let depth = indices.dimensions.last ?? nil {
            guard indices.rank >= 1, depth <= data.rank else {
                throw fail("indices of shape \(indices) index more axes than the data's \(data.rank)")
            }
            if let updates = inputs[2].shape, updates.rank != indices.rank - 1 + data.rank - depth {
                throw fail("updates of shape \(updates) do not fit indices \(indices) into data \(data)")
            }
        }
        return data
    }

    /// GatherND: the indices' leading axes, then the data's axes after the batch and indexed ones.
    func gatherND(_ a: GatherNDAttributes) throws -> Shape? {
        try requireInputs(2)
        guard let data = try firstShape(minimumRank: 1), let indices = inputs[1].shape else { return nil }
        let batch = a.batchDimensions
        guard let depth = indices.dimensions.last ?? nil, batch >= 0, indices.rank >= batch + 1, depth >= 1, data.rank >= batch + depth else {
            throw fail("indices of shape \(indices) with \(batch) batch axes do not index data of shape \(data)")
        }
        return Shape(Array(indices.dimensions.dropLast()) + Array(data.dimensions[(batch + depth)...]))
    }

    /// GatherElements: the indices' shape, of the data's rank.
    func gatherElements(_ a: GatherAttributes) throws -> Shape? {
        try requireInputs(2)
        guard let data = try firstShape(minimumRank: 1), let indices = inputs[1].shape else { return inputs[1].shape }
        guard indices.rank == data.rank, data.normalizedAxis(a.axis) != nil else {
            throw fail("indices of shape \(indices) and axis \(a.axis) do not fit data of shape \(data)")
        }
        return indices
    }

    /// Einsum: the output letters' lengths, each read from an operand that has the letter.
    func einsum(_ a: EinsumAttributes) throws -> Shape? {
        guard let terms = a.terms else {
            throw fail("equation '\(a.equation)' is not one Scion runs (one or two operands of distinct letters, an explicit output, no ellipsis)")
        }
        try requireInputs(terms.operands.count)
        var lengths: [Character: Int] = [:]
        for (term, input) in zip(terms.operands, inputs) {
            guard let shape = input.shape else { continue }
            guard shape.rank == term.count else { throw fail("operand '\(String(term))' has shape \(shape)") }
            for (letter, length) in zip(term, shape.dimensions) {
                guard let length else { continue }
                if let known = lengths[letter], known != length, known != 1, length != 1 {
                    throw fail("letter '\(letter)' has lengths \(known) and \(length)")
                }
                lengths[letter] = max(lengths[letter] ?? length, length)
            }
        }
        return Shape(terms.output.map { lengths[$0] })
    }
}
