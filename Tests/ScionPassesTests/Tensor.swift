import ScionIR

/// A dense float tensor for the reference evaluator.
struct Tensor: Equatable {
    var shape: [Int]
    var values: [Float]

    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var state = seed
        let values = (0..<(shape.checkedProduct ?? 0)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(truncatingIfNeeded: state >> 40) % 2001 - 1000) / 500
        }
        return Tensor(shape: shape, values: values)
    }
}

/// Largest difference between two equally shaped tensors, relative to their largest magnitude (at
/// least 1): summation order differs between layouts, so results agree to rounding, not bit for bit.
/// Infinity when shapes differ.
func largestDifference(_ a: Tensor, _ b: Tensor) -> Float {
    guard a.shape == b.shape else { return .infinity }
    let scale = max(1, a.values.reduce(0) { max($0, abs($1)) })
    return zip(a.values, b.values).reduce(0) { max($0, abs($1.0 - $1.1)) } / scale
}
