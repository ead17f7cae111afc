import Foundation
import ScionIR

/// Keras's Resizing, CenterCrop and RandomCrop (inference), channels-first: the window of
/// `ResizingAttributes.plan` (a crop, or a padding with the fill value), then a separable resampling
/// computed as JAX computes it (`jax.image.resize`, which Keras 3 calls; TensorFlow's resize, which
/// tf.keras calls, agrees for these kernels). Its VJP is the transposed window and resampling.
extension Executor {
    func resizing(_ node: Node, _ x: RuntimeTensor, _ a: ResizingAttributes) throws -> RuntimeTensor {
        guard x.rank == 4 else { throw RuntimeError(node.name, "\(a.kind.rawValue) needs a batch of images (rank 4), got \(x.shape)") }
        if a.isPassThrough { return x }
        let plan = a.plan(inputHeight: x.shape[2], inputWidth: x.shape[3])
        let window = Kernels.pad(x, begins: [0, 0, -plan.top, -plan.left],
                                 ends: [0, 0, plan.top + plan.windowHeight - x.shape[2], plan.left + plan.windowWidth - x.shape[3]],
                                 value: a.fillValue)
        guard plan.resamples else { return window }
        let rows = ResampleTaps(input: plan.windowHeight, output: plan.outputHeight, a)
        let columns = ResampleTaps(input: plan.windowWidth, output: plan.outputWidth, a)
        return ResampleTaps.apply(rows: rows, columns: columns, to: window)
    }
}

extension Executor {
    /// An ONNX Resize of the spatial axes of an NCHW tensor that computes what Keras's Resizing does
    /// (the forms the ONNX writer exports it as; torch's bilinear without align_corners too): linear
    /// with half-pixel centres, cubic with Keys' a = -0.5 renormalised at the border (exclude_outside),
    /// nearest at floor((i + 0.5) * in / out). Nil for any other Resize.
    static func kerasResampling(of a: ResizeAttributes, _ shape: [Int]) -> ResizingAttributes? {
        guard shape.count == 4 else { return nil }
        let lengths: [Int]
        if let sizes = a.sizes, sizes.count == 4 {
            lengths = sizes
        } else if let scales = a.scales, scales.count == 4 {
            lengths = zip(shape, scales).map { Int((Float($0) * $1).rounded(.down)) }
        } else {
            return nil
        }
        guard lengths[0] == shape[0], lengths[1] == shape[1], lengths[2] > 0, lengths[3] > 0 else { return nil }
        let halfPixel = a.coordinateTransformation == "half_pixel"
            || (a.coordinateTransformation == "pytorch_half_pixel" && lengths[2] > 1 && lengths[3] > 1)
        let interpolation: ResizeInterpolation
        switch a.mode {
        case "linear" where halfPixel: interpolation = .bilinear
        case "cubic" where halfPixel && a.cubicCoefficient == -0.5 && a.excludeOutside: interpolation = .bicubic
        case "nearest" where (halfPixel && a.nearestMode == "round_prefer_ceil")
            || (a.coordinateTransformation == "tf_half_pixel_for_nn" && a.nearestMode == "floor"): interpolation = .nearest
        default: return nil
        }
        return ResizingAttributes(kind: .resizing, height: lengths[2], width: lengths[3], interpolation: interpolation,
                                  layout: .channelsFirst)
    }
}

extension Trainer {
    /// Keras's RandomCrop while training: one random window of height x width for the whole batch
    /// (Keras draws one per call) when the image is larger both ways; otherwise Keras 3 resizes the
    /// whole image (bilinear) and tf.keras crops to the aspect ratio and resizes.
    func randomCropTraining(_ node: Node, _ a: ResizingAttributes, _ inputs: [RuntimeTensor],
                            random: inout SplitMix64) throws -> (RuntimeTensor, Saved?) {
        guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
        guard x.rank == 4 else { throw RuntimeError(node.name, "RandomCrop needs a batch of images (rank 4), got \(x.shape)") }
        let height = x.shape[2], width = x.shape[3]
        if height > a.height && width > a.width {
            let top = min(Int(random.uniform(0, Float(height - a.height + 1))), height - a.height)
            let left = min(Int(random.uniform(0, Float(width - a.width + 1))), width - a.width)
            return (Kernels.pad(x, begins: [0, 0, -top, -left], ends: [0, 0, top + a.height - height, left + a.width - width], value: 0), nil)
        }
        var resize = a
        resize.kind = .resizing
        resize.interpolation = .bilinear
        resize.cropToAspectRatio = a.randomCropInference == .centerCropAndResize
        return (try executor.resizing(node, x, resize), nil)
    }

