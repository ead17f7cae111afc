import CVectorKernels
import Foundation
import ScionIR

/// Activations: each one's forward function (`activate`, `elementFunction`, softmax and sparsemax)
/// and its derivative (`activationGradient`, `elementDerivative`), for activation layers and the
/// activations fused into Conv and Dense (Ops/Activation.swift, Ops/Convolution.swift, Ops/Dense.swift).
extension Kernels {
    static func activate(_ x: RuntimeTensor, _ activation: Activation, node: String) throws -> RuntimeTensor {
        switch activation {
        case .linear: return x
        case .softmax(let axis): return softmax(x, axis: axis, logarithm: false)
        case .logSoftmax(let axis): return softmax(x, axis: axis, logarithm: true)
        case .sparsemax(let axis): return sparsemax(x, axis: axis)
        case .relu(let maxValue, 0, 0):
            // The common case without a closure call per value.
            var y = x
            reluInPlace(&y, cap: maxValue ?? .infinity)
            return y
        case .swish, .sigmoid, .gelu:
            // EfficientNet's and the transformers' activations on every layer: CVectorKernels' loops
            // (16 lanes, over the cores when large), no closure call per value.
            var y = x
            ConvolutionEpilogue(bias: nil, activation: activation).applyToAll(&y.data)
            return y
        default:
            guard let f = elementFunction(activation) else {
                throw RuntimeError(node, "activation \(activation.displayName) is not supported by the executor yet")
            }
            return RuntimeTensor(shape: x.shape, data: x.data.map(f))
        }
    }

    /// The function an elementwise activation applies to each value.
    static func elementFunction(_ activation: Activation) -> ((Float) -> Float)? {
        switch activation {
        case .relu(let maxValue, let slope, let threshold):
            return { (v: Float) -> Float in
                if let maxValue, v >= maxValue { return maxValue }
                return v >= threshold ? v : slope * (v - threshold)
            }
        case .leakyRelu(let alpha): return { (v: Float) -> Float in v >= 0 ? v : alpha * v }
        case .elu(let alpha): return { (v: Float) -> Float in v > 0 ? v : alpha * (exp(v) - 1) }
        case .selu: return selu
        case .sigmoid: return sigmoid
        case .hardSigmoid(let alpha, let beta): return { (v: Float) -> Float in min(max(alpha * v + beta, 0), 1) }
        case .hardSwish: return { (v: Float) -> Float in v * min(max(v / 6 + 0.5, 0), 1) }
        case .swish: return { (v: Float) -> Float in v * sigmoid(v) }
        case .tanh: return { (v: Float) -> Float in Foundation.tanh(v) }
        case .gelu(let approximate): return approximate ? geluTanh : geluExact
        case .softplus: return softplus
        case .softsign: return { (v: Float) -> Float in v / (1 + abs(v)) }
        case .exponential: return { (v: Float) -> Float in exp(v) }
        case .mish: return { (v: Float) -> Float in v * Foundation.tanh(softplus(v)) }
        case .celu(let alpha): return { (v: Float) -> Float in max(v, 0) + min(0, alpha * (exp(v / alpha) - 1)) }
        case .squareplus(let b): return { (v: Float) -> Float in (v + (v * v + b).squareRoot()) / 2 }
        case .sparsePlus: return { (v: Float) -> Float in v <= -1 ? 0 : v >= 1 ? v : (v + 1) * (v + 1) / 4 }
        case .sparseSigmoid: return { (v: Float) -> Float in v <= -1 ? 0 : v >= 1 ? 1 : (v + 1) / 2 }
        case .tanhShrink: return { (v: Float) -> Float in v - Foundation.tanh(v) }
        case .softShrink(let t): return { (v: Float) -> Float in v > t ? v - t : v < -t ? v + t : 0 }
        case .hardShrink(let t): return { (v: Float) -> Float in abs(v) > t ? v : 0 }
        case .hardTanh: return { (v: Float) -> Float in min(max(v, -1), 1) }
        case .logSigmoid: return { (v: Float) -> Float in -softplus(-v) }
        default: return nil
        }
    }

