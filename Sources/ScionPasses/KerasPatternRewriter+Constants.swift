import ScionIR

extension KerasPatternRewriter {
    /// A Reshape, Squeeze, Unsqueeze, Slice or Expand of a constant is a constant of the output's
    /// shape: Keras layers take no constant operands, but a constant is written as a weight (or into
    /// the keras.ops call that reads it). Dynamo's relative position bias is one:
    /// `Unsqueeze(Transpose(Reshape(table)))` added to attention scores, once its Transpose is folded
    /// (`foldConstantTranspose`). The importer keeps a weight's Slice and Expand as nodes (training
    /// reaches the whole weight through them); written to Keras, the constant becomes the part used,
    /// which is all that trains when nothing else reads the weight.
    mutating func foldConstantReshape(_ position: Int) throws {
        let node = graph.nodes[position]
        guard node.outputs.count == 1, let output = node.outputs.first, let input = node.inputs.first,
              let (constant, parameter) = privateConstant(input),
              graph.nodes.filter({ $0.parameters.contains(parameter.name) }).count == 1,
              let outputShape = try knownShape(output, of: node, operand: parameter.shape) else { return }
        guard let count = outputShape.checkedProduct, let size = parameter.dtype.byteSize, count <= Self.foldedElementLimit else { return }
        let picks: [Int]?
        switch node.op {
        case .onnx(.unsqueeze), .onnx(.squeeze):
            picks = nil
        case .reshape(let a) where a.includesBatch && node.inputs.count == 1:
            picks = nil
        case .onnx(.slice(let a)) where node.inputs.count == 1:
            guard let kept = ElementSelection.keptIndices(shape: parameter.shape, starts: a.starts, ends: a.ends, axes: a.axes, steps: a.steps),
                  kept.map(\.count) == outputShape else { return }
            picks = ElementSelection.positions(kept: kept, shape: parameter.shape)
        case .onnx(.expand) where node.inputs.count == 2:
            // An Expand over the batch axis (torch's class token, `expand(n, -1, -1)`) is a weight
            // broadcast over the batch: `foldBatchBroadcastWeights` writes it as one.
            guard outputShape.count == parameter.shape.count, outputShape.first == parameter.shape.first,
                  let (_, sources) = Broadcasting.sources([parameter.shape, outputShape], limit: count), sources[0].count == count else { return }
            picks = sources[0]
        default:
            return
        }
        if let picks {
            let bytes = try parameter.storage.bytes()
            guard bytes.count == parameter.elementCount * size else { return }
            var picked = [UInt8](repeating: 0, count: count * size)
            for (target, source) in picks.enumerated() {
                picked[(target * size)..<((target + 1) * size)] = bytes[(source * size)..<((source + 1) * size)]
            }
            graph.parameters[parameter.name]?.storage = TensorStorage(bytes: picked)
        } else if count != parameter.elementCount {
            return
        }
        graph.parameters[parameter.name]?.shape = outputShape
        // The readers, later in this sweep, find the constant: chains fold in one sweep. It keeps its
        // own name (a weight's, torch's `registers`), which the layers made of it are named after.
        if graphOutputs.contains(output) {
            graph.nodes[constant].outputs = node.outputs
            producers[output] = constant
        } else {
            rename(output, to: input)
            consumers[input] = consumers[output]
        }
        removed.insert(node.name)
    }

    /// The output's lengths when all are known; an Expand's from its constant shape operand (shape
    /// inference leaves the lengths of a shape given as a tensor unknown).
    func knownShape(_ output: String, of node: Node, operand: [Int]) throws -> [Int]? {
        if let dimensions = shape(output)?.dimensions, dimensions.allSatisfy({ $0 != nil }) { return dimensions.compactMap { $0 } }
        guard case .onnx(.expand) = node.op, node.inputs.count == 2, let (_, target) = constant(node.inputs[1]),
              target.dtype == .int64, target.shape.count == 1 else { return nil }
        let bytes = try target.storage.bytes()
        guard bytes.count == target.elementCount * 8 else { return nil }
        let lengths = bytes.withUnsafeBytes { raw in (0..<target.elementCount).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
        return Broadcasting.shape([operand, lengths])
    }

    /// Folding makes the values it writes: a bound on what one node may expand a constant into.
    static let foldedElementLimit = 1 << 24
}
