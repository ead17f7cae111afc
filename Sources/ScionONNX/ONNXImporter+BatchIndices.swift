import ScionIR

/// Flat positions of each sample's elements: `b * stride + offsets[rest...]` for `b` in `0..<batch`,
/// an index tensor of shape `[batch] + rest` that only the dynamic batch makes unknown.
struct BatchIndexTensor {
    var symbol: String
    var dtype: DType
    var stride: Int64
    var rest: [Int]
    var offsets: [Int64]
}

/// torch's dynamo exporter writes `torch.flatten` after an adaptive pool (Swin's and ConvNeXt's heads)
/// as `as_strided`: the pooled tensor flattened to one axis, then a Gather at positions computed from
/// `Range(0, batch)`:
///
/// ```
///  x [batch, 64, 1, 1] ─ Reshape [-1] ──────────────────────────────┐
///  Range(0, batch, 1) ─ Mul 64 ─ Unsqueeze [1,2,3] ─ Add [1,64,1,1] ─ Gather      →   Reshape x to [-1, 64, 1, 1]
/// ```
///
/// The positions are kept as a stride and per-sample offsets instead of being computed at run time
/// (a Range over the batch has no Keras layer). A Gather of a flattened tensor at them picks each
/// sample's elements: a Reshape when the offsets list a sample's elements in order, else a Reshape to
/// `[batch, stride]` and a Gather of the offsets along axis 1.
extension ONNXImportSession {
    /// True when the node was folded into a batch index tensor (its node waits, imported only if some
    /// other node reads it) or a Gather at one was imported as a Reshape.
    mutating func foldBatchIndices(_ node: ONNXNode, index: Int) throws -> Bool {
        guard node.domain.isEmpty || node.domain == "ai.onnx", node.outputs.count == 1, let output = node.outputs.first,
              !output.isEmpty, !symbolic.forced.contains(output) else { return false }
        if node.opType == "Gather", let positions = input(node, 1), let indices = symbolic.batchIndices[positions] {
            return try importBatchGather(node, indices: indices, index: index)
        }
        guard let result = try batchIndexResult(node) else { return false }
        symbolic.batchIndices[output] = result
        symbolic.deferred[output] = (node, index)
        return true
    }

    private func batchIndexResult(_ node: ONNXNode) throws -> BatchIndexTensor? {
        switch node.opType {
        case "Range":
            guard node.inputs.count == 3, let limit = symbolic.values[node.inputs[1]], limit.elements.count == 1,
                  let symbol = limit.elements[0].singleSymbol, try numbers(node.inputs[0])?.integers == [0],
                  try numbers(node.inputs[2])?.integers == [1], let dtype = constants[node.inputs[0]]?.dtype, !dtype.isFloatingPoint
            else { return nil }
            return BatchIndexTensor(symbol: symbol, dtype: dtype, stride: 1, rest: [], offsets: [0])
        case "Cast":
            guard let source = input(node, 0).flatMap({ symbolic.batchIndices[$0] }), let target = castTarget(node),
                  [DType.int64, .int32].contains(target) else { return nil }
            return source
        case "Unsqueeze":
            guard let source = input(node, 0).flatMap({ symbolic.batchIndices[$0] }), let axes = try axesOperand(node) else { return nil }
            let rank = 1 + source.rest.count + axes.count
            let resolved = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
            // The batch stays the first axis.
            guard resolved.count == axes.count, resolved.allSatisfy({ (1..<rank).contains($0) }) else { return nil }
            var remaining = source.rest.makeIterator()
            var result = source
            result.rest = (1..<rank).map { resolved.contains($0) ? 1 : (remaining.next() ?? 1) }
            return result
        case "Mul", "Add":
            guard node.inputs.count == 2 else { return nil }
            let first = symbolic.batchIndices[node.inputs[0]], second = symbolic.batchIndices[node.inputs[1]]
            guard let source = first ?? second, (first == nil) != (second == nil) else { return nil }
            let other = node.inputs[first == nil ? 0 : 1]
            guard let constant = constants[other], let values = try numbers(other), case .integers(let numbers) = values else { return nil }
            let rank = 1 + source.rest.count
            // A constant of higher rank would put axes before the batch; its own first axis must be 1.
            guard constant.shape.count <= rank else { return nil }
            let aligned = Array(repeating: 1, count: rank - constant.shape.count) + constant.shape
            guard aligned[0] == 1 else { return nil }
            if node.opType == "Mul" {
                guard numbers.count == 1 else { return nil }
                var result = source
                result.stride = source.stride &* numbers[0]
                result.offsets = source.offsets.map { $0 &* numbers[0] }
                return result
            }
            guard let (shape, sources) = Broadcasting.sources([[1] + source.rest, aligned], limit: Self.foldingLimit) else { return nil }
            var result = source
            result.rest = Array(shape.dropFirst())
            result.offsets = zip(sources[0], sources[1]).map { source.offsets[$0] &+ numbers[$1] }
            return result
        default:
            return nil
        }
    }