    static func sigmoid(_ v: Float) -> Float { 1 / (1 + exp(-v)) }

    static func softplus(_ v: Float) -> Float { v > 20 ? v : log1p(exp(v)) }

    static func selu(_ v: Float) -> Float {
        let negative: Float = 1.6732632423543772 * (exp(v) - 1)
        return 1.0507009873554805 * (v > 0 ? v : negative)
    }

    static func geluExact(_ v: Float) -> Float {
        let scaled: Float = v / 1.4142135623730951
        return 0.5 * v * (1 + erf(scaled))
    }

    static func geluTanh(_ v: Float) -> Float {
        let inner: Float = 0.7978845608 * (v + 0.044715 * v * v * v)
        return 0.5 * v * (1 + Foundation.tanh(inner))
    }

    /// Sparsemax (Martins & Astudillo): the projection of each slice onto the probability simplex.
    static func sparsemax(_ x: RuntimeTensor, axis: Int) -> RuntimeTensor {
        let resolved = axis < 0 ? axis + x.rank : axis
        let length = x.shape[resolved], inner = x.shape[(resolved + 1)...].reduce(1, *)
        let outer = x.count / max(length * inner, 1)
        var data = x.data
        for o in 0..<outer {
            for i in 0..<inner {
                let positions = (0..<length).map { o * length * inner + i + $0 * inner }
                let sorted = positions.map { data[$0] }.sorted(by: >)
                var cumulative: Float = 0, support = 0, total: Float = 0
                for (k, value) in sorted.enumerated() {
                    cumulative += value
                    if 1 + Float(k + 1) * value > cumulative { support = k + 1; total = cumulative }
                }
                let threshold = (total - 1) / Float(max(support, 1))
                for position in positions { data[position] = max(data[position] - threshold, 0) }
            }
        }
        return RuntimeTensor(shape: x.shape, data: data)
    }

