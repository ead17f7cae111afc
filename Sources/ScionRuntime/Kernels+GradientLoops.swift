import ScionIR

/// Backward loops the trainer runs on every step, written plane by plane over raw buffers: the
/// generic versions divide an index per element to find its channel, or call a closure per element,
/// which the profile of `scion finetune --unfreeze-top 20` on MobileNetV2 showed costing more than
/// the convolutions' GEMMs at 7x7 (docs/benchmarks.md, issue #18). Same arithmetic, same order of
/// accumulation, so the results are bit-identical to the generic loops.
extension Kernels {
    /// A frozen (inference-mode) BatchNormalization's VJP: `dx = dy · gamma · inverse` per channel of
    /// `axis`, and, only when `parameterGradients`, `dgamma = Σ dy · (x - mean) · inverse` and
    /// `dbeta = Σ dy` (a frozen layer's own tensors need none).
    static func frozenBatchNormalizationBackward(_ x: RuntimeTensor, dy: RuntimeTensor, axis: Int, gamma: [Float], mean: [Float],
                                                 inverse: [Float], parameterGradients: Bool) -> (dx: RuntimeTensor, dGamma: [Float], dBeta: [Float]) {
        let channels = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
        let outer = x.count / max(channels * inner, 1)
        var dx = [Float](repeating: 0, count: x.count)
        var dGamma = [Float](repeating: 0, count: parameterGradients ? channels : 0)
        var dBeta = [Float](repeating: 0, count: parameterGradients ? channels : 0)
        x.data.withUnsafeBufferPointer { input in
            dy.data.withUnsafeBufferPointer { upstream in
                dx.withUnsafeMutableBufferPointer { output in
                    for o in 0..<outer {
                        for c in 0..<channels {
                            let start = (o * channels + c) * inner
                            let scale = gamma[c] * inverse[c]
                            for i in start..<(start + inner) { output[i] = upstream[i] * scale }
                            guard parameterGradients else { continue }
                            var g = dGamma[c], b = dBeta[c]
                            for i in start..<(start + inner) {
                                g += upstream[i] * (input[i] - mean[c]) * inverse[c]
                                b += upstream[i]
                            }
                            dGamma[c] = g
                            dBeta[c] = b
                        }
                    }
                }
            }
        }
        return (RuntimeTensor(shape: x.shape, data: dx), dGamma, dBeta)
    }

    /// ReLU's (capped, leaky or thresholded) VJP: `dy` times the derivative at `x` (0 at and above
    /// the cap, 1 above the threshold, the slope below it, 0 at it), as `elementDerivative` defines it.
    static func reluGradient(x: [Float], dy: [Float], maxValue: Float?, slope: Float, threshold: Float) -> [Float] {
        var dx = dy
        let capped = maxValue != nil, cap = maxValue ?? 0
        x.withUnsafeBufferPointer { input in
            dx.withUnsafeMutableBufferPointer { output in
                for i in 0..<min(input.count, output.count) {
                    let value = input[i]
                    let derivative: Float = capped && value >= cap ? 0 : value > threshold ? 1 : value < threshold ? slope : 0
                    output[i] *= derivative
                }
            }
        }
        return dx
    }

    /// The output columns `ox` of a convolution row whose input column `ox · stride + offset` lies in
    /// `0..<width` (the rest read padding): the same set the per-element bounds test keeps, in order.
    static func validColumns(offset: Int, stride: Int, outputs: Int, width: Int) -> Range<Int> {
        let first = offset >= 0 ? 0 : (stride - 1 - offset) / stride
        let last = width - offset <= 0 ? 0 : min(outputs, (width - offset + stride - 1) / stride)
        return first < last ? first..<last : 0..<0
    }
}
