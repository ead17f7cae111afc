import CVectorKernels
import ScionIR

/// Layer normalization over trailing axes (CVectorKernels' 16-lane rows), and group normalization
/// (Keras GroupNormalization, ONNX InstanceNormalization and GroupNormalization) forward and backward. Both take channels at `axis` and move them to axis 1 when they are elsewhere,
/// so the work is on contiguous blocks: with `[N, C, positions...]`, sample n's group g is the run of
/// `C / groups * positions` values starting at channel `g * C / groups`.
extension Kernels {
    struct GroupNormalizationGradients {
        var input: RuntimeTensor
        var gamma: [Float]
        var beta: [Float]
    }

    /// Channels moved to axis 1 (a no-op for channels-first data), and the permutation back.
    private static func channelsAtOne(_ x: RuntimeTensor, axis: Int) -> (RuntimeTensor, [Int]?) {
        guard axis != 1 else { return (x, nil) }
        let permutation = [0, axis] + (1..<x.rank).filter { $0 != axis }
        let inverse = (0..<x.rank).map { permutation.firstIndex(of: $0) ?? $0 }
        return (transpose(x, permutation), inverse)
    }

    /// `(x - mean) / sqrt(variance + epsilon) * gamma + beta`, statistics per sample and group.
    static func groupNormalization(_ x: RuntimeTensor, _ a: GroupNormalizationAttributes, gamma: [Float]?, beta: [Float]?,
                                   node: String) throws -> RuntimeTensor {
        let (axis, groups) = try resolve(x, a, node: node)
        let (moved, inverse) = channelsAtOne(x, axis: axis)
        let channels = moved.shape[1], positions = moved.count / max(moved.shape[0] * channels, 1)
        let perGroup = channels / groups, blockLength = perGroup * positions
        var data = moved.data
        data.withUnsafeMutableBufferPointer { values in
            for block in 0..<(moved.shape[0] * groups) {
                let start = block * blockLength, firstChannel = (block % groups) * perGroup
                let (mean, reciprocal) = statistics(values, start: start, count: blockLength, epsilon: a.epsilon)
                for channel in 0..<perGroup {
                    let scale = reciprocal * (gamma?[firstChannel + channel] ?? 1), shift = beta?[firstChannel + channel] ?? 0
                    let offset = start + channel * positions
                    for i in offset..<(offset + positions) { values[i] = (values[i] - mean) * scale + shift }
                }
            }
        }
        let result = RuntimeTensor(shape: moved.shape, data: data)
        return inverse.map { transpose(result, $0) } ?? result
    }

    /// Gradients of `groupNormalization` for the input, gamma and beta (per channel).
    static func groupNormalizationBackward(_ x: RuntimeTensor, _ a: GroupNormalizationAttributes, gamma: [Float]?,
                                           dy: RuntimeTensor, node: String) throws -> GroupNormalizationGradients {
        let (axis, groups) = try resolve(x, a, node: node)
        let (input, inverse) = channelsAtOne(x, axis: axis)
        let (upstream, _) = channelsAtOne(dy, axis: axis)
        let channels = input.shape[1], positions = input.count / max(input.shape[0] * channels, 1)
        let perGroup = channels / groups, blockLength = perGroup * positions, count = Float(blockLength)
        var dx = [Float](repeating: 0, count: input.count)
        var dGamma = [Float](repeating: 0, count: channels), dBeta = [Float](repeating: 0, count: channels)
        input.data.withUnsafeBufferPointer { xs in
            for block in 0..<(input.shape[0] * groups) {
                let start = block * blockLength, firstChannel = (block % groups) * perGroup
                let (mean, reciprocal) = statistics(xs, start: start, count: blockLength, epsilon: a.epsilon)
                // Sums over the block of g = dy * gamma and of g * x̂, which every element's gradient needs.
                var sum: Float = 0, dot: Float = 0
                for channel in 0..<perGroup {
                    let c = firstChannel + channel, weight = gamma?[c] ?? 1, offset = start + channel * positions
                    for i in offset..<(offset + positions) {
                        let normalized = (xs[i] - mean) * reciprocal, g = upstream.data[i]
                        dGamma[c] += g * normalized
                        dBeta[c] += g
                        sum += g * weight
                        dot += g * weight * normalized
                    }
                }
                for channel in 0..<perGroup {
                    let weight = gamma?[firstChannel + channel] ?? 1, offset = start + channel * positions
                    for i in offset..<(offset + positions) {
                        let normalized = (xs[i] - mean) * reciprocal
                        dx[i] = reciprocal / count * (count * upstream.data[i] * weight - sum - normalized * dot)
                    }
                }
            }
        }
        let moved = RuntimeTensor(shape: input.shape, data: dx)
        return GroupNormalizationGradients(input: inverse.map { transpose(moved, $0) } ?? moved, gamma: dGamma, beta: dBeta)
    }

