import Foundation
import ScionIR

/// Pooling, normalization arithmetic and activations.
extension Kernels {
    /// Max or average pooling of rank 1 or 2. Padding never wins a max; an average divides by the
    /// cells inside the input unless `countIncludePad` (then by the window, padding included, but not
    /// the part past the end that ceil mode adds).
    /// A pooling's sizes, rank 1 running as height 1, shared by the forward and backward kernels;
    /// `padEnd` is where explicit padding ends (windows past it, in ceil mode, count only real and
    /// padded cells).
    struct PoolGeometry {
        var batch, channels, height, width, kh, kw, sh, sw, oh, ow: Int
        var rows, cols: Window
        var padEnd: (Int, Int)
        var oneD: Bool

        init(input shape: [Int], _ a: PoolAttributes, node: String) throws {
            guard a.rank == 1 || a.rank == 2, shape.count == a.rank + 2 else {
                throw RuntimeError(node, "pooling of rank \(a.rank) on \(shape) is not supported by the executor yet (ranks 1 and 2 are)")
            }
            oneD = a.rank == 1
            (batch, channels) = (shape[0], shape[1])
            height = oneD ? 1 : shape[2]
            width = shape[a.rank + 1]
            (kh, kw) = oneD ? (1, a.poolSize[0]) : (a.poolSize[0], a.poolSize[1])
            (sh, sw) = oneD ? (1, a.strides[0]) : (a.strides[0], a.strides[1])
            rows = window(length: height, kernel: kh, stride: sh, padding: oneD ? .valid : a.padding, axis: 0, rank: 2, ceilMode: a.ceilMode)
            cols = window(length: width, kernel: kw, stride: sw, padding: a.padding, axis: a.rank - 1, rank: a.rank, ceilMode: a.ceilMode)
            padEnd = (height, width)
            if case .explicit(let pads) = a.padding, pads.count == 2 * a.rank {
                padEnd = oneD ? (1, width + pads[1]) : (height + pads[2], width + pads[3])
            }
            (oh, ow) = (rows.output, cols.output)
        }

        var outputShape: [Int] { oneD ? [batch, channels, ow] : [batch, channels, oh, ow] }

        /// The cells an average divides by for the window starting at (y0, x0).
        func divisor(_ a: PoolAttributes, y0: Int, x0: Int, inside: Int) -> Int {
            let counted = a.countIncludePad ? (min(y0 + kh, padEnd.0) - y0) * (min(x0 + kw, padEnd.1) - x0) : inside
            return max(counted, 1)
        }
    }

