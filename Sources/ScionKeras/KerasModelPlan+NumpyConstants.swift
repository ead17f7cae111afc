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
        guard node.inputs.count == 2, case .elementwise(let operation) = node.op else { return nil }
        let constantPosition: Int
        if graph.constantReals(node.inputs[1]) != nil, Graph.takesNumpyOperand(node.op, at: 1) {
            constantPosition = 1
        } else if graph.constantReals(node.inputs[0]) != nil, Graph.takesNumpyOperand(node.op, at: 0) {
            constantPosition = 0
        } else {
            return nil
        }
        guard let (shape, dtype, values) = graph.constantReals(node.inputs[constantPosition]) else { return nil }
        let className: String
        switch operation {
        case .add: className = "Add"
        case .subtract: className = "Subtract"
        case .multiply: className = "Multiply"
        case .divide: className = "TrueDivide"
        case .power: className = "Power"
        case .maximum: className = "Maximum"
        case .minimum: className = "Minimum"
        case .average: return nil
        }
        var reading = node
        reading.inputs = [node.inputs[1 - constantPosition]]
        let array = numpy(values, shape: shape, dtype: dtype)
        let arguments: [KerasCallArgument] = constantPosition == 1 ? [.tensor, .constant(array)] : [.constant(array), .tensor]
        return (reading, KerasOperationWriter.call(className, arguments: arguments))
    }

    /// Keras 3's serialization of a numpy array; a scalar is a plain number, as Keras writes it.
    static func numpy(_ values: [Double], shape: [Int], dtype: DType) -> JSON {
        guard !shape.isEmpty else { return .number(values.first ?? 0) }
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
