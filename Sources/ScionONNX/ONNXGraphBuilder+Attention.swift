import ScionIR

/// MultiHeadAttention as standard ONNX ops (opset 13 on), the computation Keras runs:
///
/// ```
///  query ─MatMul Wq[D, H·K]─Add bq─Reshape [0…, H, K]─Mul 1/√K─Transpose─▶ Q [B, n…, H, T, K]
///  key   ─ … ─Transpose─▶ Kᵀ [B, n…, H, K, S]          value ─ … ─Transpose─▶ V [B, n…, H, S, Vd]
///  MatMul(Q, Kᵀ) ─Where(mask, ·, -1e9)─Softmax(-1)─MatMul V─Transpose back─Reshape [0…, H·Vd]─MatMul Wo─Add bo
/// ```
///
/// The kernels keep Keras's shapes as initializers and are reshaped to matrices in the graph.
/// Reshapes copy the leading lengths with 0, so the batch (and any length) may be unknown; several
/// attention axes are flattened into one, which needs their lengths.
extension ONNXGraphBuilder {
    mutating func emitMultiHeadAttention(_ node: Node, _ a: MultiHeadAttentionAttributes, parameters: [Parameter],
                                         inputShapes: [Shape?], output: String) throws {
        guard node.inputs.count == a.inputCount, let queryShape = inputShapes.first ?? nil,
              let axes = a.resolvedAttentionAxes(rank: queryShape.rank) else {
            throw unsupported(node, "MultiHeadAttention needs its query's rank and \(a.inputCount) inputs")
        }

        let rank = queryShape.rank
        let others = (1..<(rank - 1)).filter { !axes.contains($0) }
        let permutation = [0] + others + [rank - 1] + axes + [rank]
        let inverse = (0...rank).map { axis in permutation.firstIndex(of: axis) ?? axis }
        let keyShape = inputShapes[a.keyInput]
        let queryLengths = axes.map { queryShape[$0] }, keyLengths = axes.map { keyShape?[$0] ?? nil }
        if axes.count > 1, queryLengths.contains(nil) || keyLengths.contains(nil) {
            throw unsupported(node, "MultiHeadAttention over several axes needs their lengths to flatten them")
        }
        let kept = Array(repeating: Int64(0), count: others.count + 2)
        /// Projects one input and brings it to `[B, n…, H, positions, width]`.
        func projected(_ input: String, _ sublayer: String, width: Int) throws -> String {
            var value = try project(node, input, sublayer, parameters: parameters, useBias: a.useBias)
            value = intermediate("Reshape", name: "\(node.name)/\(sublayer)/heads", inputs: [
                value, constant("\(node.name)/\(sublayer)/heads_shape",
                                int64s: Array(repeating: 0, count: rank - 1) + [Int64(a.numHeads), Int64(width)])])
            if sublayer == "query_dense" {
                value = intermediate("Mul", name: "\(node.name)/scale", inputs: [value, scalar("\(node.name)/scale", 1 / Float(a.keyDim).squareRoot())])
            }
            value = intermediate("Transpose", name: "\(node.name)/\(sublayer)/move", inputs: [value], attributes: [.ints("perm", permutation)])
            guard axes.count > 1 else { return value }
            return intermediate("Reshape", name: "\(node.name)/\(sublayer)/positions", inputs: [
                value, constant("\(node.name)/\(sublayer)/positions_shape", int64s: kept + [-1, Int64(width)])])
        }
        let query = try projected(node.inputs[0], "query_dense", width: a.keyDim)
        let key = try projected(node.inputs[a.keyInput], "key_dense", width: a.keyDim)
        let value = try projected(node.inputs[1], "value_dense", width: a.valueDim)
        let flatRank = others.count + 4
        let swapLast = Array(0..<(flatRank - 2)) + [flatRank - 1, flatRank - 2]
        let keyT = intermediate("Transpose", name: "\(node.name)/key_dense/transpose", inputs: [key], attributes: [.ints("perm", swapLast)])
        var scores = intermediate("MatMul", name: "\(node.name)/scores", inputs: [query, keyT])
        let maskRank = a.maskInput.flatMap { inputShapes[$0]?.rank }
        if let keep = try attentionKeep(node, a, axes: axes, rank: rank, maskRank: maskRank, queryLengths: queryLengths,
                                        keyLengths: keyLengths, inputShapes: inputShapes) {
            scores = intermediate("Where", name: "\(node.name)/mask", inputs: [keep, scores, scalar("\(node.name)/masked", -1e9)])
        }
        let probabilities = intermediate("Softmax", name: "\(node.name)/softmax", inputs: [scores], attributes: [.int("axis", -1)])
        var context = intermediate("MatMul", name: "\(node.name)/context", inputs: [probabilities, value])
        if axes.count > 1 {
            context = intermediate("Reshape", name: "\(node.name)/context/positions", inputs: [
                context, constant("\(node.name)/context/positions_shape",
                                  int64s: kept + queryLengths.map { Int64($0 ?? 0) } + [Int64(a.valueDim)])])
        }
        context = intermediate("Transpose", name: "\(node.name)/context/restore", inputs: [context], attributes: [.ints("perm", inverse)])
        context = intermediate("Reshape", name: "\(node.name)/context/merge", inputs: [
            context, constant("\(node.name)/context/merge_shape",
                              int64s: Array(repeating: 0, count: rank - 1) + [Int64(a.numHeads * a.valueDim)])])
        let outputLengths = a.outputShape ?? []
        let projectedOutput = outputLengths.count > 1 ? uniqueName("\(node.name)/output_dense/flat") : output
        try project(node, context, "output_dense", parameters: parameters, useBias: a.useBias, output: projectedOutput)
        if outputLengths.count > 1 {
            add("Reshape", name: "\(node.name)/output_shape", inputs: [
                projectedOutput, constant("\(node.name)/output_shape",
                                          int64s: Array(repeating: 0, count: rank - 1) + outputLengths.map(Int64.init))], output: output)
        }
    }

