import ScionIR

/// Ops that change only a tensor's shape or the order of its axes: Flatten, Reshape, Squeeze,
/// Unsqueeze, Transpose, Permute, and the value-preserving Identity and Cast. Forward kernels and
/// VJPs (a reshape's gradient is dy in the input's shape; a transpose's is dy transposed back).
extension Executor {
    func flatten(_ x: RuntimeTensor, _ a: FlattenAttributes) -> RuntimeTensor {
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        let leading = x.shape.prefix(axis).reduce(1, *)
        return RuntimeTensor(shape: [leading, x.count / max(leading, 1)], data: x.data)
    }

    func squeeze(_ node: Node, _ x: RuntimeTensor, _ a: AxesAttributes) throws -> RuntimeTensor {
        let axes = Set(a.axes.map { $0 < 0 ? $0 + x.rank : $0 })
        guard axes.allSatisfy({ (0..<x.rank).contains($0) && x.shape[$0] == 1 }) else {
            throw RuntimeError(node.name, "cannot squeeze axes \(a.axes) of \(x.shape)")
        }
        return RuntimeTensor(shape: x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element), data: x.data)
    }

    func unsqueeze(_ x: RuntimeTensor, _ a: AxesAttributes) -> RuntimeTensor {
        let rank = x.rank + a.axes.count
        let axes = Set(a.axes.map { $0 < 0 ? $0 + rank : $0 })
        var shape: [Int] = []
        var source = x.shape.makeIterator()
        for axis in 0..<rank { shape.append(axes.contains(axis) ? 1 : (source.next() ?? 1)) }
        return RuntimeTensor(shape: shape, data: x.data)
    }
}

extension Trainer {
    /// Flatten, Reshape, Squeeze, Unsqueeze, Identity and Cast keep every value in place: the
    /// gradient is dy in the input's shape.
    func reshapeBackward(_ x: RuntimeTensor, dy: RuntimeTensor) -> StepGradients {
        StepGradients(like: x, dy.data)
    }

    func transposeBackward(_ permutation: [Int], dy: RuntimeTensor) -> StepGradients {
        StepGradients(inputs: [Kernels.transpose(dy, Self.inverse(permutation))])
    }

    static func inverse(_ permutation: [Int]) -> [Int] {
        var result = permutation
        for (position, axis) in permutation.enumerated() { result[axis] = position }
        return result
    }
}

extension Executor {
    /// Values are held as float32, so a cast rounds each one to what the target type can hold (a
    /// float16 round trip loses what Keras's `cast(x, "float16")` loses; integers truncate toward zero
    /// as ONNX and numpy do). Integer casts of shape arithmetic stay exact below 2^24.
    func cast(_ x: RuntimeTensor, to dtype: DType) -> RuntimeTensor {
        let round: ((Float) -> Float)? = switch dtype {
        case .float16: { Float(Float16($0)) }
        case .bfloat16: { Float(bitPattern: ($0.bitPattern &+ 0x7FFF &+ (($0.bitPattern >> 16) & 1)) & 0xFFFF_0000) }
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64: { $0.isFinite ? $0.rounded(.towardZero) : $0 }
        case .bool: { $0 != 0 ? 1 : 0 }
        case .float32, .float64, .string: nil
        }
        guard let round else { return x }
        return RuntimeTensor(shape: x.shape, data: x.data.map(round))
    }
}
