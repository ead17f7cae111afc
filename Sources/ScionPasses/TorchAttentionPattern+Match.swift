import ScionIR

/// A recognised attention block: what replaces it, and the nodes it replaces.
struct TorchAttentionMatch {
    var input: String
    /// Where keys and values come from: `input` for self-attention, the memory for cross-attention.
    var memory: String
    var output: String
    /// Node positions computing the block (each read only inside it, or by Shape ops).
    var core: Set<Int>
    /// Where the MultiHeadAttention node goes: the producer of `output`.
    var outputProducer: Int
    var heads: Int, keyDim: Int, valueDim: Int
    var inputWidth: Int, outputWidth: Int
    /// Projection columns: (Dense position, first column) for query, key and value.
    var query: (projection: Int, offset: Int), key: (projection: Int, offset: Int), value: (projection: Int, offset: Int)
    var outputProjection: Int
    /// The product of the constant factors on q, kᵀ and the scores (torch's 1/sqrt(hd), however spelled).
    var scale: Double
    /// Whether the scores get torch's causal mask (Keras's `use_causal_mask`).
    var causal: Bool
}

/// The query's source x (or the memory keys and values come from): `[batch, length, width]`, and the
/// value the projections read (x itself, or x after torch's Transpose to sequence-first).
struct AttentionSide {
    var input: String
    var projectionInput: String
    /// Nil when the batch is dynamic.
    var batch: Int?
    var length: Int, width: Int
}

/// Which batch row and head each of the G = B·H groups of a MatMul operand holds, and where its
/// columns start in the projection.
private struct HeadLayout {
    var offset: Int
    var batches: [Int]
    var heads: [Int]
}

