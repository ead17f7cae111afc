extension Context {
    /// MultiHeadAttention: the query's shape with its last axis replaced by `output_shape` (or
    /// kept); the value and key have the query's rank, the batch and every non-attended axis of the
    /// query; the projections' kernels have Keras's shapes (`[D, heads, key_dim]`...).
    func multiHeadAttention(_ a: MultiHeadAttentionAttributes) throws -> Shape? {
        try requireInputs(a.inputCount)
        guard a.numHeads > 0, a.keyDim > 0, a.valueDim > 0 else {
            throw fail("needs positive num_heads, key_dim and value_dim, got \(a.numHeads), \(a.keyDim), \(a.valueDim)")
        }
        if let lengths = a.outputShape, lengths.isEmpty || lengths.contains(where: { $0 <= 0 }) {
            throw fail("output_shape \(lengths) needs positive lengths")
        }
        let heads = a.numHeads
        // Parameters whose shapes do not depend on the inputs' (checked even when those are unknown).
        if a.useBias {
            try expectParameter(.sublayer("query_dense", .bias), [heads, a.keyDim])
            try expectParameter(.sublayer("key_dense", .bias), [heads, a.keyDim])
            try expectParameter(.sublayer("value_dense", .bias), [heads, a.valueDim])
        }
        guard let query = inputs[0].shape else { return nil }
        guard let axes = a.resolvedAttentionAxes(rank: query.rank) else {
            throw fail("attention_axes \(a.attentionAxes.map { "\($0)" } ?? "default") do not fit a query of shape \(query)")
        }
        let queryLength = query[query.rank - 1]
        try expectParameter(.sublayer("query_dense", .kernel), [queryLength, heads, a.keyDim])
        for (role, position, width) in [("value_dense", 1, a.valueDim), ("key_dense", a.keyInput, a.keyDim)] {
            guard let shape = inputs[position].shape else { continue }
            guard shape.rank == query.rank else {
                throw fail("its \(role == "value_dense" ? "value" : "key") has shape \(shape), not the query's rank \(query.rank)")
            }
            // Only the attended axes may differ in length from the query's (the keys' positions).
            for axis in 0..<(query.rank - 1) where !axes.contains(axis) {
                if let q = query[axis], let k = shape[axis], q != k, axis > 0 {
                    throw fail("its \(role.dropLast(6)) has shape \(shape) but the query \(query): axis \(axis) is not attended")
                }
            }
            try expectParameter(.sublayer(role, .kernel), [shape[shape.rank - 1], heads, width])
        }
        let output = a.outputShape.map { $0.map(Optional.init) } ?? [queryLength]
        try expectParameter(.sublayer("output_dense", .kernel), [heads, a.valueDim] + output)
        if a.useBias { try expectParameter(.sublayer("output_dense", .bias), output) }
        // The scores are [B, other axes..., heads, query positions..., key positions...]; Keras
        // broadcasts the mask to them after inserting the heads axis.
        if let mask = a.maskInput, let shape = inputs[mask].shape, shape.rank > query.rank + axes.count - 1 {
            throw fail("its attention mask has shape \(shape), more axes than the scores it masks")
        }
        return Shape(query.dimensions.dropLast() + output)
    }
}

extension Context {
    /// EinsumDense: the output's axes from the input and the kernel as the equation says; Keras's
    /// `output_shape` must agree where it gives a length; the bias spans the output from its first
    /// bias axis.
    func einsumDense(_ a: EinsumDenseAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let input = try firstShape(minimumRank: 1) else { return nil }
        guard let plan = EinsumPlan(a.equation, inputRank: input.rank) else {
            throw fail("equation '\(a.equation)' is not one product of an input of rank \(input.rank) and a kernel")
        }
        guard let kernel = parameterShapes[.kernel] else { throw parameterFailure("is missing its 'kernel' weights") }
        guard kernel.count == plan.kernel.count else {
            throw parameterFailure("weight 'kernel' has shape \(kernel) but equation '\(a.equation)' needs \(plan.kernel.count) axes")
        }
        for letter in plan.contracted {
            guard let x = plan.input.firstIndex(of: letter), let w = plan.kernel.firstIndex(of: letter) else { continue }
            if let length = input[x], length != kernel[w] {
                throw parameterFailure("weight 'kernel' has shape \(kernel) but the input's axis '\(letter)' has length \(length)")
            }
        }
        let output = plan.outputLengths(input: input.dimensions, kernel: kernel)
        // Keras's output_shape leaves out the batch; where it names a length, it is the one.
        if a.outputShape.count == output.count - 1 {
            for (given, found) in zip(a.outputShape, output.dropFirst()) {
                if let given, let found, given != found { throw fail("output_shape \(a.outputShape) does not match \(output)") }
            }
        }
        if let axes = a.biasAxes {
            guard let shape = plan.biasShape(axes, output: output) else { throw fail("bias_axes '\(axes)' are not output axes") }
            try expectParameter(.bias, shape)
        }
        return Shape(output)
    }
}

extension Context {
    /// Attention and AdditiveAttention: `[B, Tq, dim]` query, `[B, Tv, value dim]` value, a key of
    /// the value's length and the query's dim; the output is `[B, Tq, value dim]`.
    func attention(_ a: AttentionAttributes) throws -> Shape? {
        try requireInputs(a.hasKey ? 3 : 2)
        let dim = inputs[0].shape.flatMap { $0.rank == 3 ? $0[2] : nil }
        if a.useScale { try expectParameter(.other("scale"), a.score == .additive ? [dim] : []) }
        if a.score == .concat { try expectParameter(.other("concat_score_weight"), []) }
        guard let query = inputs[0].shape, let value = inputs[1].shape else { return nil }
        let key = inputs[a.hasKey ? 2 : 1].shape ?? value
        guard query.rank == 3, value.rank == 3, key.rank == 3 else {
            throw fail("needs a query, value and key of rank 3, got \(query), \(value) and \(key)")
        }
        if let d = query[2], let k = key[2], d != k { throw fail("query \(query) and key \(key) differ in their last axis") }
        if let v = value[1], let k = key[1], v != k { throw fail("value \(value) and key \(key) differ in length") }
        return Shape([query[0], query[1], value[2]])
    }
}