    /// `x · kernel + bias` over the last axis, the kernel reshaped to a matrix: its first axis by
    /// the rest (the output projection's first two axes by the rest).
    @discardableResult
    private mutating func project(_ node: Node, _ input: String, _ sublayer: String, parameters: [Parameter], useBias: Bool,
                                  output: String? = nil) throws -> String {
        guard let kernel = parameters.first(where: { $0.role == .sublayer(sublayer, .kernel) }), kernel.shape.count >= 2 else {
            throw unsupported(node, "has no '\(sublayer)/kernel' weights")
        }
        let split = sublayer == "output_dense" ? 2 : 1
        let rows = kernel.shape.prefix(split).reduce(1, *), columns = kernel.shape.dropFirst(split).reduce(1, *)
        let matrix = intermediate("Reshape", name: "\(node.name)/\(sublayer)/matrix", inputs: [
            kernel.name, constant("\(node.name)/\(sublayer)/matrix_shape", int64s: [Int64(rows), Int64(columns)])])
        guard useBias else {
            if let output { return add("MatMul", name: "\(node.name)/\(sublayer)", inputs: [input, matrix], output: output) }
            return intermediate("MatMul", name: "\(node.name)/\(sublayer)", inputs: [input, matrix])
        }
        guard let bias = parameters.first(where: { $0.role == .sublayer(sublayer, .bias) }) else {
            throw unsupported(node, "has no '\(sublayer)/bias' weights")
        }
        let product = intermediate("MatMul", name: "\(node.name)/\(sublayer)", inputs: [input, matrix])
        let vector = intermediate("Reshape", name: "\(node.name)/\(sublayer)/bias", inputs: [
            bias.name, constant("\(node.name)/\(sublayer)/bias_shape", int64s: [Int64(columns)])])
        if let output { return add("Add", name: "\(node.name)/\(sublayer)/add", inputs: [product, vector], output: output) }
        return intermediate("Add", name: "\(node.name)/\(sublayer)/add", inputs: [product, vector])
    }

    /// The boolean of which scores to keep, broadcastable to `[B, n…, H, T, S]`; nil when nothing is
    /// masked. The attention mask gets Keras's heads axis; the causal mask keeps s ≤ t.
    private mutating func attentionKeep(_ node: Node, _ a: MultiHeadAttentionAttributes, axes: [Int], rank: Int, maskRank: Int?,
                                        queryLengths: [Int?], keyLengths: [Int?], inputShapes: [Shape?]) throws -> String? {
        var keep: String?
        if let position = a.maskInput {
            guard axes.count == 1 else { throw unsupported(node, "an attention mask over several attention axes has no ONNX form here yet") }
            let mask = node.inputs[position]
            var value = intermediate("Cast", name: "\(node.name)/mask/bool", inputs: [mask], attributes: [.int("to", Int(ONNXDataType.bool.rawValue))])
            // Keras inserts the heads axis at -3 until the mask has the scores' rank.
            guard let maskRank else { throw unsupported(node, "its attention mask needs a known rank") }
            let missing = rank + 1 - maskRank
            if missing > 0 {
                let at = Int64(maskRank - 2)
                value = intermediate("Unsqueeze", name: "\(node.name)/mask/heads", inputs: [
                    value, constant("\(node.name)/mask/heads_axes", int64s: (0..<missing).map { at + Int64($0) })])
            }
            keep = value
        }
        // Keras's query mask [B, T] -> [B, 1, T, 1] and value mask [B, S] -> [B, 1, 1, S] (heads inserted).
        for (position, value, axesAdded, role) in [(a.queryMaskInput, a.queryMaskValue, [1, 3], "query"),
                                                   (a.valueMaskInput, a.valueMaskValue, [1, 2], "value")] {
            guard let position, let value else { continue }
            guard axes == [1], rank == 3, let sourceRank = inputShapes[position]?.rank, sourceRank >= 2 else {
                throw unsupported(node, "Keras's \(role) mask needs one attention axis of a [batch, time, features] query "
                                  + "and a mask source of known rank")
            }
            let name = "\(node.name)/\(role)_mask"
            let kept = keptSteps(source: node.inputs[position], sourceRank: sourceRank, value: value, name: name)
            let expanded = intermediate("Unsqueeze", name: name, inputs: [kept, constant("\(name)/axes", int64s: axesAdded.map { Int64($0) })])
            keep = keep.map { intermediate("And", name: "\(name)/and", inputs: [$0, expanded]) } ?? expanded
        }
        if a.useCausalMask {
            guard axes.count == 1, let t = queryLengths[0], let s = keyLengths[0] else {
                throw unsupported(node, "use_causal_mask needs one attention axis of known query and key lengths")
            }
            let lower = constant("\(node.name)/causal", int64s: (0..<(t * s)).map { Int64($0 % s <= $0 / s ? 1 : 0) },
                                 dimensions: [Int64(t), Int64(s)])
            let causal = intermediate("Cast", name: "\(node.name)/causal/bool", inputs: [lower], attributes: [.int("to", Int(ONNXDataType.bool.rawValue))])
            keep = keep.map { intermediate("And", name: "\(node.name)/mask/and", inputs: [$0, causal]) } ?? causal
        }
        return keep
    }
}