extension KerasPatternRewriter {
    func matchTorchAttention(softmax position: Int) throws -> TorchAttentionMatch? {
        let softmax = graph.nodes[position]
        guard case .activation(.softmax(let axis)) = softmax.op, let scoresValue = softmax.inputs.first,
              let probabilities = softmax.outputs.first else { return nil }
        // Scores: MatMul(q, kᵀ), maybe scaled after the product, maybe plus a constant mask.
        var scoreFactors: [(node: Int, factor: String, divides: Bool)] = []
        var mask: (node: Int, parameter: Parameter)?
        var value = scoresValue
        var scoresProduct: Int?
        for _ in 0..<5 {
            guard let producer = producers[value], soleDataReader(of: value) != nil else { return nil }
            let node = graph.nodes[producer]
            if case .onnx(.matMul) = node.op, node.inputs.count == 2, node.parameters.isEmpty { scoresProduct = producer; break }
            if case .elementwise(.add) = node.op, node.inputs.count == 2, mask == nil,
               let maskPosition = node.inputs.firstIndex(where: { constant($0) != nil }), let (_, parameter) = constant(node.inputs[maskPosition]) {
                mask = (producer, parameter)
                value = node.inputs[1 - maskPosition]
                continue
            }
            guard case .elementwise(let operation) = node.op, operation == .multiply || operation == .divide,
                  node.inputs.count == 2, mayBeScalar(node.inputs[1]) else { return nil }
            scoreFactors.append((producer, node.inputs[1], operation == .divide))
            value = node.inputs[0]
        }
        guard let scoresProduct, let contextProduct = soleDataReader(of: probabilities),
              case .onnx(.matMul) = graph.nodes[contextProduct].op, graph.nodes[contextProduct].inputs.count == 2,
              graph.nodes[contextProduct].inputs[0] == probabilities, graph.nodes[contextProduct].parameters.isEmpty,
              let context = graph.nodes[contextProduct].outputs.first else { return nil }
        let product = graph.nodes[scoresProduct]
        guard let q = traceOperand(product.inputs[0]), let k = traceOperand(product.inputs[1]),
              let v = traceOperand(graph.nodes[contextProduct].inputs[1]) else { return nil }
        // Self-attention reads one value three times; cross-attention (torch's decoder) projects the
        // query from x and the key and value from the memory.
        let projectionInput = graph.nodes[q.projection].inputs[0], memoryProjectionInput = graph.nodes[k.projection].inputs[0]
        guard graph.nodes[v.projection].inputs[0] == memoryProjectionInput else { return nil }

        // From the heads' context forward to out_proj, then the layout ops back to x's form.
        var contextNodes: [Int] = []
        var current = context
        var outputProjection: Int?
        for _ in 0..<16 {
            guard let reader = soleDataReader(of: current) else { return nil }
            if linearKernel(reader) != nil { outputProjection = reader; break }
            let node = graph.nodes[reader]
            guard isLayoutOp(node.op), node.outputs.count == 1, node.inputs.first == current else { return nil }
            contextNodes.append(reader)
            current = node.outputs[0]
        }
        guard let outputProjection, let projected = graph.nodes[outputProjection].outputs.first else { return nil }
        var candidates: [(value: String, nodes: [Int])] = [(projected, [])]
        current = projected
        for _ in 0..<6 {
            guard let reader = soleDataReader(of: current), isLayoutOp(graph.nodes[reader].op),
                  graph.nodes[reader].outputs.count == 1, graph.nodes[reader].inputs.first == current else { break }
            current = graph.nodes[reader].outputs[0]
            candidates.append((current, candidates[candidates.count - 1].nodes + [reader]))
        }

        // x (and the memory): the projections' input or a value a few layout ops before it (torch's
        // seq-first Transpose).
        func sources(_ projected: String) -> [String] {
            var values = [projected]
            for _ in 0..<3 {
                guard let producer = producers[values[values.count - 1]], isLayoutOp(graph.nodes[producer].op),
                      let source = graph.nodes[producer].inputs.first else { break }
                values.append(source)
            }
            return values
        }
        let selfAttention = projectionInput == memoryProjectionInput
        let pairs = sources(projectionInput).flatMap { input in
            selfAttention ? [(input, input)] : sources(memoryProjectionInput).map { (input, $0) }
        }
        let allFactors = q.factors + k.factors + v.factors + scoreFactors
        let layoutNodes = q.nodes + k.nodes + v.nodes + contextNodes
        for (input, memory) in pairs {
            guard let query = attentionSide(input, projectionInput), let keys = attentionSide(memory, memoryProjectionInput),
                  query.batch == keys.batch || query.batch == nil || keys.batch == nil else { continue }
            let batch = query.batch ?? keys.batch ?? Self.probeBatch
            let (length, width) = (query.length, query.width)
            var evaluator = AttentionProbeEvaluator(graph: graph, producers: producers)
            for factor in allFactors { evaluator.passThrough[factor.node] = graph.nodes[factor.node].inputs[factor.factor == graph.nodes[factor.node].inputs[1] ? 0 : 1] }
            guard let proven = prove(evaluator: &evaluator, query: query, keys: keys, batch: batch, q: q, k: k, v: v,
                                     scores: graph.nodes[scoresProduct], values: graph.nodes[contextProduct].inputs[1], context: context,
                                     outputProjection: outputProjection,
                                     candidates: candidates, softmaxAxis: axis) else { continue }
            var scale = 1.0
            for factor in allFactors {
                guard let probe = evaluator.evaluate(factor.factor), probe.count == 1, !probe.labels, probe.values[0] != 0 else { return nil }
                scale *= factor.divides ? 1 / probe.values[0] : probe.values[0]
            }
            // A mask is taken only when it is torch's causal mask (a negative scale would turn its -inf to +inf).
            if let mask, try !(scale > 0 && Self.isCausalMask(mask.parameter, length: length)) { return nil }
            let core = Set(layoutNodes + allFactors.map(\.node) + [scoresProduct, position, contextProduct, outputProjection]
                           + candidates[proven.output].nodes + (mask.map { [$0.node] } ?? []))
            let outputValue = candidates[proven.output].value
            guard let outputProducer = producers[outputValue] else { return nil }
            return TorchAttentionMatch(
                input: input, memory: memory, output: outputValue, core: core, outputProducer: outputProducer,
                heads: proven.heads, keyDim: proven.keyDim, valueDim: proven.valueDim, inputWidth: width,
                outputWidth: linearKernel(outputProjection)?.shape[1] ?? 0,
                query: (q.projection, proven.offsets[0]), key: (k.projection, proven.offsets[1]),
                value: (v.projection, proven.offsets[2]), outputProjection: outputProjection, scale: scale,
                causal: mask != nil)
        }
        return nil
    }

    /// `input` as one side of an attention: rank 3 with known length and width.
    private func attentionSide(_ input: String, _ projectionInput: String) -> AttentionSide? {
        guard let dimensions = shape(input)?.dimensions, dimensions.count == 3, let length = dimensions[1],
              let width = dimensions[2] else { return nil }
        return AttentionSide(input: input, projectionInput: projectionInput, batch: dimensions[0], length: length, width: width)
    }

