import CVectorKernels
import Foundation

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
        /// `[K, F]` in panels of 64 filters, each `[K, width rounded up to 16]` (`scion_pack_panels`),
        /// for CVectorKernels' narrow product; only for more than 64 filters (`runsOnPanels`).
        case panels
    }

    /// How a kernel is stored before preparation: Keras's HWIO `[kh, kw, C, F]` (the file's order,
    /// `Executor.storedFiltersLast`) or the lowered graph's OIHW `[F, C, kh, kw]`.
    enum StoredKernel: Sendable {
        case hwio, oihw

        /// The strides of tap `t`, channel `c` and filter `f` in a kernel of `taps` taps stored so.
        func strides(taps: Int, channels: Int, filters: Int) -> (tap: Int, channel: Int, filter: Int) {
            switch self {
            case .hwio: (channels * filters, filters, 1)
            case .oihw: (1, taps, channels * taps)
            }
        }
    }

    /// Whether this CPU runs CVectorKernels' narrow products (AVX2 or AVX-512), asked once.
    static let narrowProductsRun = String(cString: scion_vector_level()) != "sse2"

    /// What the prepared kernels' layouts depend on besides the program: the CPU's vector level
    /// and the switches that choose forms (`WeightsCache` keys its files on it).
    static let kernelLevel: String = {
        let environment = ProcessInfo.processInfo.environment
        return [String(cString: scion_vector_level()), "winograd \(winogradTile.map(String.init) ?? "off")",
                "panels \(panelsAllowed)", "layout \(environment["SCION_LAYOUT"] ?? "default")",
                "blocks \(environment["SCION_BLOCKS"] ?? "default")"].joined(separator: ", ")
    }()

    /// Whether a convolution's filter matrix (`depth` = kh·kw·C rows, `filters` columns) is held
    /// in `panels`: more than 64 filters (at most 64 take the narrow product anyway) and a depth
    /// of at least 128. Single thread (bench/panel_gemm_bench.c): 1.1-1.4x OpenBLAS's sgemm, which
    /// packs the filters again on every call; with a shallower depth OpenBLAS wins (K=64, F=256: 0.87x).
    static func runsOnPanels(filters: Int, depth: Int) -> Bool {
        panelsAllowed && filters > 64 && depth >= 128
    }

    /// `SCION_PANELS=off` keeps every wide filter matrix for OpenBLAS (to compare).
    private static let panelsAllowed = narrowProductsRun && ProcessInfo.processInfo.environment["SCION_PANELS"] != "off"

    static func panelCount(filters: Int, depth: Int) -> Int { scion_panels_count(filters, depth) }

    /// `kernel` (stored as `stored`) packed into `target` (`panelCount` floats) as `panels`, filter
    /// `f` times `scales[f]` when given.
    static func panels(_ kernel: UnsafeBufferPointer<Float>, stored: StoredKernel, taps: Int, channels: Int, filters: Int,
                       scales: [Float]?, into target: UnsafeMutableBufferPointer<Float>) {
        precondition(kernel.count == taps * channels * filters && target.count == panelCount(filters: filters, depth: taps * channels),
                     "panels of \(target.count) values for a kernel of \(kernel.count)")
        guard let from = kernel.baseAddress, let to = target.baseAddress else { return }
        let s = stored.strides(taps: taps, channels: channels, filters: filters)
        withOptionalPointer(scales) { scion_pack_panels(from, taps, channels, filters, s.tap, s.channel, s.filter, $0, to) }
    }

    /// `body` with the array's first element's address, or nil.
    static func withOptionalPointer<R>(_ values: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let values else { return body(nil) }
        return values.withUnsafeBufferPointer { body($0.baseAddress) }
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