/// Keras's Attention and AdditiveAttention: MatMul of query and transposed key ("dot"), or
/// Unsqueeze / Add / Tanh / ReduceSum over the feature axis ("concat", additive); the causal mask
/// as an added constant (-1e9 above the diagonal, as Keras subtracts it); Softmax; MatMul by value.
extension ONNXGraphBuilder {
    mutating func emitAttention(_ node: Node, _ a: AttentionAttributes, parameters: [Parameter], inputShapes: [Shape?],
                                output: String) throws {
        guard node.inputs.count == (a.hasKey ? 3 : 2) else { throw unsupported(node, "\(a.kerasClass) needs query, value (and key)") }
        let (query, value) = (node.inputs[0], node.inputs[1])
        let key = a.hasKey ? node.inputs[2] : value
        func weight(_ name: String) throws -> String {
            guard let parameter = parameters.first(where: { $0.role == .other(name) }) else { throw unsupported(node, "has no '\(name)' weight") }
            return parameter.name
        }
        var scores: String
        if a.score == .dot {
            let keyT = intermediate("Transpose", name: "\(node.name)/key_t", inputs: [key], attributes: [.ints("perm", [0, 2, 1])])
            scores = intermediate("MatMul", name: "\(node.name)/scores", inputs: [query, keyT])
            if a.useScale { scores = intermediate("Mul", name: "\(node.name)/scale", inputs: [scores, try weight("scale")]) }
        } else {
            let q = intermediate("Unsqueeze", name: "\(node.name)/query", inputs: [query, constant("\(node.name)/query_axes", int64s: [2])])
            let k = intermediate("Unsqueeze", name: "\(node.name)/key", inputs: [key, constant("\(node.name)/key_axes", int64s: [1])])
            var sum = intermediate("Add", name: "\(node.name)/sum", inputs: [q, k])
            if a.score == .concat, a.useScale { sum = intermediate("Mul", name: "\(node.name)/scale", inputs: [sum, try weight("scale")]) }
            var terms = intermediate("Tanh", name: "\(node.name)/tanh", inputs: [sum])
            if a.score == .additive, a.useScale { terms = intermediate("Mul", name: "\(node.name)/scale", inputs: [terms, try weight("scale")]) }
            scores = intermediate("ReduceSum", name: "\(node.name)/scores", inputs: [terms, constant("\(node.name)/feature_axis", int64s: [-1])],
                                  attributes: [.int("keepdims", 0)])
            if a.score == .concat {
                scores = intermediate("Mul", name: "\(node.name)/concat_score_weight", inputs: [scores, try weight("concat_score_weight")])
            }
        }
        if a.useCausalMask {
            guard let t = inputShapes[0]?[1], let s = inputShapes[a.hasKey ? 2 : 1]?[1] else {
                throw unsupported(node, "use_causal_mask needs the query's and key's lengths")
            }
            let penalty = constant("\(node.name)/causal", floats: (0..<(t * s)).map { $0 % s > $0 / s ? -1e9 : 0 },
                                   dimensions: [Int64(t), Int64(s)])
            scores = intermediate("Add", name: "\(node.name)/causal", inputs: [scores, penalty])
        }
        let probabilities = intermediate("Softmax", name: "\(node.name)/softmax", inputs: [scores], attributes: [.int("axis", -1)])
        add("MatMul", name: node.name, inputs: [probabilities, value], output: output)
    }
}