    /// Gather along axis 0 of a flattened tensor `[batch * stride]` at batch index positions.
    private mutating func importBatchGather(_ node: ONNXNode, indices: BatchIndexTensor, index: Int) throws -> Bool {
        guard let data = input(node, 0), let output = node.outputs.first, intAttribute(node, "axis", 0) == 0,
              let dimensions = symbolicDimensions(of: data), dimensions.count == 1,
              dimensions[0] == SymbolicLength(symbol: indices.symbol).scaled(by: indices.stride), indices.stride > 0,
              indices.stride <= Int64(Self.foldingLimit), indices.offsets.allSatisfy({ (0..<indices.stride).contains($0) }) else { return false }
        let stride = Int(indices.stride)
        // Read the tensor before it was flattened when the flattening only served this Gather: a Keras
        // Reshape keeps the batch.
        var source = data
        if let producer = graph.nodes.lastIndex(where: { $0.outputs == [data] }), case .reshape(let a) = graph.nodes[producer].op,
           a.includesBatch, a.targetShape == [-1], let unflattened = graph.nodes[producer].inputs.first,
           let unflattenedDimensions = symbolicDimensions(of: unflattened), unflattenedDimensions.first?.singleSymbol == indices.symbol,
           unflattenedDimensions.dropFirst().reduce(SymbolicLength(1), *) == SymbolicLength(indices.stride),
           model.graph.nodes.filter({ $0.inputs.contains(data) }).count == 1, !model.graph.outputs.contains(where: { $0.name == data }) {
            source = unflattened
            graph.info.nodeTypes[graph.nodes[producer].name] = nil
            graph.nodes.remove(at: producer)
            known[data] = nil
        }
        let inOrder = indices.offsets == (0..<indices.stride).map { $0 }
        let name = node.name.isEmpty ? "Gather_\(index)" : node.name
        func shapeConstant(_ lengths: [Int], _ suffix: String) -> String {
            let constant = "\(output)#\(suffix)"
            constants[constant] = make(.integers(lengths.map { Int64($0) }), dtype: .int64, shape: [lengths.count])
            return constant
        }
        if inOrder {
            try importNode(ONNXNode(name: name, opType: "Reshape", inputs: [source, shapeConstant([-1] + indices.rest, "shape")],
                                    outputs: [output]), index: index)
            return true
        }
        let rows = "\(output)#per_sample"
        try importNode(ONNXNode(name: "\(name)/per_sample", opType: "Reshape", inputs: [source, shapeConstant([-1, stride], "rows")],
                                outputs: [rows]), index: index)
        let offsets = "\(output)#offsets"
        constants[offsets] = make(.integers(indices.offsets), dtype: .int64, shape: indices.rest)
        try importNode(ONNXNode(name: name, opType: "Gather", inputs: [rows, offsets], outputs: [output],
                                attributes: [ONNXAttribute(name: "axis", value: .int(1))]), index: index)
        return true
    }
}