    func resizingBackward(_ node: Node, _ a: ResizingAttributes, _ x: RuntimeTensor, dy: RuntimeTensor) throws -> StepGradients {
        guard x.rank == 4 else { throw RuntimeError(node.name, "\(a.kind.rawValue) needs a batch of images (rank 4), got \(x.shape)") }
        if a.isPassThrough { return StepGradients(inputs: [dy]) }
        let plan = a.plan(inputHeight: x.shape[2], inputWidth: x.shape[3])
        var window = dy
        if plan.resamples {
            let rows = ResampleTaps(input: plan.windowHeight, output: plan.outputHeight, a)
            let columns = ResampleTaps(input: plan.windowWidth, output: plan.outputWidth, a)
            window = ResampleTaps.applyTransposed(rows: rows, columns: columns, to: dy)
        }
        // The padded cells were the fill value, not the input: their gradient is dropped.
        let dx = Kernels.pad(window, begins: [0, 0, plan.top, plan.left],
                             ends: [0, 0, x.shape[2] - plan.top - plan.windowHeight, x.shape[3] - plan.left - plan.windowWidth],
                             value: 0)
        return StepGradients(inputs: [dx])
    }
}

/// One axis of a separable resampling: for each output position, the input positions it reads and
/// their weights.
struct ResampleTaps {
    let inputLength: Int
    let indices: [[Int]]
    let weights: [[Float]]

    /// JAX's `compute_weight_mat` for the kernels (half-pixel centres; the kernel widened by the
    /// downscaling factor when antialiasing; weights renormalised over the samples inside the input),
    /// and its `_resize_nearest` (`floor((i + 0.5) * in / out)` in float32) for nearest.
    init(input: Int, output: Int, _ a: ResizingAttributes) {
        inputLength = input
        let interpolation = a.interpolation, antialias = a.antialias
        if a.tabulatedCubic && interpolation == .bicubic && !antialias {
            (indices, weights) = Self.tabulatedCubic(input: input, output: output)
            return
        }
        if interpolation == .area {
            (indices, weights) = Self.area(input: input, output: output)
            return
        }
        if interpolation == .nearest {
            indices = (0..<output).map { i in
                min(input - 1, Int(((Float(i) + 0.5) * Float(input) / Float(output)).rounded(.down)))
            }.map { [$0] }
            weights = Array(repeating: [1], count: output)
            return
        }
        let scale = Double(output) / Double(input), inverse = 1 / scale
        let kernelScale = antialias ? max(inverse, 1) : 1
        let radius: Double = switch interpolation {
        case .bilinear: 1
        case .bicubic: 2
        case .lanczos3: 3
        case .lanczos5: 5
        case .nearest, .area: 0
        }
        var allIndices: [[Int]] = [], allWeights: [[Float]] = []
        for i in 0..<output {
            let sample = (Double(i) + 0.5) * inverse - 0.5
            let reach = radius * kernelScale
            let first = max(0, Int((sample - reach).rounded(.down))), last = min(input - 1, Int((sample + reach).rounded(.up)))
            var taps: [Int] = [], values: [Double] = []
            if first <= last {
                for j in first...last {
                    let value = Self.kernel(interpolation, abs(sample - Double(j)) / kernelScale)
                    if value != 0 { taps.append(j); values.append(value) }
                }
            }
            let total = values.reduce(0, +)
            let inside = sample >= -0.5 && sample <= Double(input) - 0.5
            let normalised = abs(total) > 1000 * Double(Float.ulpOfOne) && inside ? values.map { $0 / total } : values.map { _ in 0 }
            allIndices.append(taps)
            allWeights.append(normalised.map(Float.init))
        }
        indices = allIndices
        weights = allWeights
    }

    /// The area kernel: output pixel i covers input [i·in/out, (i+1)·in/out); each input pixel
    /// weighs the length it shares with that box, over the box's length.
    static func area(input: Int, output: Int) -> ([[Int]], [[Float]]) {
        let width = Double(input) / Double(output)
        var allIndices: [[Int]] = [], allWeights: [[Float]] = []
        for i in 0..<output {
            let start = Double(i) * width, end = start + width
            var taps: [Int] = [], values: [Float] = []
            for j in max(0, Int(start.rounded(.down)))..<min(input, Int(end.rounded(.up))) {
                let shared = min(end, Double(j + 1)) - max(start, Double(j))
                if shared > 0 { taps.append(j); values.append(Float(shared / width)) }
            }
            allIndices.append(taps)
            allWeights.append(values)
        }
        return (allIndices, allWeights)
    }

