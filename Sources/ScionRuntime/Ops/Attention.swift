import ScionIR

/// MultiHeadAttention, computed as Keras does (keras/src/layers/attention/multi_head_attention.py):
///
/// ```
///  query [B, a..., D] ─· Wq + bq─▶ [B, a..., H, K] ─permute─▶ [B, n..., H, t..., K] ─flatten─▶ Q [G, T, K]
///  key, value likewise ─▶ K [G, S, K], V [G, S, Vd]        (n: axes not attended, t: attended axes)
///  scores = (Q / sqrt(K)) · Kᵀ [G, T, S]; where the mask is 0: -1e9; softmax over S
///  context = P · V [G, T, Vd] ─unflatten, permute back─▶ [B, a..., H·Vd] ─· Wo + bo─▶ [B, a..., out...]
/// ```
///
/// G = batch × non-attended lengths × heads; T and S the products of the attended lengths, so
/// several attention axes are one softmax over all their key positions jointly, as Keras's is.
/// The forward keeps its intermediates (`AttentionPass`) so the VJP reuses them.
struct AttentionPass {
    /// Projected, permuted and flattened query (already scaled), key and value.
    var query: RuntimeTensor, key: RuntimeTensor, value: RuntimeTensor
    /// Softmax of the masked scores, [G, T, S].
    var probabilities: RuntimeTensor
    /// Which scores were kept (1) or masked (0), as the scores; nil when none was masked.
    var keep: [Float]?
    /// The heads' context, permuted back and flattened: the output projection's input.
    var context: RuntimeTensor
    /// The output.
    var output: RuntimeTensor
    /// Shapes needed to undo the reshapes and permutations.
    var geometry: AttentionGeometry
}

/// Where the axes go: the permutation of a projected `[B, a..., H, width]` tensor that puts the
/// attended axes last but one, and the lengths of each side.
struct AttentionGeometry {
    let rank: Int
    let permutation: [Int]
    let inverse: [Int]
    /// Length of the flattened leading groups (batch, non-attended axes, heads).
    let groups: Int
    let queryPositions: Int
    let keyPositions: Int
    /// The projected query's shape `[B, a..., H, K]` and the key's and value's.
    let queryShape: [Int], keyShape: [Int], valueShape: [Int]

    init(query: [Int], key: [Int], value: [Int], axes: [Int], heads: Int, keyDim: Int, valueDim: Int) {
        let rank = query.count
        self.rank = rank
        let others = (1..<(rank - 1)).filter { !axes.contains($0) }
        // Projected tensors have rank + 1 axes: heads at rank - 1, features at rank.
        let permutation = [0] + others + [rank - 1] + axes + [rank]
        self.permutation = permutation
        inverse = (0...rank).map { axis in permutation.firstIndex(of: axis) ?? axis }
        groups = ([query[0]] + others.map { query[$0] }).reduce(1, *) * heads
        queryPositions = axes.map { query[$0] }.reduce(1, *)
        keyPositions = axes.map { key[$0] }.reduce(1, *)
        queryShape = query.dropLast() + [heads, keyDim]
        keyShape = key.dropLast() + [heads, keyDim]
        valueShape = value.dropLast() + [heads, valueDim]
    }
}

extension Executor {
    func multiHeadAttention(_ node: Node, _ inputs: [RuntimeTensor], _ a: MultiHeadAttentionAttributes) throws -> RuntimeTensor {
        try attentionPass(node, inputs, a).output
    }

