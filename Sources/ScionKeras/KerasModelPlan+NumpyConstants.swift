import ScionIR

/// Elementwise ops with a constant tensor operand, written as one keras.ops call with the numbers in
/// it as a numpy array, which Keras 3 saves and reloads without custom objects:
///
/// ```
///  Constant [1, 16, 1, 16, 16] ─┐
///  x ───────────────────────── Add      →   Add(x, {"class_name": "__numpy__", "config": {"value": [...], "dtype": "float32"}})
/// ```
///
/// Swin's shifted-window attention mask and the relative position bias torch folds into one tensor
/// read like this. Keras holds no variable for such an array: the numbers are frozen in the config.
enum KerasNumpyOperands {
    /// The call for an elementwise `node` one operand of which a constant node holds, reading only its
    /// tensor; nil when `node` is not one.
    static func call(for node: Node, in graph: Graph) throws -> (node: Node, specification: KerasLayerSpecification)? {
        guard node.inputs.count == 2 else { return nil }
        let className: String
        switch node.op {
        case .elementwise(.add): className = "Add"
        case .elementwise(.subtract): className = "Subtract"
        case .elementwise(.multiply): className = "Multiply"
        case .elementwise(.divide): className = "TrueDivide"
        case .elementwise(.power): className = "Power"
        case .elementwise(.maximum): className = "Maximum"
        case .elementwise(.minimum): className = "Minimum"
        case .onnx(.comparison(let comparison)): className = KerasOperationWriter.comparisonClass(comparison)
        default: return nil
        }
        guard let constantPosition = [1, 0].first(where: { array(node.inputs[$0], for: node.op, in: graph) != nil && Graph.takesNumpyOperand(node.op, at: $0) }),
              let (shape, dtype, values) = array(node.inputs[constantPosition], for: node.op, in: graph) else { return nil }
        var reading = node
        reading.inputs = [node.inputs[1 - constantPosition]]
        // A comparison's scalar stays an array: the reader makes a constant of it (an arithmetic scalar is a Rescaling).
        let written = numpy(values, shape: shape, dtype: dtype, scalarAsArray: Graph.takesIntegerNumpyOperand(node.op))
        let arguments: [KerasCallArgument] = constantPosition == 1 ? [.tensor, .constant(written)] : [.constant(written), .tensor]
        return (reading, KerasOperationWriter.call(className, arguments: arguments))
    }

    /// The constant's numbers when `op` takes it as an array: floats, or for a comparison also integers.
    static func array(_ value: String, for op: Op, in graph: Graph) -> (shape: [Int], dtype: DType, values: [Double])? {
        if let reals = graph.constantReals(value) { return reals }
        guard Graph.takesIntegerNumpyOperand(op), let (shape, integers) = graph.constantIntegers(value), integers.count <= Graph.numpyOperandLimit,
              let position = graph.producers[value], let parameter = graph.parameter(of: graph.nodes[position], role: .value) else { return nil }
        return (shape, parameter.dtype, integers.map(Double.init))
    }

    /// Keras 3's serialization of a numpy array; a scalar is a plain number, as Keras writes it,
    /// unless `scalarAsArray`.
    static func numpy(_ values: [Double], shape: [Int], dtype: DType, scalarAsArray: Bool = false) -> JSON {
        guard !shape.isEmpty || scalarAsArray else { return .number(values.first ?? 0) }
        return .object(["class_name": "__numpy__", "config": .object(["value": nested(values, shape: shape), "dtype": .string(dtype.rawValue)])])
    }

    /// Row-major `values` as nested JSON lists of `shape`.
    private static func nested(_ values: ArraySlice<Double>, shape: ArraySlice<Int>) -> JSON {
        guard let first = shape.first else { return .number(values.first ?? 0) }
        let stride = shape.dropFirst().reduce(1, *)
        let start = values.startIndex
        return .array((0..<first).map { nested(values[(start + $0 * stride)..<(start + ($0 + 1) * stride)], shape: shape.dropFirst()) })
    }

    private static func nested(_ values: [Double], shape: [Int]) -> JSON { nested(values[...], shape: shape[...]) }
}
