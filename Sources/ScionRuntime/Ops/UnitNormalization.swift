import ScionIR

/// UnitNormalization: `y = x / n`, `n = max(sqrt(Σ x²), minimumNorm)` over the normalized axes,
/// computed with those axes moved last (as LayerNormalization does). VJP: where the norm is above
/// the floor, `dx = (dy - y · Σ dy·y) / n`; at the floor n is a constant, `dx = dy / n`.
extension Executor {
    func unitNormalization(_ node: Node, _ x: RuntimeTensor, _ a: UnitNormalizationAttributes) throws -> RuntimeTensor {
        try Self.unitNormalized(node, x, a, dy: nil).y
    }

    /// y, and dx when `dy` is given.
    static func unitNormalized(_ node: Node, _ x: RuntimeTensor, _ a: UnitNormalizationAttributes, dy: RuntimeTensor?) throws
        -> (y: RuntimeTensor, dx: RuntimeTensor?)
    {
        let axes = Array(Set(a.axes.map { $0 < 0 ? $0 + x.rank : $0 })).sorted()
        guard !axes.isEmpty, axes.allSatisfy({ (1..<x.rank).contains($0) }) else {
            throw RuntimeError(node.name, "UnitNormalization over axes \(a.axes) of rank \(x.rank)")
        }
        let permutation = (0..<x.rank).filter { !axes.contains($0) } + axes
        let inverse = (0..<x.rank).map { axis in permutation.firstIndex(of: axis) ?? axis }
        let moved = Kernels.transpose(x, permutation)
        let gradient = dy.map { Kernels.transpose($0, permutation) }
        let inner = axes.map { x.shape[$0] }.reduce(1, *)
        var y = moved.data
        var dx = gradient?.data
        for start in stride(from: 0, to: moved.count, by: max(inner, 1)) {
            var squares: Float = 0
            for i in start..<(start + inner) { squares += moved.data[i] * moved.data[i] }
            let norm = squares.squareRoot()
            let divisor = max(norm, a.minimumNorm)
            for i in start..<(start + inner) { y[i] = moved.data[i] / divisor }
            guard let g = gradient?.data else { continue }
            var dot: Float = 0
            if norm > a.minimumNorm { for i in start..<(start + inner) { dot += g[i] * y[i] } }
            for i in start..<(start + inner) { dx?[i] = (g[i] - y[i] * dot) / divisor }
        }
        let output = Kernels.transpose(RuntimeTensor(shape: moved.shape, data: y), inverse)
        return (output, dx.map { Kernels.transpose(RuntimeTensor(shape: moved.shape, data: $0), inverse) })
    }
}

extension Trainer {
    func unitNormalizationBackward(_ node: Node, _ a: UnitNormalizationAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) throws
        -> StepGradients
    {
        StepGradients(inputs: [try Executor.unitNormalized(node, x, a, dy: dy).dx])
    }
}