    /// TensorFlow's `resize_bicubic` with half-pixel centres (tf.keras's bicubic): Keys' a = -0.5
    /// weights from a 1024-step table, samples outside the image dropped and the rest renormalised.
    static func tabulatedCubic(input: Int, output: Int) -> ([[Int]], [[Float]]) {
        let steps = 1024, a: Float = -0.5
        var table = [Float](repeating: 0, count: (steps + 1) * 2)
        for i in 0...steps {
            var x = Float(Double(i) / Double(steps))
            table[i * 2] = ((a + 2) * x - (a + 3)) * x * x + 1
            x += 1
            table[i * 2 + 1] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        }
        let scale = Float(input) / Float(output)
        var allIndices: [[Int]] = [], allWeights: [[Float]] = []
        for i in 0..<output {
            let location = (Float(i) + 0.5) * scale - 0.5
            let floor = Int(location.rounded(.down))
            let offset = Int((( location - Float(floor)) * Float(steps)).rounded(.toNearestOrEven))
            let candidates = [(floor - 1, table[offset * 2 + 1]), (floor, table[offset * 2]),
                              (floor + 1, table[(steps - offset) * 2]), (floor + 2, table[(steps - offset) * 2 + 1])]
            let inside = candidates.filter { (0..<input).contains($0.0) }
            let total = inside.reduce(Float(0)) { $0 + $1.1 }
            allIndices.append(inside.map(\.0))
            allWeights.append(inside.map { abs(total) >= 1000 * Float.leastNormalMagnitude ? $0.1 / total : $0.1 })
        }
        return (allIndices, allWeights)
    }

    /// JAX's kernels: triangle, Keys cubic with a = -0.5, Lanczos of radius 3 and 5.
    static func kernel(_ interpolation: ResizeInterpolation, _ x: Double) -> Double {
        switch interpolation {
        case .nearest, .area: return x < 0.5 ? 1 : 0
        case .bilinear: return max(0, 1 - x)
        case .bicubic:
            if x >= 2 { return 0 }
            if x >= 1 { return ((-0.5 * x + 2.5) * x - 4) * x + 2 }
            return ((1.5 * x - 2.5) * x) * x + 1
        case .lanczos3, .lanczos5:
            let radius: Double = interpolation == .lanczos3 ? 3 : 5
            if x > radius { return 0 }
            if x <= 1e-3 { return 1 }
            return radius * sin(Double.pi * x) * sin(Double.pi * x / radius) / (Double.pi * Double.pi * x * x)
        }
    }

    /// `y[n, c] = R · x[n, c] · Cᵀ` for an NCHW tensor: rows first, then columns.
    static func apply(rows: ResampleTaps, columns: ResampleTaps, to x: RuntimeTensor) -> RuntimeTensor {
        let planes = x.shape[0] * x.shape[1], height = x.shape[2], width = x.shape[3]
        let outHeight = rows.indices.count, outWidth = columns.indices.count
        var output = [Float](repeating: 0, count: planes * outHeight * outWidth)
        var rowsDone = [Float](repeating: 0, count: outHeight * width)
        for plane in 0..<planes {
            let base = plane * height * width
            for i in 0..<outHeight {
                for w in 0..<width { rowsDone[i * width + w] = 0 }
                for (tap, weight) in zip(rows.indices[i], rows.weights[i]) {
                    for w in 0..<width { rowsDone[i * width + w] += weight * x.data[base + tap * width + w] }
                }
            }
            let outBase = plane * outHeight * outWidth
            for i in 0..<outHeight {
                for j in 0..<outWidth {
                    var sum: Float = 0
                    for (tap, weight) in zip(columns.indices[j], columns.weights[j]) { sum += weight * rowsDone[i * width + tap] }
                    output[outBase + i * outWidth + j] = sum
                }
            }
        }
        return RuntimeTensor(shape: [x.shape[0], x.shape[1], outHeight, outWidth], data: output)
    }

    /// The VJP of `apply`: `dx[n, c] = Rᵀ · dy[n, c] · C`.
    static func applyTransposed(rows: ResampleTaps, columns: ResampleTaps, to dy: RuntimeTensor) -> RuntimeTensor {
        let planes = dy.shape[0] * dy.shape[1], outHeight = dy.shape[2], outWidth = dy.shape[3]
        let height = rows.inputLength, width = columns.inputLength
        var dx = [Float](repeating: 0, count: planes * height * width)
        var columnsDone = [Float](repeating: 0, count: outHeight * width)
        for plane in 0..<planes {
            for index in columnsDone.indices { columnsDone[index] = 0 }
            let outBase = plane * outHeight * outWidth
            for i in 0..<outHeight {
                for j in 0..<outWidth {
                    let gradient = dy.data[outBase + i * outWidth + j]
                    for (tap, weight) in zip(columns.indices[j], columns.weights[j]) { columnsDone[i * width + tap] += weight * gradient }
                }
            }
            let base = plane * height * width
            for i in 0..<outHeight {
                for (tap, weight) in zip(rows.indices[i], rows.weights[i]) {
                    for w in 0..<width { dx[base + tap * width + w] += weight * columnsDone[i * width + w] }
                }
            }
        }
        return RuntimeTensor(shape: [dy.shape[0], dy.shape[1], height, width], data: dx)
    }
}