    /// The forward computation with its intermediates.
    func attentionPass(_ node: Node, _ inputs: [RuntimeTensor], _ a: MultiHeadAttentionAttributes) throws -> AttentionPass {
        guard inputs.count == a.inputCount else {
            throw RuntimeError(node.name, "MultiHeadAttention needs \(a.inputCount) inputs, got \(inputs.count)")
        }
        let (queryInput, valueInput, keyInput) = (inputs[0], inputs[1], inputs[a.keyInput])
        guard let axes = a.resolvedAttentionAxes(rank: queryInput.rank),
              valueInput.rank == queryInput.rank, keyInput.rank == queryInput.rank,
              keyInput.shape.dropLast() == valueInput.shape.dropLast() else {
            throw RuntimeError(node.name, "MultiHeadAttention of query \(queryInput.shape), value \(valueInput.shape) and key \(keyInput.shape) over axes \(a.attentionAxes ?? []) does not fit")
        }
        let geometry = AttentionGeometry(query: queryInput.shape, key: keyInput.shape, value: valueInput.shape, axes: axes,
                                         heads: a.numHeads, keyDim: a.keyDim, valueDim: a.valueDim)
        // Keras scales the projected query, not the scores.
        let scale = 1 / Float(a.keyDim).squareRoot()
        var query = try project(node, "query_dense", queryInput, width: a.numHeads * a.keyDim, useBias: a.useBias)
        query.data = query.data.map { $0 * scale }
        let key = try project(node, "key_dense", keyInput, width: a.numHeads * a.keyDim, useBias: a.useBias)
        let value = try project(node, "value_dense", valueInput, width: a.numHeads * a.valueDim, useBias: a.useBias)
        let q = Self.grouped(query, shape: geometry.queryShape, geometry, positions: geometry.queryPositions)
        let k = Self.grouped(key, shape: geometry.keyShape, geometry, positions: geometry.keyPositions)
        let v = Self.grouped(value, shape: geometry.valueShape, geometry, positions: geometry.keyPositions)
        var scores = Kernels.batchedProduct(q, k, transposeB: true)
        let keep = try attentionMask(node, inputs, a, geometry: geometry, axes: axes)
        if let keep {
            for index in scores.data.indices where keep[index] == 0 { scores.data[index] = -1e9 }
        }
        let probabilities = Kernels.softmax(scores, axis: -1, logarithm: false)
        let heads = Kernels.batchedProduct(probabilities, v, transposeB: false)
        let context = Self.ungrouped(heads, projected: Array(geometry.queryShape.dropLast()) + [a.valueDim], geometry)
        var output = try project(node, "output_dense", context, width: nil, useBias: a.useBias)
        output.shape = Array(queryInput.shape.dropLast()) + (a.outputShape ?? [queryInput.shape[queryInput.rank - 1]])
        return AttentionPass(query: q, key: k, value: v, probabilities: probabilities, keep: keep, context: context,
                             output: output, geometry: geometry)
    }

    /// `x · kernel + bias` over the last axis, the kernel read as a matrix of its first axis (its
    /// first two for the output projection) by the rest.
    func project(_ node: Node, _ sublayer: String, _ x: RuntimeTensor, width: Int?, useBias: Bool) throws -> RuntimeTensor {
        let kernel = try require(node, .sublayer(sublayer, .kernel))
        let inner = x.shape.last ?? 1
        let columns = width ?? kernel.count / max(inner, 1)
        guard kernel.count == inner * columns else {
            throw RuntimeError(node.name, "\(sublayer)/kernel has \(kernel.count) values, not \(inner) × \(columns)")
        }
        var y = Kernels.matmul(x, kernel, columns: columns)
        if useBias {
            let bias = try require(node, .sublayer(sublayer, .bias))
            guard bias.count == columns else { throw RuntimeError(node.name, "\(sublayer)/bias has \(bias.count) values, not \(columns)") }
            Kernels.addRows(&y, bias)
        }
        return y
    }

    /// `[B, a..., H·w]` to `[G, positions, w]`: heads split out, attended axes moved last but one.
    static func grouped(_ x: RuntimeTensor, shape: [Int], _ g: AttentionGeometry, positions: Int) -> RuntimeTensor {
        var moved = Kernels.transpose(RuntimeTensor(shape: shape, data: x.data), g.permutation)
        moved.shape = [g.groups, positions, shape[shape.count - 1]]
        return moved
    }

    /// The inverse of `grouped`: `[G, positions, w]` to `[B, a..., H·w]`, given the projected
    /// shape `[B, a..., H, w]`.
    static func ungrouped(_ x: RuntimeTensor, projected: [Int], _ g: AttentionGeometry) -> RuntimeTensor {
        var moved = RuntimeTensor(shape: g.permutation.map { projected[$0] }, data: x.data)
        moved = Kernels.transpose(moved, g.inverse)
        moved.shape = Array(projected.dropLast(2)) + [projected[projected.count - 2] * projected[projected.count - 1]]
        return moved
    }

