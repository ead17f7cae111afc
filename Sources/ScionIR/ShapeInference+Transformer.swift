/// Shape rules of ONNX's transformer ops (Attention, RMSNormalization, RotaryEmbedding) and of
/// ArgMax/ArgMin and CumSum.
extension Context {
    /// Attention: Y `[B, Hq, Sq, Dv]` (3-D: `[B, Sq, Hq·Dv]`), present key and value
    /// `[B, Hkv, P + Skv, D]`, the scores `[B, Hq, Sq, P + Skv]`, as many as the node names.
    func scaledDotProductAttention(_ a: ScaledDotProductAttentionAttributes) throws -> [Shape?] {
        try requireInputs(a.inputCount)
        guard (1...4).contains(node.outputs.count) else { throw fail("has \(node.outputs.count) outputs; Attention has 1 to 4") }
        let unknown = [Shape?](repeating: nil, count: node.outputs.count)
        if a.sequenceFirst, a.hasPast || node.outputs.count > 1 {
            throw fail("in keras.ops.dot_product_attention's layout has no cache and one output")
        }
        guard var q = inputs[0].shape, var k = inputs[1].shape, var v = inputs[2].shape else { return unknown }
        if a.sequenceFirst {
            // [B, S, heads, size]: the rule below reads ONNX's [B, heads, S, size].
            guard q.rank == 4, k.rank == 4, v.rank == 4 else { throw fail("in keras.ops.dot_product_attention's layout needs 4-D Q, K and V, got \(q), \(k) and \(v)") }
            (q, k, v) = (Shape([q[0], q[2], q[1], q[3]]), Shape([k[0], k[2], k[1], k[3]]), Shape([v[0], v[2], v[1], v[3]]))
        }
        guard q.rank == k.rank, k.rank == v.rank, q.rank == 3 || q.rank == 4 else {
            throw fail("needs Q, K and V of rank 3 or 4 alike, got \(q), \(k) and \(v)")
        }
        let batch = q[0], queryLength = q.rank == 3 ? q[1] : q[2]
        let queryHeads: Int?, keyValueHeads: Int?, keyLength: Int?, keySize: Int?, valueSize: Int?
        if q.rank == 3 {
            guard let qh = a.queryHeads, let kvh = a.keyValueHeads, qh > 0, kvh > 0 else {
                throw fail("has 3-D inputs but no q_num_heads and kv_num_heads")
            }
            for (name, shape, heads) in [("Q", q, qh), ("K", k, kvh), ("V", v, kvh)] {
                if let width = shape[2], width % heads != 0 { throw fail("\(name) of shape \(shape) does not split into \(heads) heads") }
            }
            queryHeads = qh; keyValueHeads = kvh
            keyLength = k[1]; keySize = k[2].map { $0 / kvh }; valueSize = v[2].map { $0 / kvh }
        } else {
            queryHeads = q[1]; keyValueHeads = k[1]
            keyLength = k[2]; keySize = k[3]; valueSize = v[3]
        }
        if let qh = queryHeads, let kvh = keyValueHeads, qh % kvh != 0 {
            throw fail("has \(qh) query heads, not a multiple of its \(kvh) key/value heads")
        }
        var totalLength = keyLength
        if let past = a.pastPosition {
            for offset in 0..<2 {
                guard let cached = inputs[past + offset].shape else { totalLength = nil; continue }
                guard cached.rank == 4 else { throw fail("needs a 4-D past \(offset == 0 ? "key" : "value"), got \(cached)") }
            }
            if let known = totalLength, let cached = inputs[past].shape?[2] { totalLength = known + cached } else { totalLength = nil }
        }
        let y = q.rank == 3 ? Shape([batch, queryLength, Shape.product([queryHeads, valueSize])])
            : a.sequenceFirst ? Shape([batch, queryLength, queryHeads, valueSize]) : Shape([batch, queryHeads, queryLength, valueSize])
        let all: [Shape?] = [y, Shape([batch, keyValueHeads, totalLength, keySize]), Shape([batch, keyValueHeads, totalLength, valueSize]),
                             Shape([batch, queryHeads, queryLength, totalLength])]
        return Array(all.prefix(node.outputs.count))
    }

    /// RMSNormalization keeps its input's shape; a scale must broadcast against the normalized axes.
    func rmsNormalization() throws -> Shape? {
        guard (1...2).contains(inputs.count) else { throw fail("needs the input and, when computed, the scale") }
        return try firstShape(minimumRank: 1)
    }

    /// RotaryEmbedding keeps its input's shape (3-D or 4-D).
    func rotaryEmbedding(_ a: RotaryEmbeddingAttributes) throws -> Shape? {
        try requireInputs(a.hasPositionIDs ? 4 : 3)
        guard let x = try firstShape() else { return nil }
        guard x.rank == 3 && a.heads > 0 || x.rank == 4 else {
            throw fail("needs a 4-D input, or a 3-D one with num_heads, got \(x) and num_heads \(a.heads)")
        }
        return x
    }

    /// ArgMax/ArgMin: the searched axis dropped, or kept with length 1.
    func argExtreme(_ a: ArgExtremeAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let x = try firstShape() else { return nil }
        guard let axis = x.normalizedAxis(a.axis) else { throw fail("axis \(a.axis) is outside input of shape \(x)") }
        if x[axis] == 0 { throw fail("searches an empty axis \(axis) of shape \(x)") }
        var dimensions = x.dimensions
        if a.keepDimensions { dimensions[axis] = 1 } else { dimensions.remove(at: axis) }
        return Shape(dimensions)
    }

    /// CumSum keeps its input's shape.
    func cumulativeSum(_ a: CumulativeSumAttributes) throws -> Shape? {
        try requireInputs(a.axis == nil ? 2 : 1)
        guard let x = try firstShape() else { return nil }
        if let axis = a.axis, x.normalizedAxis(axis) == nil { throw fail("axis \(axis) is outside input of shape \(x)") }
        return x
    }

    /// DepthToSpace/SpaceToDepth: `[N, C, H, W]` with blocks moved between channels and pixels.
    func depthSpace(_ a: DepthSpaceAttributes) throws -> Shape? {
        try requireInputs(1)
        guard let x = try firstShape() else { return nil }
        guard x.rank == 4 else { throw fail("needs a 4-D [N, C, H, W] input, got \(x)") }
        let b = a.blockSize
        guard b > 0 else { throw fail("has blocksize \(b)") }
        let (c, h, w) = (x[1], x[2], x[3])
        if a.toDepth {
            if let h, h % b != 0 { throw fail("height \(h) is not a multiple of blocksize \(b)") }
            if let w, w % b != 0 { throw fail("width \(w) is not a multiple of blocksize \(b)") }
            return Shape([x[0], c.map { $0 * b * b }, h.map { $0 / b }, w.map { $0 / b }])
        }
        if let c, c % (b * b) != 0 { throw fail("channels \(c) are not a multiple of blocksize² \(b * b)") }
        return Shape([x[0], c.map { $0 / (b * b) }, h.map { $0 * b }, w.map { $0 * b }])
    }
}
