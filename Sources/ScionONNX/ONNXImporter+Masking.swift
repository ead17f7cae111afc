import ScionIR

/// Keras's Masking as Scion's ONNX writer spells it (ONNX has no op for it), folded back into one
/// node at import so that run, diff and the Keras writers see the layer again:
///
/// ```
///  Where(ReduceSum(Cast<float>(Not(Equal(x, v))), axes [-1], keepdims) > 0, x, 0)  →  Masking(v)
/// ```
///
/// Exact: the chain computes Masking's `where(any(x != v, axis=-1, keepdims=True), x, 0)`; a chain
/// that differs in any node, constant or reader is left as read.
extension ONNXImportSession {
    mutating func foldMaskingChains() {
        let (producers, readers) = (graph.producers, graph.readerCounts)
        let outputs = Set(graph.outputs)
        /// The node producing `value` when it is `value`'s only reader's business (one reader, not an output).
        func privateProducer(_ value: String) -> Node? {
            guard readers[value] == 1, !outputs.contains(value), let position = producers[value] else { return nil }
            return graph.nodes[position]
        }
        func scalar(_ value: String) -> Float? {
            guard let position = producers[value], case .onnx(.constant) = graph.nodes[position].op,
                  let name = graph.nodes[position].parameters.first, let parameter = graph.parameters[name], parameter.dtype == .float32,
                  let value = parameter.scalarValue else { return nil }
            return Float(value)
        }
        var removed = Set<String>()
        for position in graph.nodes.indices {
            let select = graph.nodes[position]
            guard case .onnx(.select) = select.op, select.inputs.count == 3, scalar(select.inputs[2]) == 0 else { continue }
            let x = select.inputs[1]
            guard graph.values[x]?.dtype == .float32, let rank = graph.values[x]?.shape?.rank, rank >= 2,
                  let greater = privateProducer(select.inputs[0]), case .onnx(.comparison(.greater)) = greater.op,
                  greater.inputs.count == 2, scalar(greater.inputs[1]) == 0,
                  let sum = privateProducer(greater.inputs[0]), case .onnx(.reduce(let reduction)) = sum.op,
                  reduction.kind == .sum, reduction.keepDimensions, reduction.axes == [-1] || reduction.axes == [rank - 1],
                  let cast = sum.inputs.first.flatMap(privateProducer), case .onnx(.cast(let conversion)) = cast.op,
                  conversion.to == .float32,
                  let not = cast.inputs.first.flatMap(privateProducer), case .onnx(.unary(.not)) = not.op,
                  let equal = not.inputs.first.flatMap(privateProducer), case .onnx(.comparison(.equal)) = equal.op,
                  equal.inputs.count == 2, equal.inputs[0] == x, let maskValue = scalar(equal.inputs[1]) else { continue }
            graph.nodes[position].op = .masking(MaskingAttributes(maskValue: maskValue))
            graph.nodes[position].inputs = [x]
            graph.nodes[position].parameters = []
            graph.info.nodeTypes[select.name] = "Masking"
            removed.formUnion([greater, sum, cast, not, equal].map(\.name))
        }
        guard !removed.isEmpty else { return }
        graph.nodes.removeAll { removed.contains($0.name) }
        // The chain's constants (the mask value, the zeros) go with it when nothing else reads them.
        let read = Set(graph.nodes.flatMap(\.inputs)).union(outputs)
        let unreadNodes = graph.nodes.filter { node in
            if case .onnx(.constant) = node.op { return node.outputs.allSatisfy { !read.contains($0) } }
            return false
        }
        let unread = Set(unreadNodes.map(\.name))
        for name in unread { graph.info.nodeTypes[name] = nil }
        graph.nodes.removeAll { unread.contains($0.name) }
        let used = Set(graph.nodes.flatMap(\.parameters))
        for name in Set(unreadNodes.flatMap(\.parameters)) where !used.contains(name) { graph.parameters[name] = nil }
    }
}
