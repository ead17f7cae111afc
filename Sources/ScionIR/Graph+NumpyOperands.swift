/// Constant tensors that the Keras writer spells as numpy arrays inside a keras.ops call
/// (`keras.ops.add(x, np.array(...))`, saved by Keras 3 as `{"class_name": "__numpy__", ...}`): the
/// operand of an elementwise op that is neither a scalar nor a per-channel vector (those become a
/// Rescaling). Swin's shifted-window attention mask and its relative position bias (torch folds the
/// table's gather into one tensor) are such operands. The numbers are frozen in the config: Keras
/// trains no variable for them, and the Keras reader reads them back as non-trainable constants.
extension Graph {
    /// Elements a numpy operand may hold: the config is JSON text, one number each.
    public static let numpyOperandLimit = 1 << 16

    /// Whether `op` reads its input at `position` as a numpy array written into its keras.ops call.
    public static func takesNumpyOperand(_ op: Op, at position: Int) -> Bool {
        if case .onnx(.comparison) = op { return position < 2 }
        guard case .elementwise(let operation) = op else { return false }
        return operation != .average && position < 2
    }

    /// Whether `op` also takes an integer array that way: a comparison (`keras.ops.not_equal(tokens, 0)`,
    /// a padding mask).
    public static func takesIntegerNumpyOperand(_ op: Op) -> Bool {
        if case .onnx(.comparison) = op { return true }
        return false
    }

    /// The float numbers (row-major, as Double) and shape of the constant node producing `value`,
    /// when it is small enough to write into a config and every number is finite (JSON has no NaN).
    public func constantReals(_ value: String) -> (shape: [Int], dtype: DType, values: [Double])? {
        guard let position = producers[value], case .onnx(.constant) = nodes[position].op,
              let parameter = parameter(of: nodes[position], role: .value), parameter.dtype == .float32 || parameter.dtype == .float64,
              let count = parameter.shape.checkedProduct, count <= Self.numpyOperandLimit,
              let bytes = try? parameter.storage.bytes(), bytes.count == count * (parameter.dtype.byteSize ?? 0) else { return nil }
        let values: [Double] = bytes.withUnsafeBytes { raw in
            parameter.dtype == .float32 ? raw.bindMemory(to: Float.self).map { Double($0) } : Array(raw.bindMemory(to: Double.self))
        }
        guard values.allSatisfy(\.isFinite) else { return nil }
        return (parameter.shape, parameter.dtype, values)
    }

    /// Whether every reader of the constant `value` (not a graph output) takes it as an operand the
    /// Keras writer puts into its call: integers for Gather and Expand (`takesConstantOperand`), float
    /// arrays for elementwise ops (`takesNumpyOperand`).
    public func isWrittenIntoCalls(constant value: String, readers: [Int]) -> Bool {
        guard !readers.isEmpty, !outputs.contains(value) else { return false }
        let integral = constantIntegers(value) != nil
        let real = !integral && constantReals(value) != nil
        guard integral || real else { return false }
        return readers.allSatisfy { reader in
            let node = nodes[reader]
            return node.inputs.enumerated().allSatisfy { position, input in
                guard input == value else { return true }
                if integral, Self.takesConstantOperand(node.op, at: position) { return true }
                // One constant per call: the other operand is the tensor.
                return (real || (integral && Self.takesIntegerNumpyOperand(node.op))) && node.inputs.count == 2
                    && node.inputs[1 - position] != value && Self.takesNumpyOperand(node.op, at: position)
            }
        }
    }
}
