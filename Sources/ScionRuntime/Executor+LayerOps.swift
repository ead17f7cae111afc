import Foundation
import ScionIR

/// The longer forward kernels `evaluate` dispatches to: transposed convolution, normalizations,
/// PReLU, Embedding, the residual helpers of keras.applications, upsampling and resizing, Squeeze /
/// Unsqueeze, slicing.
extension Executor {
    func prelu(_ node: Node, _ x: RuntimeTensor) throws -> RuntimeTensor {
        guard let shape = parameterShape(node, .alpha) else { throw RuntimeError(node.name, "is missing its alpha") }
        let alpha = RuntimeTensor(shape: [1] + shape, data: try require(node, .alpha))
        let negative = try Kernels.broadcast(x, alpha, node: node.name) { $0 * $1 }
        return RuntimeTensor(shape: x.shape, data: zip(x.data, negative.data).map { $0 >= 0 ? $0 : $1 })
    }

    func scaledResidual(_ node: Node, _ inputs: [RuntimeTensor], _ a: ScaledResidualAttributes) throws -> RuntimeTensor {
        guard inputs.count == 2 else { throw RuntimeError(node.name, "needs two inputs") }
        let scaled = RuntimeTensor(shape: inputs[1].shape, data: inputs[1].data.map { $0 * a.scale })
        return try Kernels.broadcast(inputs[0], scaled, node: node.name, +)
    }

    func layerScale(_ node: Node, _ x: RuntimeTensor, _ a: LayerScaleAttributes) throws -> RuntimeTensor {
        let gamma = try require(node, .gamma)
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        return Kernels.perAxis(x, axis: axis, scale: gamma, shift: [Float](repeating: 0, count: gamma.count))
    }

    func embedding(_ node: Node, _ x: RuntimeTensor, _ a: EmbeddingAttributes) throws -> RuntimeTensor {
        let table = try require(node, .embeddings)
        var output = [Float]()
        output.reserveCapacity(x.count * a.outputDimension)
        for value in x.data {
            let row = Int(value)
            guard value == value.rounded(), row >= 0, row < a.inputDimension else {
                throw RuntimeError(node.name, "index \(value) is outside the table of \(a.inputDimension) rows")
            }
            output.append(contentsOf: table[(row * a.outputDimension)..<((row + 1) * a.outputDimension)])
        }
        return RuntimeTensor(shape: x.shape + [a.outputDimension], data: output)
    }

    /// Whole factors with a sampling that copies each cell: the nearest-neighbour cases
    /// KerasPatternRewriter maps to UpSampling; nil for any other Resize.
    func resizeByCopying(_ x: RuntimeTensor, _ a: ResizeAttributes) -> RuntimeTensor? {
        let copies = a.mode == "nearest" && [("asymmetric", "floor"), ("tf_half_pixel_for_nn", "floor"),
                                             ("half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil")]
            .contains { $0 == (a.coordinateTransformation, a.nearestMode) }
        let factors = a.scales.map { $0.map { Int($0) } }
            ?? a.sizes.map { sizes in zip(sizes, x.shape).map { $1 > 0 && $0 % $1 == 0 ? $0 / $1 : 0 } }
        guard copies, let factors, factors.count == x.rank, factors.prefix(2) == [1, 1],
              a.scales?.allSatisfy({ $0 == $0.rounded() }) ?? true, factors.allSatisfy({ $0 >= 1 }) else { return nil }
        return upsampleNearest(x, Array(factors.dropFirst(2)))
    }

