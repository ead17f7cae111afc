import Foundation
import ScionIR

/// Activation derivatives and BatchNormalization in training mode (forward with batch statistics,
/// and its backward).
extension Kernels {
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

    /// What BatchNormalization's training-mode backward needs: the normalized input and each
    /// channel's `1 / sqrt(variance + epsilon)`; with the batch's mean and (biased) variance, which
    /// update the moving averages.
    struct BatchStatistics {
        var normalized: [Float]
        var inverseDeviation: [Float]
        var mean: [Float]
        var variance: [Float]
    }

    /// BatchNormalization with the batch's own statistics over every axis but `axis`, as Keras does
    /// while training: `y = gamma · (x - mean) / sqrt(variance + epsilon) + beta`.
    static func batchNormalizationTraining(_ x: RuntimeTensor, axis: Int, gamma: [Float], beta: [Float],
                                           epsilon: Float) -> (RuntimeTensor, BatchStatistics) {
        let channels = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
        let outer = x.count / max(channels * inner, 1), count = Double(max(outer * inner, 1))
        var sums = [Double](repeating: 0, count: channels), squares = [Double](repeating: 0, count: channels)
        for o in 0..<outer {
            for c in 0..<channels {
                let start = (o * channels + c) * inner
                for index in start..<(start + inner) { sums[c] += Double(x.data[index]) }
            }
        }
        let mean = sums.map { $0 / count }
        for o in 0..<outer {
            for c in 0..<channels {
                let start = (o * channels + c) * inner
                for index in start..<(start + inner) {
                    let centered = Double(x.data[index]) - mean[c]
                    squares[c] += centered * centered
                }
            }
        }
        let variance = squares.map { $0 / count }
        let inverse = variance.map { Float(1 / ($0 + Double(epsilon)).squareRoot()) }
        var normalized = x.data, y = x.data
        for o in 0..<outer {
            for c in 0..<channels {
                let start = (o * channels + c) * inner
                for index in start..<(start + inner) {
                    normalized[index] = (x.data[index] - Float(mean[c])) * inverse[c]
                    y[index] = normalized[index] * gamma[c] + beta[c]
                }
            }
        }
        let statistics = BatchStatistics(normalized: normalized, inverseDeviation: inverse, mean: mean.map(Float.init),
                                         variance: variance.map(Float.init))
        return (RuntimeTensor(shape: x.shape, data: y), statistics)
    }

    /// Training-mode BatchNormalization backward: dgamma = Σ dy·x̂, dbeta = Σ dy, and
    /// dx = inv / M · (M·dx̂ - Σ dx̂ - x̂ · Σ dx̂·x̂) with dx̂ = dy · gamma, M values per channel.
    static func batchNormalizationTrainingBackward(_ dy: RuntimeTensor, axis: Int, gamma: [Float],
                                                   _ s: BatchStatistics) -> (dx: RuntimeTensor, dGamma: [Float], dBeta: [Float]) {
        let channels = dy.shape[axis], inner = dy.shape[(axis + 1)...].reduce(1, *)
        let outer = dy.count / max(channels * inner, 1), count = Float(max(outer * inner, 1))
        var dGamma = [Float](repeating: 0, count: channels), dBeta = [Float](repeating: 0, count: channels)
        for o in 0..<outer {
            for c in 0..<channels {
                let start = (o * channels + c) * inner
                for index in start..<(start + inner) {
                    dBeta[c] += dy.data[index]
                    dGamma[c] += dy.data[index] * s.normalized[index]
                }
            }
        }
        var dx = dy.data
        for o in 0..<outer {
            for c in 0..<channels {
                let start = (o * channels + c) * inner
                // Σ dx̂ = gamma · dbeta and Σ dx̂·x̂ = gamma · dgamma.
                let scale = gamma[c] * s.inverseDeviation[c] / count
                for index in start..<(start + inner) {
                    dx[index] = scale * (count * dy.data[index] - dBeta[c] - s.normalized[index] * dGamma[c])
                }
            }
        }
        return (RuntimeTensor(shape: dy.shape, data: dx), dGamma, dBeta)
    }
}