    static func softmax(_ x: RuntimeTensor, axis: Int, logarithm: Bool) -> RuntimeTensor {
        let resolved = axis < 0 ? axis + x.rank : axis
        let length = x.shape[resolved], inner = x.shape[(resolved + 1)...].reduce(1, *)
        let outer = x.count / max(length * inner, 1)
        var data = x.data
        if inner == 1 && length > 0 {
            // Over the last axis (attention's scores, a classifier's logits): contiguous rows,
            // CVectorKernels' 16-lane loop, the rows over the cores when there are many.
            data.withUnsafeMutableBufferPointer { buffer in
                let address = Int(bitPattern: buffer.baseAddress)
                overCoresWhenLarge(outer, valuesEach: length) { range in
                    guard let base = UnsafeMutablePointer<Float>(bitPattern: address) else { return }
                    scion_softmax_rows(base + range.lowerBound * length, range.count, length, logarithm ? 1 : 0)
                }
            }
            return RuntimeTensor(shape: x.shape, data: data)
        }
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * length * inner + i
                var peak = -Float.infinity
                for k in 0..<length { peak = max(peak, data[base + k * inner]) }
                var total: Float = 0
                for k in 0..<length { total += exp(data[base + k * inner] - peak) }
                for k in 0..<length {
                    let shifted = data[base + k * inner] - peak
                    data[base + k * inner] = logarithm ? shifted - log(total) : exp(shifted) / total
                }
            }
        }
        return RuntimeTensor(shape: x.shape, data: data)
    }

    /// dL/dx for `y = activation(x)`, given x, y and dL/dy. Derivatives at kinks follow JAX's
    /// (ReLU's is 0 at 0, ReLU6's 0 at 6), so results match Keras's JAX backend.
    static func activationGradient(_ activation: Activation, x: RuntimeTensor, y: RuntimeTensor, dy: [Float], node: String) throws -> [Float] {
        switch activation {
        case .linear:
            return dy
        case .softmax(let axis), .logSoftmax(let axis):
            // softmax: dx = y · (dy - Σ dy·y); log-softmax: dx = dy - softmax · Σ dy, along the axis.
            let logarithm = if case .logSoftmax = activation { true } else { false }
            let resolved = axis < 0 ? axis + y.rank : axis
            let length = y.shape[resolved], inner = y.shape[(resolved + 1)...].reduce(1, *)
            var dx = dy
            for o in 0..<(y.count / max(length * inner, 1)) {
                for i in 0..<inner {
                    let base = o * length * inner + i
                    var total: Float = 0
                    for k in 0..<length { total += logarithm ? dy[base + k * inner] : dy[base + k * inner] * y.data[base + k * inner] }
                    for k in 0..<length {
                        let at = base + k * inner
                        dx[at] = logarithm ? dy[at] - exp(y.data[at]) * total : y.data[at] * (dy[at] - total)
                    }
                }
            }
            return dx
        case .relu(let maxValue, let slope, let threshold) where x.count == dy.count:
            // The most common one, on every training step: a loop without a closure call (Kernels+GradientLoops.swift).
            return reluGradient(x: x.data, dy: dy, maxValue: maxValue, slope: slope, threshold: threshold)
        default:
            guard let derivative = elementDerivative(activation) else {
                throw RuntimeError(node, "activation \(activation.displayName) has no gradient yet")
            }
            var dx = dy
            for index in dx.indices { dx[index] *= derivative(x.data[index], y.data[index]) }
            return dx
        }
    }

    /// f'(x) for an elementwise activation, written with the input x and output y.
    static func elementDerivative(_ activation: Activation) -> ((Float, Float) -> Float)? {
        switch activation {
        case .relu(let maxValue, let slope, let threshold):
            return { x, _ in
                if let maxValue, x >= maxValue { return 0 }
                return x > threshold ? 1 : x < threshold ? slope : 0
            }
        case .leakyRelu(let alpha): return { x, _ in x >= 0 ? 1 : alpha }
        case .elu(let alpha): return { x, y in x > 0 ? 1 : y + alpha }
        case .selu: return { x, _ in x > 0 ? 1.0507009873554805 : 1.0507009873554805 * 1.6732632423543772 * exp(x) }
        case .sigmoid: return { _, y in y * (1 - y) }
        case .hardSigmoid(let alpha, let beta): return { x, _ in
            let t = alpha * x + beta
            return t > 0 && t < 1 ? alpha : 0
        }
        case .hardSwish: return { x, _ in x < -3 ? 0 : x > 3 ? 1 : (2 * x + 3) / 6 }
        case .swish: return { x, _ in
            let s = sigmoid(x)
            return s + x * s * (1 - s)
        }
        case .tanh: return { _, y in 1 - y * y }
        case .gelu(let approximate):
            if approximate {
                return { x, _ in
                    let c: Float = 0.7978845608
                    let t = Foundation.tanh(c * (x + 0.044715 * x * x * x))
                    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
                }
            }
            return { x, _ in 0.5 * (1 + erf(x / 1.4142135623730951)) + x * exp(-x * x / 2) / 2.5066282746310002 }
        case .softplus: return { x, _ in sigmoid(x) }
        case .softsign: return { x, _ in 1 / ((1 + abs(x)) * (1 + abs(x))) }
        case .exponential: return { _, y in y }
        case .mish: return { x, _ in
            let t = Foundation.tanh(softplus(x))
            return t + x * (1 - t * t) * sigmoid(x)
        }
        case .hardTanh: return { x, _ in x > -1 && x < 1 ? 1 : 0 }
        case .logSigmoid: return { x, _ in sigmoid(-x) }
        case .tanhShrink: return { x, _ in
            let t = Foundation.tanh(x)
            return t * t
        }
        case .celu(let alpha): return { x, _ in x > 0 ? 1 : exp(x / alpha) }
        case .squareplus(let b): return { x, _ in (1 + x / (x * x + b).squareRoot()) / 2 }
        case .sparsePlus: return { x, _ in x <= -1 ? 0 : x >= 1 ? 1 : (x + 1) / 2 }
        case .sparseSigmoid: return { x, _ in x <= -1 || x >= 1 ? 0 : 0.5 }
        case .softShrink(let t): return { x, _ in x > t || x < -t ? 1 : 0 }
        case .hardShrink(let t): return { x, _ in abs(x) > t ? 1 : 0 }
        default: return nil
        }
    }
}
