import ScionIR

/// Folding of what exporters build attention masks with: torch's causal mask is a literal filled
/// to the sequence's square (Expand), then cut to a triangle (Trilu). With the lengths known every
/// operand is a constant, and the mask becomes one value instead of ops Keras cannot hold.
/// Weights (float initializers) are never folded: training may change them.
extension ONNXImportSession {
    /// Expand of a constant to a constant shape: numpy broadcasting, where a 1 keeps the input's length.
    mutating func foldExpand(_ node: ONNXNode, output: String) throws -> Bool {
        guard node.inputs.count == 2, let data = constants[node.inputs[0]], !(data.fromInitializer && data.dtype.isFloatingPoint),
              let target = try numbers(node.inputs[1])?.integers, target.allSatisfy({ $0 >= 0 && $0 <= Int64(Self.foldingLimit) }),
              let values = try numbers(node.inputs[0]),
              let (shape, sources) = Broadcasting.sources([data.shape, target.map { Int($0) }], limit: Self.foldingLimit) else { return false }
        constants[output] = make(values.picking(sources[0]), dtype: data.dtype, shape: shape)
        return true
    }

    /// Trilu of a constant: zeros above (upper=0) or below (upper=1) the k-th diagonal of the last two axes.
    mutating func foldTrilu(_ node: ONNXNode, output: String) throws -> Bool {
        guard let data = constants[node.inputs[0]], !(data.fromInitializer && data.dtype.isFloatingPoint), data.shape.count >= 2,
              let values = try numbers(node.inputs[0]) else { return false }
        var diagonal: Int64 = 0
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard let k = try numbers(node.inputs[1])?.integers, k.count == 1 else { return false }
            diagonal = k[0]
        }
        let upper = intAttribute(node, "upper", 1) != 0
        let (rows, columns) = (data.shape[data.shape.count - 2], data.shape[data.shape.count - 1])
        let keep: (Int) -> Bool = { flat in
            let offset = Int64(flat % columns) - Int64(flat / columns % rows)
            return upper ? offset >= diagonal : offset <= diagonal
        }
        let result: ConstantNumbers = switch values {
        case .integers(let numbers): .integers(numbers.indices.map { keep($0) ? numbers[$0] : 0 })
        case .reals(let numbers): .reals(numbers.indices.map { keep($0) ? numbers[$0] : 0 })
        }
        constants[output] = make(result, dtype: data.dtype, shape: data.shape)
        return true
    }
}
