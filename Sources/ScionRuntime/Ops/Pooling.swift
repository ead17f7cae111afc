import Foundation
import ScionIR

/// Pooling and reductions: `pool` (windows), `globalPool` (whole spatial axes) and `reduce` (any
/// axes). Their forward kernels are `Kernels.pool`, `Kernels.globalPool` and `Kernels.reduce`
/// (Kernels+Pooling.swift, Kernels+Tensors.swift), called straight from `Executor.evaluate`; the
/// pooling gradients are in Kernels+Gradients.swift; the reductions' VJP is here.
extension Trainer {
    /// Dilated windows (ONNX MaxPool only) have no backward kernel yet: nil, which names the node.
    func poolBackward(_ node: Node, _ a: PoolAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients? {
        guard a.isDense else { return nil }
        return StepGradients(inputs: [try Kernels.poolBackward(x, a, dy: dy, node: node.name)])
    }

    /// With Keras's mask, the second input is the mask source, which gets no gradient (the mask is a
    /// comparison).
    func globalPoolBackward(_ node: Node, _ a: GlobalPoolAttributes, _ inputs: [RuntimeTensor], dy: RuntimeTensor) throws -> StepGradients {
        guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
        guard a.maskValue != nil else { return StepGradients(inputs: [Kernels.globalPoolBackward(x, a, dy: dy)]) }
        let source = inputs.count > 1 ? inputs[1] : nil
        return StepGradients(inputs: [try Kernels.maskedGlobalAverageBackward(x, source: source, a, dy: dy, node: node.name), nil])
    }

    /// Each input element's share of its reduced value's gradient (maxima and minima split it among ties).
    func reduceBackward(_ a: ReduceAttributes, _ x: RuntimeTensor, y: RuntimeTensor, dy: RuntimeTensor, node: String) throws -> StepGradients {
        let axes = Set((a.axes ?? Array(0..<x.rank)).map { $0 < 0 ? $0 + x.rank : $0 })
        let kept = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let keptStrides = RuntimeTensor(shape: kept, data: []).strides, strides = x.strides
        let group = Float(x.count / max(kept.reduce(1, *), 1))
        func target(_ position: Int) -> Int {
            var index = 0
            for axis in 0..<x.rank where !axes.contains(axis) { index += (position / strides[axis] % x.shape[axis]) * keptStrides[axis] }
            return index
        }
        var ties = [Float](repeating: 0, count: y.count)
        if a.kind == .maximum || a.kind == .minimum {
            for position in 0..<x.count where x.data[position] == y.data[target(position)] { ties[target(position)] += 1 }
        }
        var dx = [Float](repeating: 0, count: x.count)
        for position in 0..<x.count {
            let t = target(position), v = x.data[position], g = dy.data[t]
            switch a.kind {
            case .sum: dx[position] = g
            case .mean: dx[position] = g / group
            case .maximum, .minimum: dx[position] = v == y.data[t] ? g / ties[t] : 0
            case .sumSquare: dx[position] = 2 * v * g
            case .l1: dx[position] = v > 0 ? g : v < 0 ? -g : 0
            case .l2: dx[position] = y.data[t] > 0 ? g * v / y.data[t] : 0
            case .logSumExp: dx[position] = g * exp(v - y.data[t])
            case .product:
                guard v != 0 else { throw RuntimeError(node, "ReduceProd over a zero has no gradient here") }
                dx[position] = g * y.data[t] / v
            }
        }
        return StepGradients(inputs: [RuntimeTensor(shape: x.shape, data: dx)])
    }
}
