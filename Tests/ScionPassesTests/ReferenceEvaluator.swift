import Foundation
import ScionIR
import XCTest

/// Runs the few ops the layout tests use, straight from their definitions, in either layout: a
/// channels-last graph and its converted channels-first graph must compute the same outputs. Slow
/// and simple on purpose (2-D spatial ops, stride and padding as Keras defines them).
struct ReferenceEvaluator {
    let graph: Graph

    struct Unsupported: Error { let op: String }

    func run(_ inputs: [String: Tensor]) throws -> [Tensor] {
        var values = inputs
        for index in try graph.topologicalOrder() {
            let node = graph.nodes[index]
            let arguments = try node.inputs.map { try XCTUnwrap(values[$0], "value \($0)") }
            values[node.outputs[0]] = try evaluate(node, arguments)
        }
        return try graph.outputs.map { try XCTUnwrap(values[$0], "output \($0)") }
    }

    func weights(_ node: Node, _ role: String) throws -> [Float] {
        let name = try XCTUnwrap(node.parameters.first { graph.parameters[$0]?.role.rawValue == role }, "\(node.name) \(role)")
        return floats(try XCTUnwrap(graph.parameters[name]).storage.bytes())
    }

    func evaluate(_ node: Node, _ inputs: [Tensor]) throws -> Tensor {
        let x = inputs[0]
        switch node.op {
        case .transpose(let a):
            return transpose(x, a.permutation)
        case .conv(let a):
            let kernel = try weights(node, "kernel")
            let channels = a.layout == .channelsLast ? x.shape[3] : x.shape[1]
            let perGroup = channels / a.groups
            let (kh, kw) = (a.kernelSize[0], a.kernelSize[1])
            let read: (Int, Int, Int, Int) -> Float = a.layout == .channelsLast
                ? { o, i, y, z in kernel[((y * kw + z) * perGroup + i) * a.filters + o] }
                : { o, i, y, z in kernel[((o * perGroup + i) * kh + y) * kw + z] }
            let bias = a.useBias ? try weights(node, "bias") : nil
            return activate(convolve(x, layout: a.layout, filters: a.filters, groups: a.groups, kernel: a.kernelSize,
                                     strides: a.strides, padding: a.padding, weight: read, bias: bias),
                            a.activation, layout: a.layout)
        case .depthwiseConv(let a):
            let depthwise = try depthwiseConvolve(x, node, a)
            let bias = a.useBias ? try weights(node, "bias") : nil
            return activate(addBias(depthwise, bias, layout: a.layout), a.activation, layout: a.layout)
        case .separableConv(let a):
            let depthwise = try depthwiseConvolve(x, node, a.depthwise)
            let pointwise = try weights(node, "pointwise_kernel")
            let bias = a.depthwise.useBias ? try weights(node, "bias") : nil
            return activate(convolve(depthwise, layout: .channelsLast, filters: a.filters, groups: 1, kernel: [1, 1],
                                     strides: [1, 1], padding: .valid,
                                     weight: { o, i, _, _ in pointwise[i * a.filters + o] }, bias: bias),
                            a.depthwise.activation, layout: .channelsLast)
        case .pool(let a) where a.kind == .max:
            // Valid, or ONNX's explicit pads (padded cells never win a max).
            var pads = [0, 0, 0, 0]
            if case .explicit(let explicit) = a.padding { pads = explicit } else if a.padding != .valid { throw Unsupported(op: "MaxPool same") }
            let channelsLast = a.layout == .channelsLast
            let spatial = channelsLast ? [1, 2] : [2, 3]
            var shape = x.shape
            for (position, axis) in spatial.enumerated() {
                let span = x.shape[axis] + pads[position] + pads[2 + position] - a.poolSize[position]
                shape[axis] = span / a.strides[position] + 1
                // ceil_mode (ONNX, torch): one more window where the last runs past the end, unless it
                // would start in the end padding.
                if a.ceilMode, span % a.strides[position] != 0,
                   (shape[axis]) * a.strides[position] < x.shape[axis] + pads[position] { shape[axis] += 1 }
            }
            let values = allIndices(shape).map { index -> Float in
                var best = -Float.infinity
                for window in allIndices(a.poolSize) {
                    var source = index
                    var inside = true
                    for (position, axis) in spatial.enumerated() {
                        source[axis] = index[axis] * a.strides[position] + window[position] - pads[position]
                        inside = inside && (0..<x.shape[axis]).contains(source[axis])
                    }
                    if inside { best = max(best, x.values[offset(source, in: x.shape)]) }
                }
                return best
            }
            return Tensor(shape: shape, values: values)
        case .globalPool(let a):
            let channelAxis = a.layout == .channelsLast ? 3 : 1
            let channels = x.shape[channelAxis]
            var sums = [Float](repeating: 0, count: x.shape[0] * channels)
            for index in allIndices(x.shape) {
                sums[index[0] * channels + index[channelAxis]] += x.values[offset(index, in: x.shape)]
            }
            let area = Float(x.values.count / (x.shape[0] * channels))
            return Tensor(shape: [x.shape[0], channels], values: sums.map { $0 / area })
        case .batchNormalization(let a):
            let axis = a.axis < 0 ? a.axis + x.shape.count : a.axis
            let (gamma, beta) = (try weights(node, "gamma"), try weights(node, "beta"))
            let (mean, variance) = (try weights(node, "moving_mean"), try weights(node, "moving_variance"))
            var result = x
            for index in allIndices(x.shape) {
                let c = index[axis], at = offset(index, in: x.shape)
                result.values[at] = gamma[c] * (x.values[at] - mean[c]) / (variance[c] + a.epsilon).squareRoot() + beta[c]
            }
            return result
        case .activation(let activation):
            return activate(x, activation, layout: nil)
        case .dropout, .identity:
            return x
        case .flatten:
            return Tensor(shape: [x.shape[0], x.values.count / x.shape[0]], values: x.values)
        case .reshape(let a) where a.includesBatch:
            // The whole tensor (ONNX's form, the batch among the lengths); 0 copies the input's length.
            let target = a.targetShape.enumerated().map { $0.element == 0 && !a.allowZero ? x.shape[$0.offset] : $0.element }
            let known = target.filter { $0 != -1 }.reduce(1, *)
            return Tensor(shape: target.map { $0 == -1 ? x.values.count / known : $0 }, values: x.values)
        case .reshape(let a):
            let known = a.targetShape.filter { $0 != -1 }.reduce(1, *)
            let perSample = x.values.count / x.shape[0]
            return Tensor(shape: [x.shape[0]] + a.targetShape.map { $0 == -1 ? perSample / known : $0 }, values: x.values)
        case .dense(let a):
            let kernel = try weights(node, "kernel")
            let bias = a.useBias ? try weights(node, "bias") : [Float](repeating: 0, count: a.units)
            let inner = x.shape[x.shape.count - 1]
            let rows = x.values.count / inner
            var values = [Float](repeating: 0, count: rows * a.units)
            for row in 0..<rows {
                for unit in 0..<a.units {
                    var sum = bias[unit]
                    for k in 0..<inner { sum += x.values[row * inner + k] * kernel[k * a.units + unit] }
                    values[row * a.units + unit] = sum
                }
            }
            return activate(Tensor(shape: Array(x.shape.dropLast()) + [a.units], values: values), a.activation, layout: nil)
        case .onnx(.gemm(let a)) where !a.transposeA && a.alpha == 1 && a.beta == 1:
            // ONNX Gemm with a constant weight `[units, in]` (transB) or `[in, units]`.
            let kernel = try weights(node, "kernel")
            let inner = x.shape[1]
            let units = kernel.count / inner
            let bias = node.parameters.count > 1 ? try weights(node, "bias") : [Float](repeating: 0, count: units)
            var values = [Float](repeating: 0, count: x.shape[0] * units)
            for row in 0..<x.shape[0] {
                for unit in 0..<units {
                    var sum = bias[unit]
                    for k in 0..<inner {
                        sum += x.values[row * inner + k] * (a.transposeB ? kernel[unit * inner + k] : kernel[k * units + unit])
                    }
                    values[row * units + unit] = sum
                }
            }
            return Tensor(shape: [x.shape[0], units], values: values)
        case .onnx(.pad(let a)) where a.mode == .constant && a.pads.allSatisfy({ $0 >= 0 }):
            let rank = x.shape.count
            let shape = (0..<rank).map { x.shape[$0] + a.pads[$0] + a.pads[rank + $0] }
            var result = Tensor(shape: shape, values: [Float](repeating: a.value, count: shape.checkedProduct ?? 0))
            for index in allIndices(x.shape) {
                let target = (0..<rank).map { index[$0] + a.pads[$0] }
                result.values[offset(target, in: shape)] = x.values[offset(index, in: x.shape)]
            }
            return result
        case .zeroPadding(let a):
            let spatial = a.layout == .channelsLast ? [1, 2] : [2, 3]
            var shape = x.shape
            for (position, axis) in spatial.enumerated() { shape[axis] += a.padding[position][0] + a.padding[position][1] }
            var result = Tensor(shape: shape, values: [Float](repeating: 0, count: shape.checkedProduct ?? 0))
            for index in allIndices(x.shape) {
                var target = index
                for (position, axis) in spatial.enumerated() { target[axis] += a.padding[position][0] }
                result.values[offset(target, in: shape)] = x.values[offset(index, in: x.shape)]
            }
            return result
        case .elementwise(.add):
            var result = x
            for other in inputs.dropFirst() { result.values = zip(result.values, other.values).map(+) }
            return result
        case .concatenate(let a):
            let axis = a.axis < 0 ? a.axis + x.shape.count : a.axis
            var shape = x.shape
            shape[axis] = inputs.reduce(0) { $0 + $1.shape[axis] }
            var result = Tensor(shape: shape, values: [Float](repeating: 0, count: shape.checkedProduct ?? 0))
            var start = 0
            for input in inputs {
                for index in allIndices(input.shape) {
                    var target = index
                    target[axis] += start
                    result.values[offset(target, in: shape)] = input.values[offset(index, in: input.shape)]
                }
                start += input.shape[axis]
            }
            return result
        default:
            throw Unsupported(op: node.op.typeName)
        }
    }