    /// Evaluates the block on labelled tensors and checks it computes torch's multi-head attention
    /// of `input` `[batch, length, width]`: the heads, their widths, the column offsets of q, k and v
    /// in their projections, and which output candidate holds the result in `input`'s order.
    private func prove(evaluator: inout AttentionProbeEvaluator, query: AttentionSide, keys: AttentionSide, batch: Int,
                       q: AttentionOperand, k: AttentionOperand, v: AttentionOperand,
                       scores: Node, values: String, context: String, outputProjection: Int,
                       candidates: [(value: String, nodes: [Int])],
                       softmaxAxis: Int)
        -> (heads: Int, keyDim: Int, valueDim: Int, offsets: [Int], output: Int)? {
        let (length, keyLength) = (query.length, keys.length)
        for side in [query, keys] {
            evaluator.known[side.input] = AttentionProbeEvaluator.labelled([batch, side.length, side.width]) { $0 }
        }
        var columns: [Int: Int] = [:]
        for (side, operands) in [(query, [q]), (keys, [k, v])] {
            // Rows of the projections' input: which row of x (or the memory) each holds, features in place.
            guard let projected = evaluator.evaluate(side.projectionInput), projected.shape.last == side.width, projected.labels,
                  let rows = Self.rowOrigins(projected, width: side.width, rowCount: batch * side.length) else { return nil }
            for operand in operands {
                guard let kernel = linearKernel(operand.projection), kernel.shape[0] == side.width,
                      let output = graph.nodes[operand.projection].outputs.first else { return nil }
                let n = kernel.shape[1]
                columns[operand.projection] = n
                evaluator.known[output] = AttentionProbeEvaluator.labelled(Array(projected.shape.dropLast()) + [n]) { rows[$0 / n] * n + $0 % n }
            }
        }
        guard let queryProbe = evaluator.evaluate(scores.inputs[0]), let keyT = evaluator.evaluate(scores.inputs[1]),
              let valueProbe = evaluator.evaluate(values),
              queryProbe.shape.count >= 3, keyT.shape.count == queryProbe.shape.count, valueProbe.shape.count == queryProbe.shape.count,
              softmaxAxis == -1 || softmaxAxis == queryProbe.shape.count - 1 else { return nil }
        let leading = Array(queryProbe.shape.dropLast(2))
        guard Array(keyT.shape.dropLast(2)) == leading, Array(valueProbe.shape.dropLast(2)) == leading,
              queryProbe.shape[queryProbe.shape.count - 2] == length, keyT.shape.last == keyLength,
              valueProbe.shape[valueProbe.shape.count - 2] == keyLength,
              let keyDim = queryProbe.shape.last, keyT.shape[keyT.shape.count - 2] == keyDim, let valueDim = valueProbe.shape.last,
              let queryLayout = Self.headLayout(queryProbe, positionsFirst: true, columns: columns[q.projection] ?? 0, length: length),
              let keyLayout = Self.headLayout(keyT, positionsFirst: false, columns: columns[k.projection] ?? 0, length: keyLength),
              let valueLayout = Self.headLayout(valueProbe, positionsFirst: true, columns: columns[v.projection] ?? 0, length: keyLength),
              keyLayout.batches == queryLayout.batches, keyLayout.heads == queryLayout.heads,
              valueLayout.batches == queryLayout.batches, valueLayout.heads == queryLayout.heads else { return nil }
        let groups = leading.reduce(1, *)
        let heads = (queryLayout.heads.max() ?? 0) + 1
        guard groups == batch * heads,
              Set(zip(queryLayout.batches, queryLayout.heads).map { $0 * heads + $1 }).count == groups,
              queryLayout.batches.allSatisfy({ $0 < batch }),
              queryLayout.offset + heads * keyDim <= columns[q.projection] ?? 0,
              keyLayout.offset + heads * keyDim <= columns[k.projection] ?? 0,
              valueLayout.offset + heads * valueDim <= columns[v.projection] ?? 0 else { return nil }

        // The heads' context, labelled, to out_proj's input: row = (batch, position), column h·vd + d.
        guard let kernel = linearKernel(outputProjection), kernel.shape[0] == heads * valueDim else { return nil }
        let outputWidth = kernel.shape[1]
        evaluator.known[context] = AttentionProbeEvaluator.labelled(leading + [length, valueDim]) { $0 }
        guard let merged = evaluator.evaluate(graph.nodes[outputProjection].inputs[0]), merged.shape.last == heads * valueDim,
              let contextRows = Self.contextRows(merged, layout: queryLayout, length: length, valueDim: valueDim,
                                                 rowCount: batch * length) else { return nil }
        let outputValue = graph.nodes[outputProjection].outputs[0]
        evaluator.known[outputValue] = AttentionProbeEvaluator.labelled(Array(merged.shape.dropLast()) + [outputWidth]) {
            contextRows[$0 / outputWidth] * outputWidth + $0 % outputWidth
        }
        for (index, candidate) in candidates.enumerated() {
            guard let result = evaluator.evaluate(candidate.value), result.shape == [batch, length, outputWidth],
                  result.values.enumerated().allSatisfy({ Double($0.offset) == $0.element }) else { continue }
            return (heads, keyDim, valueDim, [queryLayout.offset, keyLayout.offset, valueLayout.offset], index)
        }
        return nil
    }

