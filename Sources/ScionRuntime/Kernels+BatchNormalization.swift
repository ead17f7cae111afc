import Foundation
import ScionIR

/// BatchNormalization in training mode: the forward with batch statistics, and its backward.
extension Kernels {
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