    /// Max or average pooling of rank 1 or 2. Padding never wins a max; an average divides by the
    /// cells inside the input unless `countIncludePad` (then by the window, padding included, but not
    /// the part past the end that ceil mode adds).
    static func pool(_ x: RuntimeTensor, _ a: PoolAttributes, node: String) throws -> RuntimeTensor {
        let g = try PoolGeometry(input: x.shape, a, node: node)
        let (height, width, kh, kw, sh, sw, oh, ow) = (g.height, g.width, g.kh, g.kw, g.sh, g.sw, g.oh, g.ow)
        let (rows, cols) = (g.rows, g.cols)
        var output = [Float](repeating: 0, count: g.batch * g.channels * oh * ow)
        let isMax = a.kind == .max
        x.data.withUnsafeBufferPointer { input in
            for plane in 0..<(g.batch * g.channels) {
                let source = plane * height * width, target = plane * oh * ow
                for oy in 0..<oh {
                    let y0 = oy * sh - rows.before
                    for ox in 0..<ow {
                        let x0 = ox * sw - cols.before
                        var best = -Float.infinity, sum: Float = 0, inside = 0
                        for y in max(y0, 0)..<min(y0 + kh, height) {
                            for xx in max(x0, 0)..<min(x0 + kw, width) {
                                let value = input[source + y * width + xx]
                                best = max(best, value)
                                sum += value
                                inside += 1
                            }
                        }
                        if isMax {
                            output[target + oy * ow + ox] = best
                        } else {
                            output[target + oy * ow + ox] = sum / Float(g.divisor(a, y0: y0, x0: x0, inside: inside))
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: g.outputShape, data: output)
    }

    static func globalPool(_ x: RuntimeTensor, _ a: GlobalPoolAttributes) -> RuntimeTensor {
        let (batch, channels) = (x.shape[0], x.shape[1])
        let area = x.shape.dropFirst(2).reduce(1, *)
        var output = [Float](repeating: 0, count: batch * channels)
        for plane in 0..<(batch * channels) {
            let slice = x.data[(plane * area)..<((plane + 1) * area)]
            output[plane] = a.kind == .max ? (slice.max() ?? 0) : slice.reduce(0, +) / Float(max(area, 1))
        }
        let shape = a.keepDimensions ? [batch, channels] + Array(repeating: 1, count: x.rank - 2) : [batch, channels]
        return RuntimeTensor(shape: shape, data: output)
    }

    /// ONNX LRN across channels: `x / (bias + alpha / size · Σ x²)^beta` over the `size` channels
    /// around each one (floor((size - 1) / 2) before, ceil after).
    static func localResponseNormalization(_ x: RuntimeTensor, _ a: LocalResponseNormalizationAttributes) -> RuntimeTensor {
        let channels = x.shape[1], area = x.shape.dropFirst(2).reduce(1, *)
        let before = (a.size - 1) / 2, after = a.size - 1 - before
        var output = x.data
        for n in 0..<x.shape[0] {
            for c in 0..<channels {
                for position in 0..<area {
                    var sum: Float = 0
                    for other in max(0, c - before)...min(channels - 1, c + after) {
                        let value = x.data[(n * channels + other) * area + position]
                        sum += value * value
                    }
                    let index = (n * channels + c) * area + position
                    output[index] = x.data[index] / pow(a.bias + a.alpha / Float(a.size) * sum, a.beta)
                }
            }
        }
        return RuntimeTensor(shape: x.shape, data: output)
    }

    /// `x * scale[c] + shift[c]` along `axis`.
    static func perAxis(_ x: RuntimeTensor, axis: Int, scale: [Float], shift: [Float]) -> RuntimeTensor {
        let inner = x.shape[(axis + 1)...].reduce(1, *), length = x.shape[axis]
        var data = x.data
        data.withUnsafeMutableBufferPointer { values in
            for index in 0..<values.count {
                let c = (index / inner) % length
                values[index] = values[index] * scale[c] + shift[c]
            }
        }
        return RuntimeTensor(shape: x.shape, data: data)
    }

    static func rescale(_ x: RuntimeTensor, _ a: RescalingAttributes) -> RuntimeTensor {
        if a.scale.count <= 1 && a.offset.count <= 1 {
            let scale = a.scale.first ?? 1, offset = a.offset.first ?? 0
            return RuntimeTensor(shape: x.shape, data: x.data.map { $0 * scale + offset })
        }
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        let length = x.shape[axis]
        let scale = a.scale.count == length ? a.scale : Array(repeating: a.scale.first ?? 1, count: length)
        let offset = a.offset.count == length ? a.offset : Array(repeating: a.offset.first ?? 0, count: length)
        return perAxis(x, axis: axis, scale: scale, shift: offset)
    }

    static func activate(_ x: RuntimeTensor, _ activation: Activation, node: String) throws -> RuntimeTensor {
        switch activation {
        case .linear: return x
        case .softmax(let axis): return softmax(x, axis: axis, logarithm: false)
        case .logSoftmax(let axis): return softmax(x, axis: axis, logarithm: true)
        case .sparsemax(let axis): return sparsemax(x, axis: axis)
        case .relu(let maxValue, 0, 0):
            // The common case without a closure call per value.
            let cap = maxValue ?? .infinity
            var data = x.data
            data.withUnsafeMutableBufferPointer { values in
                for index in values.indices { values[index] = min(max(values[index], 0), cap) }
            }
            return RuntimeTensor(shape: x.shape, data: data)
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
}
