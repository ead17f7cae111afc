import CVectorKernels
import Foundation
import ScionIR

/// Pooling, LRN, and the per-channel affine arithmetic that BatchNormalization, LayerScale and
/// Rescaling share (`perAxis`, `rescale`).
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

    /// Max or average pooling of rank 1 or 2. Padding never wins a max (unless `paddingIsZero`: then
    /// padded cells are zeros, as a ZeroPadding before the pooling made them); an average divides by
    /// the cells inside the input unless `countIncludePad` (then by the window, padding included, but
    /// not the part past the end that ceil mode adds).
    static func pool(_ x: RuntimeTensor, _ a: PoolAttributes, paddingIsZero: Bool = false, node: String) throws -> RuntimeTensor {
        if !a.isDense { return try dilatedMaxPool(x, a, node: node) }
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
                        // A window wholly in explicit padding (pads as large as the window) has no
                        // cells: the ranges are empty, not reversed.
                        for y in max(y0, 0)..<max(min(y0 + kh, height), max(y0, 0)) {
                            for xx in max(x0, 0)..<max(min(x0 + kw, width), max(x0, 0)) {
                                let value = input[source + y * width + xx]
                                best = max(best, value)
                                sum += value
                                inside += 1
                            }
                        }
                        if isMax {
                            output[target + oy * ow + ox] = paddingIsZero && inside < kh * kw ? max(best, 0) : best
                        } else {
                            output[target + oy * ow + ox] = sum / Float(g.divisor(a, y0: y0, x0: x0, inside: inside))
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: g.outputShape, data: output)
    }

    /// ONNX MaxPool with dilations (Keras pools have none): `maxPool2D` with the padding made explicit.
    static func dilatedMaxPool(_ x: RuntimeTensor, _ a: PoolAttributes, node: String) throws -> RuntimeTensor {
        guard a.kind == .max else { throw RuntimeError(node, "average pooling with dilations is not supported by the executor yet") }
        guard a.rank == 1 || a.rank == 2, x.rank == a.rank + 2 else {
            throw RuntimeError(node, "pooling of rank \(a.rank) on \(x.shape) is not supported by the executor yet (ranks 1 and 2 are)")
        }
        var pads: [Int]
        switch a.padding {
        case .explicit(let explicit) where explicit.count == 2 * a.rank:
            pads = explicit
        case .valid, .explicit:
            pads = Array(repeating: 0, count: 2 * a.rank)
        case .same, .causal:
            pads = Array(repeating: 0, count: 2 * a.rank)
            for axis in 0..<a.rank {
                let length = x.shape[axis + 2], extent = (a.poolSize[axis] - 1) * a.dilations[axis] + 1
                let window = Self.window(length: length, kernel: extent, stride: a.strides[axis], padding: a.padding, axis: axis, rank: a.rank)
                pads[axis] = window.before
                pads[a.rank + axis] = max((window.output - 1) * a.strides[axis] + extent - length - window.before, 0)
            }
        }
        return x.maxPool2D(kernel: a.poolSize, strides: a.strides, pads: pads, dilations: a.dilations, ceilMode: a.ceilMode)
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
        var y = x
        perAxisInPlace(&y, axis: axis, scale: scale, shift: shift)
        return y
    }

    /// The same in `x`'s own buffer (no copy when the caller holds the only reference), then a
    /// (capped) ReLU when `reluCap` is given: a BatchNormalization with the ReLU after it fused.
    /// Blocks of `inner` values share a channel, so there is no index division per value; with the
    /// channels last (`inner` 1) the loop runs over contiguous channels.
    static func perAxisInPlace(_ x: inout RuntimeTensor, axis: Int, scale: [Float], shift: [Float], reluCap: Float? = nil) {
        let inner = x.shape[(axis + 1)...].reduce(1, *), length = x.shape[axis]
        guard inner > 0, length > 0 else { return }
        let blocks = x.count / (inner * length)
        // Channels last with few channels (an RGB image's 3): a row per pixel would fill 3 of each
        // vector's 16 lanes, so `pixels` pixels make one row of a multiple of 16 values, the factors
        // repeated (EfficientNet's Rescaling and Normalization of its input image at batch 1: 0.13-0.20
        // ms a node as rows of 3, 0.01-0.02 ms as rows of 48).
        let pixels = 16 / greatestCommonDivisor(length, 16)
        if inner == 1, pixels > 1, length < 64, blocks % pixels == 0 {
            let shape = x.shape
            x.shape = [blocks / pixels, length * pixels]
            let repeated = { (factors: [Float]) in Array(repeating: factors, count: pixels).flatMap { $0 } }
            perAxisInPlace(&x, axis: 1, scale: repeated(scale), shift: repeated(shift), reluCap: reluCap)
            x.shape = shape
            return
        }
        x.data.withUnsafeMutableBufferPointer { values in
            scale.withUnsafeBufferPointer { s in
                shift.withUnsafeBufferPointer { t in
                    guard let base = values.baseAddress, let s = s.baseAddress, let t = t.baseAddress else { return }
                    let addresses = (Int(bitPattern: base), Int(bitPattern: s), Int(bitPattern: t))
                    // Large tensors over the cores: one core alone does not reach the memory's speed.
                    overCoresWhenLarge(blocks, valuesEach: inner * length) { range in
                        guard let base = UnsafeMutablePointer<Float>(bitPattern: addresses.0),
                              let s = UnsafePointer<Float>(bitPattern: addresses.1),
                              let t = UnsafePointer<Float>(bitPattern: addresses.2) else { return }
                        // Channels last (one value per channel per block): CVectorKernels' loop, 16 lanes.
                        if inner == 1 {
                            scion_affine_rows(base + range.lowerBound * length, range.count, length, length, s, t,
                                              reluCap == nil ? 0 : 1, reluCap ?? .infinity)
                            return
                        }
                        for block in range {
                            let row = base + block * inner * length
                            for c in 0..<length {
                                let values = row + c * inner, (scale, shift) = (s[c], t[c])
                                if let cap = reluCap {
                                    for i in 0..<inner { values[i] = min(max(values[i] * scale + shift, 0), cap) }
                                } else {
                                    for i in 0..<inner { values[i] = values[i] * scale + shift }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `body` over `0..<count` items of `valuesEach` values: on this thread when the whole is small
    /// (handing work out costs more than it saves), otherwise split over the cores.
    static func overCoresWhenLarge(_ count: Int, valuesEach: Int, _ body: @Sendable (Range<Int>) -> Void) {
        if count * valuesEach < 1 << 17 { body(0..<count) } else { splitOverCores(count, body) }
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
}

private func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int { b == 0 ? a : greatestCommonDivisor(b, a % b) }