    func squeeze(_ node: Node, _ x: RuntimeTensor, _ a: AxesAttributes) throws -> RuntimeTensor {
        let axes = Set(a.axes.map { $0 < 0 ? $0 + x.rank : $0 })
        guard axes.allSatisfy({ (0..<x.rank).contains($0) && x.shape[$0] == 1 }) else {
            throw RuntimeError(node.name, "cannot squeeze axes \(a.axes) of \(x.shape)")
        }
        return RuntimeTensor(shape: x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element), data: x.data)
    }

    func unsqueeze(_ x: RuntimeTensor, _ a: AxesAttributes) -> RuntimeTensor {
        let rank = x.rank + a.axes.count
        let axes = Set(a.axes.map { $0 < 0 ? $0 + rank : $0 })
        var shape: [Int] = []
        var source = x.shape.makeIterator()
        for axis in 0..<rank { shape.append(axes.contains(axis) ? 1 : (source.next() ?? 1)) }
        return RuntimeTensor(shape: shape, data: x.data)
    }

    static func unaryFunction(_ operation: UnaryOperation) -> ((Float) -> Float)? {
        switch operation {
        case .negate: return { (v: Float) -> Float in -v }
        case .absolute: return { (v: Float) -> Float in abs(v) }
        case .squareRoot: return { (v: Float) -> Float in v.squareRoot() }
        case .reciprocal: return { (v: Float) -> Float in 1 / v }
        case .logarithm: return { (v: Float) -> Float in log(v) }
        case .errorFunction: return { (v: Float) -> Float in erf(v) }
        case .floor: return { (v: Float) -> Float in v.rounded(.down) }
        case .ceil: return { (v: Float) -> Float in v.rounded(.up) }
        case .round: return { (v: Float) -> Float in v.rounded(.toNearestOrEven) }
        case .sign: return { (v: Float) -> Float in v > 0 ? 1 : v < 0 ? -1 : 0 }
        case .sine: return { (v: Float) -> Float in sin(v) }
        case .cosine: return { (v: Float) -> Float in cos(v) }
        case .not: return nil
        }
    }

    /// ONNX ConvTranspose of rank 2, one group: kernel `[in, out, kh, kw]`. Each input pixel spreads
    /// `W[i, :, :, :]` over the output (one GEMM per sample, then a scatter); the output window starts
    /// `before` cells into that full result, its length from shape inference.
    func convolutionTranspose(_ node: Node, _ x: RuntimeTensor, _ a: ConvTransposeAttributes) throws -> RuntimeTensor {
        guard a.rank == 2, a.groups == 1, x.rank == 4, let shape = parameterShape(node, .kernel), shape.count == 4,
              shape[0] == x.shape[1] else {
            throw RuntimeError(node.name, "only 2-D, one-group transposed convolutions are supported")
        }
        let kernel = try require(node, .kernel)
        let (batch, inputs, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (filters, kh, kw) = (shape[1], shape[2], shape[3])
        let effective = [(kh - 1) * a.dilations[0] + 1, (kw - 1) * a.dilations[1] + 1]
        let lengths = [height, width]
        var before = [0, 0], output = [0, 0]
        for axis in 0..<2 {
            let full = (lengths[axis] - 1) * a.strides[axis] + effective[axis]
            let extra = a.outputPadding?[axis] ?? 0
            switch a.padding {
            case .explicit(let pads):
                before[axis] = pads[axis]
                output[axis] = full + extra - pads[axis] - pads[2 + axis]
            case .same:
                before[axis] = max(effective[axis] - a.strides[axis], 0) / 2
                output[axis] = lengths[axis] * a.strides[axis] + extra
            default:
                output[axis] = full + extra
            }
        }
        let plane = height * width, outPlane = output[0] * output[1]
        var columns = [Float](repeating: 0, count: filters * kh * kw * plane)
        var result = [Float](repeating: 0, count: batch * filters * outPlane)
        let bias = a.useBias ? try require(node, .bias) : nil
        for n in 0..<batch {
            x.data.withUnsafeBufferPointer { input in
                kernel.withUnsafeBufferPointer { w in
                    columns.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(m: filters * kh * kw, n: plane, k: inputs, a: w.baseAddress!, transposeA: true,
                                  b: input.baseAddress! + n * inputs * plane, c: c.baseAddress!)
                    }
                }
            }
            for o in 0..<filters {
                let target = (n * filters + o) * outPlane
                for ky in 0..<kh {
                    for kx in 0..<kw {
                        let row = ((o * kh + ky) * kw + kx) * plane
                        for iy in 0..<height {
                            let y = iy * a.strides[0] + ky * a.dilations[0] - before[0]
                            if y < 0 || y >= output[0] { continue }
                            for ix in 0..<width {
                                let xx = ix * a.strides[1] + kx * a.dilations[1] - before[1]
                                if xx < 0 || xx >= output[1] { continue }
                                result[target + y * output[1] + xx] += columns[row + iy * width + ix]
                            }
                        }
                    }
                }
                if let bias { for i in target..<(target + outPlane) { result[i] += bias[o] } }
            }
        }
        return RuntimeTensor(shape: [batch, filters, output[0], output[1]], data: result)
    }

    /// `(x - mean) / sqrt(variance + epsilon) * gamma + beta` over trailing axes.
    func layerNormalization(_ node: Node, _ x: RuntimeTensor, _ a: LayerNormalizationAttributes) throws -> RuntimeTensor {
        let axes = a.axes.map { $0 < 0 ? $0 + x.rank : $0 }.sorted()
        guard let first = axes.first, axes.allSatisfy({ (0..<x.rank).contains($0) }) else {
            throw RuntimeError(node.name, "LayerNormalization over axes \(a.axes) of rank \(x.rank)")
        }
        if axes != Array(first..<x.rank) {
            // Move the normalized axes last (in order, as gamma is laid out), normalize, move back.
            let permutation = (0..<x.rank).filter { !axes.contains($0) } + axes
            let inverse = (0..<x.rank).map { permutation.firstIndex(of: $0) ?? $0 }
            var moved = a
            moved.axes = Array((x.rank - axes.count)..<x.rank)
            return Kernels.transpose(try layerNormalization(node, Kernels.transpose(x, permutation), moved), inverse)
        }
        let inner = x.shape[first...].reduce(1, *)
        let gamma = a.scale ? try require(node, .gamma) : [Float](repeating: 1, count: inner)
        let beta = a.center ? try require(node, .beta) : [Float](repeating: 0, count: inner)
        guard gamma.count == inner, beta.count == inner else { throw RuntimeError(node.name, "gamma/beta do not have \(inner) values") }
        var data = x.data
        for start in stride(from: 0, to: x.count, by: inner) {
            let slice = data[start..<(start + inner)]
            let mean = slice.reduce(0, +) / Float(inner)
            let variance = slice.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(inner)
            let scale = 1 / (variance + a.epsilon).squareRoot()
            for i in 0..<inner { data[start + i] = (data[start + i] - mean) * scale * gamma[i] + beta[i] }
        }
        return RuntimeTensor(shape: x.shape, data: data)
    }

    /// Keras's Normalization: `(x - mean) / max(sqrt(variance), 1e-7)` along the kept axis (or its
    /// inverse).
    func normalization(_ node: Node, _ x: RuntimeTensor, _ a: NormalizationAttributes) throws -> RuntimeTensor {
        let mean = try a.mean ?? require(node, .mean), variance = try a.variance ?? require(node, .variance)
        let deviation = variance.map { max($0.squareRoot(), 1e-7) }
        let axes = a.axes.map { $0 < 0 ? $0 + x.rank : $0 }
        let scale = a.invert ? deviation : deviation.map { 1 / $0 }
        let shift = a.invert ? mean : zip(mean, deviation).map { -$0 / $1 }
        if axes.isEmpty || mean.count == 1 {
            return RuntimeTensor(shape: x.shape, data: x.data.map { $0 * scale[0] + shift[0] })
        }
        guard axes.count == 1, x.shape[axes[0]] == mean.count else {
            throw RuntimeError(node.name, "Normalization over axes \(a.axes) with \(mean.count) statistics is not supported")
        }
        return Kernels.perAxis(x, axis: axes[0], scale: scale, shift: shift)
    }

    /// ONNX Slice with constant bounds: negative bounds count from the end, clamped as ONNX clamps.
    func slice(_ node: Node, _ x: RuntimeTensor, _ a: SliceAttributes) throws -> RuntimeTensor {
        var starts = [Int](repeating: 0, count: x.rank), steps = [Int](repeating: 1, count: x.rank)
        var lengths = x.shape
        for (position, rawAxis) in a.axes.enumerated() {
            let axis = rawAxis < 0 ? rawAxis + x.rank : rawAxis
            guard (0..<x.rank).contains(axis), position < a.starts.count, position < a.ends.count else {
                throw RuntimeError(node.name, "slices axis \(rawAxis) of \(x.shape)")
            }
            let length = x.shape[axis], step = position < a.steps.count ? a.steps[position] : 1
            guard step != 0 else { throw RuntimeError(node.name, "has a step of 0") }
            func resolve(_ bound: Int, low: Int, high: Int) -> Int { min(max(bound < 0 ? bound + length : bound, low), high) }
            let start = step > 0 ? resolve(a.starts[position], low: 0, high: length) : resolve(a.starts[position], low: -1, high: length - 1)
            let end = step > 0 ? resolve(a.ends[position], low: 0, high: length) : resolve(a.ends[position], low: -1, high: length - 1)
            starts[axis] = start
            steps[axis] = step
            lengths[axis] = max(0, step > 0 ? (end - start + step - 1) / step : (start - end - step - 1) / -step)
        }
        return Kernels.remap(x, to: lengths) { axis, index in starts[axis] + index * steps[axis] }
    }

    /// Each spatial cell repeated `size` times along its axis.
    func upsampleNearest(_ x: RuntimeTensor, _ size: [Int]) -> RuntimeTensor {
        let shape = [x.shape[0], x.shape[1]] + zip(x.shape.dropFirst(2), size).map { $0 * $1 }
        return Kernels.remap(x, to: shape) { axis, index in axis >= 2 ? index / size[axis - 2] : index }
    }
}
