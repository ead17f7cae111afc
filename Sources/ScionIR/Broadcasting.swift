/// Numpy's broadcasting rule, written once for every place that combines tensors of different
/// shapes: the ONNX importer's constant and symbolic folding, the attention pattern's probe and the
/// executor. Shapes are aligned at their last axis; along each axis the lengths must be equal or 1.
public enum Broadcasting {
    /// Row-major strides of `shape`: the last axis steps by 1.
    public static func strides(_ shape: [Int]) -> [Int] {
        var result = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in shape.indices.reversed() {
            result[axis] = step
            step = step &* shape[axis]
        }
        return result
    }

    /// The shape every one of `shapes` broadcasts to; nil when two lengths on one axis differ and
    /// neither is 1, or a length is negative.
    public static func shape(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            let offset = rank - shape.count
            for (axis, length) in shape.enumerated() {
                guard length >= 0 else { return nil }
                guard length != 1 else { continue }
                guard result[offset + axis] == 1 || result[offset + axis] == length else { return nil }
                result[offset + axis] = length
            }
        }
        return result
    }

    /// The broadcast shape and, for each operand, the flat position that each element of the result
    /// (in row-major order) reads from it: `sources[operand][element]`. Nil when the shapes do not
    /// broadcast or the result would hold more than `limit` elements (folding is for small tensors).
    public static func sources(_ shapes: [[Int]], limit: Int) -> (shape: [Int], sources: [[Int]])? {
        guard let shape = shape(shapes), let count = shape.checkedProduct, count <= limit else { return nil }
        let rank = shape.count
        let outputStrides = strides(shape)
        let sources = shapes.map { operand -> [Int] in
            let aligned = Array(repeating: 1, count: rank - operand.count) + operand
            let operandStrides = strides(aligned)
            return (0..<count).map { element in
                var rest = element, position = 0
                for axis in 0..<rank {
                    let coordinate = rest / outputStrides[axis]
                    rest %= outputStrides[axis]
                    if aligned[axis] != 1 { position += coordinate * operandStrides[axis] }
                }
                return position
            }
        }
        return (shape, sources)
    }
}