    /// Channel axis and group count for `x`, checked as Keras checks them when it builds the layer.
    private static func resolve(_ x: RuntimeTensor, _ a: GroupNormalizationAttributes, node: String) throws -> (Int, Int) {
        let axis = a.axis < 0 ? a.axis + x.rank : a.axis
        guard x.rank >= 2, (1..<x.rank).contains(axis) else {
            throw RuntimeError(node, "GroupNormalization over axis \(a.axis) of a rank-\(x.rank) input")
        }
        guard let groups = a.groupCount(channels: x.shape[axis]) else {
            throw RuntimeError(node, "GroupNormalization: \(x.shape[axis]) channels do not split into \(a.groups) groups")
        }
        return (axis, groups)
    }

    /// Mean and 1 / sqrt(variance + epsilon) of `count` values from `start`, accumulated in Double:
    /// a group holds every position of several channels, long enough for Float sums to drift.
    private static func statistics(_ values: UnsafeMutableBufferPointer<Float>, start: Int, count: Int,
                                   epsilon: Float) -> (Float, Float) {
        statistics(UnsafeBufferPointer(values), start: start, count: count, epsilon: epsilon)
    }

    private static func statistics(_ values: UnsafeBufferPointer<Float>, start: Int, count: Int, epsilon: Float) -> (Float, Float) {
        var sum = 0.0
        for i in start..<(start + count) { sum += Double(values[i]) }
        let mean = sum / Double(count)
        var squares = 0.0
        for i in start..<(start + count) { let d = Double(values[i]) - mean; squares += d * d }
        let variance = squares / Double(count)
        return (Float(mean), Float(1 / (variance + Double(epsilon)).squareRoot()))
    }

    /// Each run of `count` values normalised by its own mean and variance, then `· gamma + beta`
    /// (LayerNormalization over the trailing axes), in place; rows over the cores when large.
    static func layerNormalizeRows(_ values: inout [Float], count: Int, gamma: [Float], beta: [Float], epsilon: Float) {
        guard count > 0 else { return }
        let rows = values.count / count
        values.withUnsafeMutableBufferPointer { values in
            gamma.withUnsafeBufferPointer { g in
                beta.withUnsafeBufferPointer { b in
                    guard let base = values.baseAddress, let g = g.baseAddress, let b = b.baseAddress else { return }
                    let addresses = (Int(bitPattern: base), Int(bitPattern: g), Int(bitPattern: b))
                    overCoresWhenLarge(rows, valuesEach: count) { range in
                        guard let base = UnsafeMutablePointer<Float>(bitPattern: addresses.0),
                              let g = UnsafePointer<Float>(bitPattern: addresses.1),
                              let b = UnsafePointer<Float>(bitPattern: addresses.2) else { return }
                        scion_layer_norm_rows(base + range.lowerBound * count, range.count, count, g, b, epsilon)
                    }
                }
            }
        }
    }
}
