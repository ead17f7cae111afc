import ScionIR

/// What Keras's merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum) accept, after
/// `Merge.build` in keras/src/layers/merging/base_merge.py, against the numpy broadcasting of the
/// IR's elementwise op (and of ONNX, and of `keras.ops.add`):
///
/// ```
///  (N, 7, 6) + (N, 7, 6), (N, 1, 6) + (N, 7, 6)   same rank, one batch: the layer is numpy's broadcast
///  (1, 2, 6) + (2, 6)     Keras: "Cannot merge tensors with different batch sizes"      (dynamo's unrolled RNN)
///  (1, N, 6) + (N, 6)     Keras accepts (batch 1), then expands (N, 6) at axis 1: (N, 1, 6), and adds to (N, N, 6)
///  (N, 5, 3) + (N, 3)     Keras expands at axis 1: (N, 1, 3), numpy aligns the trailing axes instead
/// ```
///
/// A merge layer treats axis 0 as the batch and lines the other axes up after it, numpy lines every
/// axis up from the end; the two agree only for inputs of one rank whose batch does not broadcast.
/// So the writer writes a merge layer only then and a keras.ops call otherwise, and the reader reads a
/// merge layer as Keras computes it, refusing what Keras refuses.
enum KerasMergeShapes {
    /// Whether a Keras merge layer of inputs of these shapes accepts them and computes numpy's
    /// broadcast: every input of one known rank, and one batch length (equal, or unknown beside a
    /// known length that is not 1: a 1 beside an unknown batch may broadcast the batch itself, which
    /// Keras would record as a batch of 1).
    static func layerComputesBroadcast(_ shapes: [[Int?]]) -> Bool {
        guard let rank = shapes.first?.count, rank >= 1, shapes.allSatisfy({ $0.count == rank }) else { return false }
        let batches = shapes.map { $0[0] }
        let known = Set(batches.compactMap { $0 })
        if known.count > 1 { return false }
        if known == [1], batches.contains(where: { $0 == nil }) { return false }
        return true
    }

    /// Keras's refusal of a merge layer of inputs of these shapes, as `Merge.build` raises it; nil
    /// when Keras builds the layer.
    static func kerasRefusal(className: String, _ shapes: [[Int?]]) -> String? {
        let batches = Set(shapes.compactMap { $0.first ?? nil })
        guard batches.count <= 1 else {
            return "\(className) cannot merge tensors with different batch sizes \(shapes.map(spelled).joined(separator: " and ")) "
                + "(Keras's Merge.build refuses them: keras.models.load_model fails on this file)"
        }
        return nil
    }

    /// `(1, None, 6)`, as Keras prints a shape.
    static func spelled(_ shape: [Int?]) -> String {
        "(" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
    }

    /// Reads the merge layers of a Keras file as Keras runs them: one whose inputs Keras refuses is
    /// refused with Keras's reason, naming the layer; a lower-rank input is expanded at axis 1 until
    /// the ranks agree (an Unsqueeze before the op), as `Merge.call` does, instead of being lined up
    /// from the end by the IR's numpy broadcasting.
    static func readAsKeras(_ graph: inout Graph, file: String) throws {
        func isMergeLayer(_ node: Node) -> Bool {
            guard case .elementwise = node.op else { return false }
            return KerasImpliedMask.mergingClasses.contains(graph.info.nodeTypes[node.name] ?? "")
        }
        guard graph.nodes.contains(where: isMergeLayer) else { return }
        try graph.inferShapes()
        var position = 0
        while position < graph.nodes.count {
            defer { position += 1 }
            let node = graph.nodes[position]
            guard isMergeLayer(node), let className = graph.info.nodeTypes[node.name] else { continue }
            let shapes = node.inputs.map { graph.values[$0]?.shape?.dimensions }
            guard shapes.allSatisfy({ $0 != nil }) else { continue }
            let known = shapes.compactMap { $0 }
            if let refusal = kerasRefusal(className: className, known) {
                throw KerasError(.invalidConfig, file: file, subject: node.name, refusal)
            }
            let rank = known.map(\.count).max() ?? 0
            var expanded = node
            var inserted: [Node] = []
            for (index, shape) in known.enumerated() where shape.count < rank {
                guard !shape.isEmpty else {
                    throw KerasError(.invalidConfig, file: file, subject: node.name,
                                     "\(className) merges a scalar with tensors of rank \(rank); Keras merges tensors that have a batch axis")
                }
                let output = "\(node.name)#expanded\(index)"
                inserted.append(Node(name: output, op: .onnx(.unsqueeze(AxesAttributes(axes: Array(1...(rank - shape.count))))),
                                     inputs: [node.inputs[index]], outputs: [output], layer: output,
                                     scope: node.scope, trainable: node.trainable))
                expanded.inputs[index] = output
            }
            guard !inserted.isEmpty else { continue }
            graph.nodes[position] = expanded
            graph.nodes.insert(contentsOf: inserted, at: position)
            for member in inserted { graph.info.nodeTypes[member.name] = "ops.ExpandDims" }
            position += inserted.count
        }
    }
}
