/// Operands that Keras's operation nodes take as Python constants written into the call
/// (`keras.ops.take(x, [0, 2], axis=1)`, `keras.ops.broadcast_to(x, (4, 2, 16))`) rather than as
/// tensors: Gather's indices and Expand's shape when a constant node holds them. The layout pass
/// lets such constant nodes through and the Keras writer writes their numbers into the call.
extension Graph {
    /// Whether `op` reads its input at `position` as a constant operand when one is there.
    public static func takesConstantOperand(_ op: Op, at position: Int) -> Bool {
        if case .onnx(.gather) = op { return position == 1 }
        if case .onnx(.expand) = op { return position == 1 }
        return false
    }

    /// The integers a constant node holds for `value` (row-major) and their shape; nil when `value`
    /// is not an integer constant's output.
    public func constantIntegers(_ value: String) -> (shape: [Int], values: [Int])? {
        guard let position = producers[value], case .onnx(.constant) = nodes[position].op,
              let parameter = parameter(of: nodes[position], role: .value),
              let bytes = try? parameter.storage.bytes() else { return nil }
        let values: [Int]
        switch parameter.dtype {
        case .int64: values = bytes.withUnsafeBytes { $0.bindMemory(to: Int64.self).map { Int($0) } }
        case .int32: values = bytes.withUnsafeBytes { $0.bindMemory(to: Int32.self).map { Int($0) } }
        default: return nil
        }
        guard values.count == (parameter.shape.checkedProduct ?? -1) else { return nil }
        return (parameter.shape, values)
    }
}
