import ScionIR

/// Gather and Expand whose second operand a constant node holds, written as one keras.ops call with
/// the numbers in it (the constant node itself is not written: Keras layers take no constant
/// tensors). torch's `x[:, 0]` (dynamo's `node_select`) is a Gather of a scalar index:
///
/// ```
///  Constant 0 (int64, shape [])  ─┐
///  x ─────────────────────────── Gather axis 1     →   Take(x, 0, axis=1)        (the axis goes, as in numpy)
///  x ─ Expand to Constant [4, 2, 16]               →   BroadcastTo(x, shape=[4, 2, 16])
/// ```
enum KerasConstantOperands {
    /// Positions of constant nodes every reader of which takes them as a constant operand.
    static func absorbedConstants(in graph: Graph) -> Set<Int> {
        var readers: [String: [Int]] = [:]
        for (position, node) in graph.nodes.enumerated() { for input in node.inputs { readers[input, default: []].append(position) } }
        let outputs = Set(graph.outputs)
        var absorbed = Set<Int>()
        for (position, node) in graph.nodes.enumerated() {
            guard case .onnx(.constant) = node.op, node.outputs.count == 1, let output = node.outputs.first,
                  !outputs.contains(output), let found = readers[output] else { continue }
            if graph.isWrittenIntoCalls(constant: output, readers: found) { absorbed.insert(position) }
        }
        return absorbed
    }

    /// The call for `node` with its constant operand written in, and the node reading only its
    /// tensor; nil when `node` has no constant operand.
    static func call(for node: Node, in graph: Graph) throws -> (node: Node, specification: KerasLayerSpecification)? {
        guard node.inputs.count == 2, Graph.takesConstantOperand(node.op, at: 1),
              let (shape, values) = graph.constantIntegers(node.inputs[1]) else { return nil }
        var reading = node
        reading.inputs = [node.inputs[0]]
        let dataShape = graph.values[node.inputs[0]]?.shape
        if case .onnx(.gather(let a)) = node.op {
            let rank = dataShape?.rank
            let axis = a.axis < 0 ? a.axis + (rank ?? 0) : a.axis
            guard axis >= 0, rank.map({ axis < $0 }) ?? true else {
                throw KerasConfigWriter.Refusal(reason: "Gather axis \(a.axis) is outside the data's rank")
            }
            // Negative indices count from the end; spelled out where the length is known, so every
            // backend's take reads them alike.
            let length = dataShape.flatMap { axis < $0.rank ? $0[axis] : nil }
            let resolved = values.map { index in index < 0 ? length.map { index + $0 } ?? index : index }
            return (reading, KerasOperationWriter.call("Take", config: ["axis": .number(Double(axis))],
                                                       arguments: [.tensor, .constant(nested(resolved, shape: shape))]))
        }
        // Expand: numpy broadcasting to the shape, where ONNX's 1 keeps the input's length.
        guard let input = dataShape?.dimensions else {
            throw KerasConfigWriter.Refusal(reason: "Expand of a value of unknown rank has no Keras equivalent")
        }
        let rank = max(input.count, values.count)
        let padded = Array(repeating: 1, count: rank - input.count) + input.map { $0 ?? -1 }
        let target = Array(repeating: 1, count: rank - values.count) + values
        var result: [Int] = []
        for (have, want) in zip(padded, target) {
            if have == -1, want != 1 {
                // A length known only at run time broadcast to `want` is `want` (or the input is invalid).
                result.append(want)
            } else if want == 1 || want == have {
                guard have != -1 else {
                    throw KerasConfigWriter.Refusal(reason: "Expand keeps a length not known before run time; keras.ops.broadcast_to needs every length")
                }
                result.append(have)
            } else {
                guard have == 1 else { throw KerasConfigWriter.Refusal(reason: "Expand of length \(have) to \(want) does not broadcast") }
                result.append(want)
            }
        }
        return (reading, KerasOperationWriter.call("BroadcastTo", config: ["shape": KerasConfigWriter.ints(result)]))
    }

    /// Row-major `values` as nested JSON lists of `shape` (a number for a scalar).
    static func nested(_ values: [Int], shape: [Int]) -> JSON {
        guard let first = shape.first else { return .number(Double(values.first ?? 0)) }
        let stride = shape.dropFirst().reduce(1, *)
        return .array((0..<first).map { nested(Array(values[($0 * stride)..<(($0 + 1) * stride)]), shape: Array(shape.dropFirst())) })
    }
}