    /// torch's causal mask (`nn.Transformer.generate_square_subsequent_mask`, or a boolean mask
    /// turned to floats) for `length` positions: 0 where key position j <= query position i, and
    /// -inf (or at most -1e9, what Keras adds) above the diagonal, with leading unit axes only.
    static func isCausalMask(_ mask: Parameter, length: Int) throws -> Bool {
        guard mask.dtype == .float32, mask.shape.drop(while: { $0 == 1 }) == [length, length] ||
                (length == 1 && mask.elementCount == 1) else { return false }
        let values = try allFloats(mask)
        for i in 0..<length {
            for j in 0..<length {
                let entry = values[i * length + j]
                if j <= i ? entry != 0 : !(entry <= -1e9) { return false }
            }
        }
        return true
    }

    /// For each row of a labelled `[..., width]` probe of x `[rows, width]`, the x row it holds
    /// (every feature in place); nil when features moved or rows repeat.
    static func rowOrigins(_ probe: Probe, width: Int, rowCount: Int) -> [Int]? {
        guard width > 0, probe.count == rowCount * width, let values = probe.integers else { return nil }
        var rows: [Int] = []
        for row in 0..<rowCount {
            let origin = values[row * width] / width
            guard values[row * width] % width == 0 else { return nil }
            for feature in 0..<width where values[row * width + feature] != origin * width + feature { return nil }
            rows.append(origin)
        }
        return Set(rows).count == rowCount ? rows : nil
    }

    /// How a labelled MatMul operand `[..., positions, width]` (`positionsFirst`) or
    /// `[..., width, positions]` (kᵀ) was cut from a projection of `columns` columns: each group is
    /// one batch row's positions in order, and one head's `width` consecutive columns.
    private static func headLayout(_ probe: Probe, positionsFirst: Bool, columns: Int, length: Int) -> HeadLayout? {
        guard columns > 0, let values = probe.integers else { return nil }
        let rank = probe.shape.count
        let (positions, width) = positionsFirst ? (probe.shape[rank - 2], probe.shape[rank - 1]) : (probe.shape[rank - 1], probe.shape[rank - 2])
        guard positions == length, width > 0 else { return nil }
        let groups = probe.count / (positions * width)
        func element(_ group: Int, _ position: Int, _ feature: Int) -> Int {
            let inner = positionsFirst ? position * width + feature : feature * positions + position
            return values[group * positions * width + inner]
        }
        var batches: [Int] = [], starts: [Int] = []
        for group in 0..<groups {
            let first = element(group, 0, 0)
            let (row, column) = (first / columns, first % columns)
            guard row % length == 0 else { return nil }
            batches.append(row / length)
            starts.append(column)
        }
        guard let offset = starts.min() else { return nil }
        var heads: [Int] = []
        for group in 0..<groups {
            guard (starts[group] - offset) % width == 0 else { return nil }
            heads.append((starts[group] - offset) / width)
            for position in 0..<positions {
                for feature in 0..<width where element(group, position, feature)
                    != (batches[group] * length + position) * columns + starts[group] + feature { return nil }
            }
        }
        return HeadLayout(offset: offset, batches: batches, heads: heads)
    }

    /// For each row of out_proj's labelled input (labels: positions in the context `[G, L, vd]`),
    /// the x row it stands for; nil unless each row is one (batch, position) with the heads' values
    /// at `h·vd + d`.
    private static func contextRows(_ probe: Probe, layout: HeadLayout, length: Int, valueDim: Int, rowCount: Int) -> [Int]? {
        let width = layout.heads.count > 0 ? ((layout.heads.max() ?? 0) + 1) * valueDim : 0
        guard width > 0, probe.count == rowCount * width, let values = probe.integers else { return nil }
        var rows: [Int] = []
        for row in 0..<rowCount {
            var origin: Int?
            for feature in 0..<width {
                let label = values[row * width + feature]
                let group = label / (length * valueDim), position = (label / valueDim) % length, d = label % valueDim
                guard group < layout.heads.count, feature == layout.heads[group] * valueDim + d else { return nil }
                let xRow = layout.batches[group] * length + position
                if let origin, origin != xRow { return nil }
                origin = xRow
            }
            guard let origin else { return nil }
            rows.append(origin)
        }
        return Set(rows).count == rowCount ? rows : nil
    }
}
