/// Convolution kernels in the order the executor's kernels read them, made in one pass from the
/// stored values with a folded BatchNormalization's per-filter scale applied on the way
/// (Executor+Weights.swift decides which form each kernel takes).
///
/// A channels-last convolution is one GEMM `out[M, F] = windows[M, K] · filters`, with each window
/// unfolded as `(ky, kx, c)`, `K = kh·kw·C`. The filters can be either operand order:
/// - `filtersLast`, `[kh, kw, C, F]`: the GEMM's right matrix `[K, F]` as it lies. This is Keras's
///   HWIO kernel exactly as the file holds it, so a Keras model's kernels are read with no
///   permutation at all.
/// - `filtersFirst`, `[F, kh, kw, C]`: its transpose, read transposed by the GEMM. An ONNX OIHW 1x1
///   kernel `[F, C, 1, 1]` already is this; a larger one needs one pass that moves the channels
///   inside each filter.
/// A depthwise kernel is `[kh, kw, F]` (filters contiguous per tap), again Keras's file order.
extension Kernels {
    /// Which operand order a channels-last convolution's filter matrix has (see the extension's comment).
    enum FilterOrder: Equatable, Sendable {
        /// `[kh, kw, C, F]`: the GEMM's right matrix as it lies (Keras's HWIO).
        case filtersLast
        /// `[F, kh, kw, C]`: the right matrix transposed (from ONNX's OIHW).
        case filtersFirst
    }

    /// `oihw` (`[F, C, taps]`, row-major) written to `target` as `[F, taps, C]`, filter `f` times
    /// `scales[f]` when given. With one tap or one channel it is a scaled copy.
    static func filtersFirst(from oihw: UnsafeBufferPointer<Float>, into target: UnsafeMutableBufferPointer<Float>,
                             filters: Int, channels: Int, taps: Int, scales: [Float]?) {
        guard let from = oihw.baseAddress, let to = target.baseAddress, filters > 0 else { return }
        let perFilter = channels * taps
        precondition(oihw.count == filters * perFilter && target.count == oihw.count, "kernel of \(oihw.count) values is not [\(filters), \(channels), \(taps)]")
        for f in 0..<filters {
            let input = from + f * perFilter, output = to + f * perFilter
            let scale = scales?[f] ?? 1
            if taps == 1 || channels == 1 {
                if scales == nil {
                    output.update(from: input, count: perFilter)
                } else {
                    for i in 0..<perFilter { output[i] = input[i] * scale }
                }
                continue
            }
            // One filter's [C, taps] block (a few KB) transposed while it sits in cache.
            for c in 0..<channels {
                for t in 0..<taps { output[t * channels + c] = input[c * taps + t] * scale }
            }
        }
    }

    /// `oihw` (`[F, C, taps]`) written to `target` as `[taps, C, F]` (`filtersLast`; a depthwise
    /// kernel `[F, 1, taps]` becomes `[taps, F]`), filter `f` times `scales[f]` when given. For
    /// kernels that were not stored that way already (an ONNX depthwise kernel).
    static func filtersLast(from oihw: UnsafeBufferPointer<Float>, into target: UnsafeMutableBufferPointer<Float>,
                            filters: Int, channels: Int, taps: Int, scales: [Float]?) {
        guard let from = oihw.baseAddress, let to = target.baseAddress, filters > 0 else { return }
        let perFilter = channels * taps
        precondition(oihw.count == filters * perFilter && target.count == oihw.count, "kernel of \(oihw.count) values is not [\(filters), \(channels), \(taps)]")
        for f in 0..<filters {
            let input = from + f * perFilter, scale = scales?[f] ?? 1
            for c in 0..<channels {
                for t in 0..<taps { to[(t * channels + c) * filters + f] = input[c * taps + t] * scale }
            }
        }
    }

    /// Each row of `columns` values times `scales` (one per column), in place: a folded
    /// BatchNormalization applied to a `filtersLast` kernel, whose filters are its columns.
    static func scaleColumns(_ values: UnsafeMutableBufferPointer<Float>, _ scales: [Float]) {
        let columns = scales.count
        guard let base = values.baseAddress, columns > 0 else { return }
        precondition(values.count % columns == 0, "\(values.count) values are not rows of \(columns)")
        scales.withUnsafeBufferPointer { factors in
            guard let factor = factors.baseAddress else { return }
            for r in 0..<(values.count / columns) {
                let row = base + r * columns
                for c in 0..<columns { row[c] *= factor[c] }
            }
        }
    }

    /// Each of `scales.count` equal runs of `values` (the filters of an OIHW kernel) times its
    /// scale, in place.
    static func scaleRows(_ values: UnsafeMutableBufferPointer<Float>, _ scales: [Float]) {
        guard let base = values.baseAddress, !scales.isEmpty else { return }
        precondition(values.count % scales.count == 0, "\(values.count) values are not \(scales.count) rows")
        let length = values.count / scales.count
        for (r, scale) in scales.enumerated() {
            let row = base + r * length
            for i in 0..<length { row[i] *= scale }
        }
    }
}