    func transpose(_ x: Tensor, _ permutation: [Int]) -> Tensor {
        let shape = permutation.map { x.shape[$0] }
        let values = allIndices(shape).map { index -> Float in
            var source = [Int](repeating: 0, count: index.count)
            for (axis, value) in index.enumerated() { source[permutation[axis]] = value }
            return x.values[offset(source, in: x.shape)]
        }
        return Tensor(shape: shape, values: values)
    }

    /// Keras's depthwise convolution, channels-last: output channel `c × multiplier + m` is input
    /// channel `c` convolved with `kernel[..., c, m]`.
    func depthwiseConvolve(_ x: Tensor, _ node: Node, _ a: DepthwiseConvAttributes) throws -> Tensor {
        let kernel = try weights(node, "depthwise_kernel")
        let channels = x.shape[3], multiplier = a.depthMultiplier, kw = a.kernelSize[1]
        return convolve(x, layout: .channelsLast, filters: channels * multiplier, groups: channels, kernel: a.kernelSize,
                        strides: a.strides, padding: a.padding,
                        weight: { o, _, y, z in kernel[((y * kw + z) * channels + o / multiplier) * multiplier + o % multiplier] },
                        bias: nil)
    }

    /// 2-D grouped convolution (cross-correlation, as Keras and ONNX compute it) in either layout;
    /// `weight(o, i, y, x)` is output channel `o`'s weight for channel `i` of its group at (y, x).
    func convolve(_ x: Tensor, layout: Layout, filters: Int, groups: Int, kernel: [Int], strides: [Int],
                  padding: Padding, weight: (Int, Int, Int, Int) -> Float, bias: [Float]?) -> Tensor {
        let channelsLast = layout == .channelsLast
        let (batch, height, width, channels) = channelsLast
            ? (x.shape[0], x.shape[1], x.shape[2], x.shape[3]) : (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
        let perGroup = channels / groups, filtersPerGroup = filters / groups
        func outputLength(_ length: Int, _ k: Int, _ s: Int, axis: Int) -> (Int, Int) {
            switch padding {
            case .same:
                let out = (length + s - 1) / s
                return (out, max((out - 1) * s + k - length, 0) / 2)
            case .explicit(let pads):
                // ONNX: all begins, then all ends.
                return ((length + pads[axis] + pads[2 + axis] - k) / s + 1, pads[axis])
            default:
                return ((length - k) / s + 1, 0)
            }
        }
        let (outHeight, top) = outputLength(height, kernel[0], strides[0], axis: 0)
        let (outWidth, left) = outputLength(width, kernel[1], strides[1], axis: 1)
        let shape = channelsLast ? [batch, outHeight, outWidth, filters] : [batch, filters, outHeight, outWidth]
        var values = [Float](repeating: 0, count: shape.checkedProduct ?? 0)
        func at(_ n: Int, _ c: Int, _ y: Int, _ z: Int) -> Float {
            channelsLast ? x.values[((n * height + y) * width + z) * channels + c]
                : x.values[((n * channels + c) * height + y) * width + z]
        }
        for n in 0..<batch {
            for o in 0..<filters {
                let group = o / filtersPerGroup
                for oy in 0..<outHeight {
                    for ox in 0..<outWidth {
                        var sum = bias?[o] ?? 0
                        for i in 0..<perGroup {
                            for ky in 0..<kernel[0] {
                                for kx in 0..<kernel[1] {
                                    let y = oy * strides[0] + ky - top, z = ox * strides[1] + kx - left
                                    guard y >= 0, y < height, z >= 0, z < width else { continue }
                                    sum += at(n, group * perGroup + i, y, z) * weight(o, i, ky, kx)
                                }
                            }
                        }
                        let index = channelsLast ? [n, oy, ox, o] : [n, o, oy, ox]
                        values[offset(index, in: shape)] = sum
                    }
                }
            }
        }
        return Tensor(shape: shape, values: values)
    }

    func addBias(_ x: Tensor, _ bias: [Float]?, layout: Layout) -> Tensor {
        guard let bias else { return x }
        let axis = layout == .channelsLast ? x.shape.count - 1 : 1
        var result = x
        for index in allIndices(x.shape) { result.values[offset(index, in: x.shape)] += bias[index[axis]] }
        return result
    }

    func activate(_ x: Tensor, _ activation: Activation, layout: Layout?) -> Tensor {
        switch activation {
        case .relu: return Tensor(shape: x.shape, values: x.values.map { max($0, 0) })
        case .softmax(let axis):
            let resolved = axis < 0 ? axis + x.shape.count : axis
            var result = x
            for index in allIndices(x.shape) where index[resolved] == 0 {
                let positions = (0..<x.shape[resolved]).map { k -> Int in
                    var other = index
                    other[resolved] = k
                    return offset(other, in: x.shape)
                }
                let peak = positions.map { x.values[$0] }.max() ?? 0
                let total = positions.reduce(Float(0)) { $0 + exp(x.values[$1] - peak) }
                for position in positions { result.values[position] = exp(x.values[position] - peak) / total }
            }
            return result
        default: return x
        }
    }
}