    /// Which scores to keep, laid out as the scores `[G, T, S]` (1 keep, 0 mask); nil when nothing
    /// is masked. The attention mask is broadcast as Keras does (a heads axis inserted, then
    /// numpy broadcasting), and the causal mask keeps key positions up to the query's.
    func attentionMask(_ node: Node, _ inputs: [RuntimeTensor], _ a: MultiHeadAttentionAttributes, geometry g: AttentionGeometry,
                       axes: [Int]) throws -> [Float]? {
        // The scores' unflattened shape: [B, n..., H, t..., s...].
        let query = inputs[0].shape, key = inputs[a.keyInput].shape
        let others = (1..<(query.count - 1)).filter { !axes.contains($0) }
        let scoresShape = [query[0]] + others.map { query[$0] } + [a.numHeads] + axes.map { query[$0] } + axes.map { key[$0] }
        var keep: RuntimeTensor?
        if let position = a.maskInput {
            var mask = inputs[position]
            while mask.rank < scoresShape.count {
                // Keras's expand_dims at -2·len(axes) - 1, counted from the end.
                let at = mask.rank - 2 * axes.count
                guard at >= 0 else { break }
                mask.shape.insert(1, at: at)
            }
            let ones = RuntimeTensor(shape: scoresShape, data: [Float](repeating: 1, count: scoresShape.reduce(1, *)))
            keep = try Kernels.broadcast(ones, mask, node: node.name) { _, m in m != 0 ? 1 : 0 }
        }
        if a.queryMaskValue != nil || a.valueMaskValue != nil {
            // Keras's query mask [B, T, 1] and value mask [B, 1, S], a heads axis inserted: [B, 1, T, S].
            guard axes == [1], query.count == 3 else {
                throw RuntimeError(node.name, "Keras's query and value masks are applied over one attention axis of a "
                                   + "[batch, time, features] query here, not over axes \(axes) of \(query)")
            }
            let (batch, t, s) = (query[0], query[1], key[1])
            let queryKept = try a.queryMaskInput.map {
                try Kernels.keptSteps(inputs[$0], value: a.queryMaskValue ?? 0, batch: batch, time: t, node: node.name)
            } ?? [Bool](repeating: true, count: batch * t)
            let valueKept = try a.valueMaskInput.map {
                try Kernels.keptSteps(inputs[$0], value: a.valueMaskValue ?? 0, batch: batch, time: s, node: node.name)
            } ?? [Bool](repeating: true, count: batch * s)
            var data = [Float](repeating: 0, count: batch * t * s)
            for b in 0..<batch {
                for i in 0..<t where queryKept[b * t + i] {
                    for j in 0..<s where valueKept[b * s + j] { data[(b * t + i) * s + j] = 1 }
                }
            }
            let masks = RuntimeTensor(shape: [batch, 1, t, s], data: data)
            let base = keep ?? RuntimeTensor(shape: scoresShape, data: [Float](repeating: 1, count: scoresShape.reduce(1, *)))
            keep = try Kernels.broadcast(base, masks, node: node.name) { $0 * $1 }
        }
        if a.useCausalMask {
            guard axes.count == 1 else {
                throw RuntimeError(node.name, "use_causal_mask over \(axes.count) attention axes (Keras defines it for one)")
            }
            let (t, s) = (g.queryPositions, g.keyPositions)
            let causal = RuntimeTensor(shape: [t, s], data: (0..<(t * s)).map { Float($0 % s <= $0 / s ? 1 : 0) })
            let base = keep ?? RuntimeTensor(shape: scoresShape, data: [Float](repeating: 1, count: scoresShape.reduce(1, *)))
            keep = try Kernels.broadcast(base, causal, node: node.name) { $0 * $1 }
        }
        return keep?.data
    }
}

extension Kernels {
    /// `a[g] · b[g]` (or `a[g] · b[g]ᵀ`) for each of the leading groups of two rank-3 tensors.
    static func batchedProduct(_ a: RuntimeTensor, _ b: RuntimeTensor, transposeB: Bool, transposeA: Bool = false) -> RuntimeTensor {
        let groups = a.shape[0]
        let m = transposeA ? a.shape[2] : a.shape[1], k = transposeA ? a.shape[1] : a.shape[2]
        let n = transposeB ? b.shape[1] : b.shape[2]
        var output = [Float](repeating: 0, count: groups * m * n)
        a.data.withUnsafeBufferPointer { x in
            b.data.withUnsafeBufferPointer { y in
                output.withUnsafeMutableBufferPointer { z in
                    guard let x = x.baseAddress, let y = y.baseAddress, let z = z.baseAddress else { return }
                    for group in 0..<groups {
                        BLAS.gemm(m: m, n: n, k: k, a: x + group * m * k, transposeA: transposeA, b: y + group * k * n,
                                  transposeB: transposeB, c: z + group * m * n)
                    }
                }
            }
        }
        return RuntimeTensor(shape: [groups, m, n], data: output)
    }
}
