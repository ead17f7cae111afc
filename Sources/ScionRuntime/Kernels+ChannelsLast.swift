import CVectorKernels
import Foundation
import ScionIR

/// Kernels on channels-last values: rank-4 tensors whose data is ordered `[N, H, W, C]` while the
/// graph's op means `[N, C, H, W]` (the executor's channels-last plan, Executor+ChannelsLast.swift).
/// In this order a convolution is one GEMM over all `N·H·W` output pixels (a 1x1 convolution reads
/// its input as the GEMM's left matrix directly) and per-channel arithmetic runs over contiguous
/// channels. The window kernels (depthwise, pooling) are in Kernels+ChannelsLastWindows.swift.
extension Kernels {
    /// `[N, C, H, W]` data reordered `[N, H, W, C]` (or back, with `toChannelsLast: false`): one
    /// `[C, H·W]` ↔ `[H·W, C]` transpose per sample, in tiles so both sides stay in cache.
    static func relayout(_ x: RuntimeTensor, toChannelsLast: Bool) -> RuntimeTensor {
        precondition(x.rank == 4, "relayout of a rank-\(x.rank) tensor")
        let s = x.shape
        let (batch, channels, area) = toChannelsLast ? (s[0], s[1], s[2] * s[3]) : (s[0], s[3], s[1] * s[2])
        let shape = toChannelsLast ? [s[0], s[2], s[3], s[1]] : [s[0], s[3], s[1], s[2]]
        // One channel or one cell: both orders are the same bytes.
        if channels == 1 || area == 1 { return RuntimeTensor(shape: shape, data: x.data) }
        // Rows and columns of each sample's matrix: [rows, columns] → [columns, rows].
        let (rows, columns) = toChannelsLast ? (channels, area) : (area, channels)
        let data = [Float](unsafeUninitializedCapacity: x.count) { output, initialized in
            x.data.withUnsafeBufferPointer { input in
                guard let source = input.baseAddress, let target = output.baseAddress else { return }
                let tile = 32
                for n in 0..<batch {
                    let from = source + n * rows * columns, to = target + n * rows * columns
                    for r0 in stride(from: 0, to: rows, by: tile) {
                        let r1 = min(r0 + tile, rows)
                        for c0 in stride(from: 0, to: columns, by: tile) {
                            let c1 = min(c0 + tile, columns)
                            for r in r0..<r1 {
                                for c in c0..<c1 { to[c * rows + r] = from[r * columns + c] }
                            }
                        }
                    }
                }
            }
            initialized = x.count
        }
        return RuntimeTensor(shape: shape, data: data)
    }

    /// Convolution with one group on a channels-last input: each core takes a share of the output
    /// pixels and, a block of rows at a time, unfolds their windows into rows `(ky, kx, c)`,
    /// multiplies them by the filter matrix, `[K, F]` (`order` `filtersLast`) or read transposed
    /// from `[F, K]` (`filtersFirst`; Kernels+KernelLayout.swift), straight into the channels-last
    /// output, and applies `epilogue` to the block while it is still in the core's cache. A 1x1
    /// convolution with stride 1 and no padding multiplies the input itself (no unfolding).
    /// `prologue` (1x1 convolutions only): a normalization applied to the input as it is read, or a
    /// squeeze-and-excitation gate, applied to the input rows or carried by each sample's filters
    /// (`SampleGate.scalesFilters`).
    static func convolutionChannelsLast(_ x: RuntimeTensor, kernel: WeightValues, order: FilterOrder, _ g: ConvGeometry,
                                        prologue: InputPrologue? = nil, epilogue: ConvolutionEpilogue) -> RuntimeTensor {
        var output = uninitialized(g.batch * g.oh * g.ow * g.filters)
        output.withUnsafeMutableBufferPointer { out in
            guard let target = out.baseAddress else { return }
            convolveChannelsLast(x, kernel: kernel, order: order, g, prologue: prologue, epilogue: epilogue, into: target, residual: nil)
        }
        return RuntimeTensor(shape: [g.batch, g.oh, g.ow, g.filters], data: output)
    }

    /// `convolutionChannelsLast` with a residual sum: the result is `sum`'s values plus the
    /// convolution's (after its epilogue, which must be linear), then `residual`'s ReLU, written
    /// into `sum`'s buffer (no buffer of the output's size is made when the caller holds `sum` alone).
    static func convolutionChannelsLast(_ x: RuntimeTensor, kernel: WeightValues, order: FilterOrder, _ g: ConvGeometry,
                                        prologue: InputPrologue? = nil, epilogue: ConvolutionEpilogue,
                                        adding residual: ResidualAddition, into sum: inout RuntimeTensor) {
        precondition(sum.count == g.batch * g.oh * g.ow * g.filters, "a residual of \(sum.shape) for a convolution's \(g.filters) filters")
        sum.data.withUnsafeMutableBufferPointer { out in
            guard let target = out.baseAddress else { return }
            convolveChannelsLast(x, kernel: kernel, order: order, g, prologue: prologue, epilogue: epilogue, into: target, residual: residual)
        }
        sum.shape = [g.batch, g.oh, g.ow, g.filters]
    }

    /// The two above: `target` holds `residual`'s other operand on entry when it is given.
    private static func convolveChannelsLast(_ x: RuntimeTensor, kernel: WeightValues, order: FilterOrder, _ g: ConvGeometry,
                                             prologue: InputPrologue?, epilogue: ConvolutionEpilogue,
                                             into target: UnsafeMutablePointer<Float>, residual: ResidualAddition?) {
        x.data.withUnsafeBufferPointer { input in
            guard let source = input.baseAddress else { return }
            guard case .gate(let gate)? = prologue, gate.scalesFilters(filters: g.filters) else {
                convolveChannelsLast(source, kernel: kernel, order: order, g, prologue: prologue, epilogue: epilogue, into: target, residual: residual)
                return
            }
            // The gate carried by the filters: each sample multiplied by its own scaled copy.
            var sample = g
            sample.batch = 1
            let (inputs, outputs) = (g.height * g.width * g.channels, g.oh * g.ow * g.filters)
            for n in 0..<g.batch {
                let scaled = gate.filters(for: n, kernel: kernel, order: order, depth: g.channels, filters: g.filters)
                convolveChannelsLast(source + n * inputs, kernel: scaled, order: order, sample, prologue: nil, epilogue: epilogue,
                                     into: target + n * outputs, residual: residual)
            }
        }
    }

    /// The one above on `source`, `g.batch` samples of `[H, W, C]`.
    private static func convolveChannelsLast(_ source: UnsafePointer<Float>, kernel: WeightValues, order: FilterOrder, _ g: ConvGeometry,
                                             prologue: InputPrologue?, epilogue: ConvolutionEpilogue,
                                             into target: UnsafeMutablePointer<Float>, residual: ResidualAddition?) {
        let (channels, filters) = (g.channels, g.filters)
        let pixels = g.batch * g.oh * g.ow, patch = g.kh * g.kw * channels
        let transposeB = order == .filtersFirst
        let pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.top == 0 && g.left == 0
            && g.oh == g.height && g.ow == g.width
        let cores = CorePool.cores
        precondition(prologue == nil || pointwise, "an input normalization for a convolution that unfolds its input")
        // Rows per GEMM call: the block's output (at most about 1 MB) stays cached for the epilogue;
        // unfolded windows at most 4 MB; never under 128 rows, as OpenBLAS packs the filters again
        // on every call. Input rows normalized by `prologue` for filter panels (packed once: short
        // blocks cost no packing) at most 256 KB, still in the core's cache when the product reads them.
        let copied = !pointwise || prologue != nil
        let blockRows = prologue != nil && order == .panels
            ? max(16, min((1 << 18) / max(filters, 1), (1 << 16) / max(patch, 1)))
            : max(128, min((1 << 18) / max(filters, 1), copied ? (1 << 20) / max(patch, 1) : Int.max))
        // At most 64 filters: CVectorKernels' narrow product (1.1-1.9x OpenBLAS there, which spends
        // most of such a product packing the pixels' rows), its filters packed once per call (a
        // Keras kernel of 16, 32, 48 or 64 filters needs no packing).
        let narrow = NarrowProduct(filters: kernel, order: order, columns: filters, depth: patch)
        let panels = order == .panels
        kernel.withUnsafeBufferPointer { k in
            guard let weights = k.baseAddress else { return }
            // Windows of short runs (an RGB stem's) multiplied where they lie, not unfolded.
            if prologue == nil, pixels >= 64 * cores, readsWindowsInPlace(g) {
                if panels {
                    return convolveWindows(source, packed: weights, g, epilogue: epilogue, into: target, residual: residual)
                }
                let multiplied = narrow?.withPackedFilters {
                    convolveWindows(source, packed: $0, g, epilogue: epilogue, into: target, residual: residual)
                }
                if multiplied == true { return }
            }
            // Few rows (the top of a network at batch 1): the product split by columns, the
            // epilogue after it (a small output).
            guard pixels >= 64 * cores || cores == 1 else {
                let a = copied ? copiedRows(source, g, pixels: pixels, prologue: prologue) : source
                defer { if copied { a.deallocate() } }
                let saved = residual.map { _ in ResidualAddition.setAside(target, count: pixels * filters) }
                defer { saved?.deallocate() }
                if panels {
                    fewRowsOnPanels(a, weights, target, rows: pixels, depth: patch, filters: filters, cores: cores, epilogue: epilogue)
                } else {
                    if narrow?.multiply(a, rows: pixels, into: target) == nil {
                        BLAS.splitGemm(m: pixels, n: filters, k: patch, a: a, b: weights, transposeB: transposeB, c: target)
                    }
                    epilogue.apply(target, rows: pixels, channels: filters)
                }
                if let residual, let saved { residual.apply(target, adding: saved, count: pixels * filters) }
                return
            }
            let addresses = (Int(bitPattern: source), Int(bitPattern: weights), Int(bitPattern: target))
            BLAS.singleThreaded {
                splitOverCores(pixels) { share in
                    guard let source = UnsafePointer<Float>(bitPattern: addresses.0),
                          let weights = UnsafePointer<Float>(bitPattern: addresses.1),
                          let target = UnsafeMutablePointer<Float>(bitPattern: addresses.2) else { return }
                    let scratch = copied ? UnsafeMutablePointer<Float>.allocate(capacity: min(blockRows, share.count) * patch) : nil
                    defer { scratch?.deallocate() }
                    // The residual's rows of one block, set aside before the product overwrites them.
                    let saved = residual.map { _ in UnsafeMutablePointer<Float>.allocate(capacity: min(blockRows, share.count) * filters) }
                    defer { saved?.deallocate() }
                    for first in stride(from: share.lowerBound, to: share.upperBound, by: blockRows) {
                        let count = min(blockRows, share.upperBound - first)
                        let out = target + first * filters
                        var rows = source + first * channels
                        if let scratch, let prologue {
                            prologue.apply(rows, into: scratch, first: first, rows: count, channels: channels)
                            rows = UnsafePointer(scratch)
                        } else if let scratch {
                            unfoldChannelsLast(source, g, firstPixel: first, pixelCount: count, into: scratch)
                            rows = UnsafePointer(scratch)
                        }
                        saved?.update(from: out, count: count * filters)
                        if panels {
                            scion_gemm_panels(rows, patch, weights, out, filters, count, filters, patch, 0, (filters + 63) / 64)
                        } else if narrow?.multiply(rows, rows: count, into: out) == nil {
                            BLAS.gemm(m: count, n: filters, k: patch, a: rows, b: weights, transposeB: transposeB, c: out)
                        }
                        epilogue.apply(out, rows: count, channels: filters)
                        if let residual, let saved { residual.apply(out, adding: saved, count: count * filters) }
                    }
                }
            }
        }
    }

    /// A product of few rows (a 7x7 image's 49 pixels, a squeeze-and-excitation's one) on filter
    /// panels, each core taking whole units of one panel times one part of the rows, the epilogue
    /// applied to each unit as it is computed. The rows are cut into as many parts as balance the
    /// units between the cores: three panels on two cores as panels alone kept one core waiting for
    /// the other's second panel (a third of the product).
    private static func fewRowsOnPanels(_ a: UnsafePointer<Float>, _ weights: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>,
                                        rows: Int, depth: Int, filters: Int, cores: Int, epilogue: ConvolutionEpilogue) {
        let panelCount = (filters + 63) / 64
        let parts = balancedParts(units: panelCount, rows: rows, cores: cores)
        let addresses = (Int(bitPattern: a), Int(bitPattern: weights), Int(bitPattern: target))
        splitOverCores(panelCount * parts) { units in
            guard let a = UnsafePointer<Float>(bitPattern: addresses.0), let weights = UnsafePointer<Float>(bitPattern: addresses.1),
                  let target = UnsafeMutablePointer<Float>(bitPattern: addresses.2) else { return }
            for unit in units {
                let (part, panel) = unit.quotientAndRemainder(dividingBy: panelCount)
                let first = part * rows / parts, count = (part + 1) * rows / parts - first
                let column = panel * 64, width = min(64, filters - column)
                guard count > 0 else { continue }
                scion_gemm_panels(a + first * depth, depth, weights, target + first * filters, filters, count, filters, depth, panel, 1)
                epilogue.apply(target + first * filters + column, rows: count, stride: filters, firstChannel: column, count: width)
            }
        }
    }

    /// Into how many parts to cut `rows` so that `units` units of work per part share out evenly
    /// between `cores` (the fewest parts within an eighth of even; parts of at least 8 rows).
    static func balancedParts(units: Int, rows: Int, cores: Int) -> Int {
        let most = max(1, min(cores * 2, rows / 8))
        let even = Double(units) / Double(cores)
        for parts in 1...most {
            let heaviest = Double((units * parts + cores - 1) / cores) / Double(parts)
            if heaviest <= even * 1.125 { return parts }
        }
        return most
    }

    /// Every output pixel's window unfolded (`unfoldChannelsLast`) into a new buffer the caller deallocates.
    /// The product's left matrix for all `pixels` in a fresh buffer (the caller frees it): the
    /// input normalized by `prologue` (a 1x1 convolution), or its windows unfolded.
    private static func copiedRows(_ source: UnsafePointer<Float>, _ g: ConvGeometry, pixels: Int,
                                   prologue: InputPrologue?) -> UnsafePointer<Float> {
        let rows = UnsafeMutablePointer<Float>.allocate(capacity: pixels * g.kh * g.kw * g.channels)
        if let prologue {
            prologue.apply(source, into: rows, first: 0, rows: pixels, channels: g.channels)
        } else {
            unfoldChannelsLast(source, g, firstPixel: 0, pixelCount: pixels, into: rows)
        }
        return UnsafePointer(rows)
    }

    /// Unfolds the windows of output pixels `firstPixel ..< firstPixel + pixelCount` (row-major over
    /// `[N, OH, OW]`) into rows of `kh·kw·C` values: each tap's `C` channels are one contiguous copy,
    /// padding reads as zeros (CVectorKernels' `scion_unfold_rows`). On the calling thread.
    static func unfoldChannelsLast(_ source: UnsafePointer<Float>, _ g: ConvGeometry, firstPixel: Int, pixelCount: Int,
                                   into target: UnsafeMutablePointer<Float>) {
        var arguments = scion_unfold_arguments(
            source: source, target: target, height: g.height, width: g.width, channels: g.channels, kh: g.kh, kw: g.kw,
            sh: g.sh, sw: g.sw, dh: g.dh, dw: g.dw, top: g.top, left: g.left, oh: g.oh, ow: g.ow,
            first_pixel: firstPixel, pixel_count: pixelCount)
        scion_unfold_rows(&arguments)
    }

    /// `sum += other` value by value (same shapes), then a (capped) ReLU when `reluCap` is given.
    static func addInPlace(_ sum: inout RuntimeTensor, _ other: RuntimeTensor, reluCap: Float?) {
        sum.data.withUnsafeMutableBufferPointer { target in
            other.data.withUnsafeBufferPointer { source in
                let count = min(target.count, source.count)
                let addresses = (Int(bitPattern: target.baseAddress), Int(bitPattern: source.baseAddress))
                overCoresWhenLarge(count, valuesEach: 1) { range in
                    guard let to = UnsafeMutablePointer<Float>(bitPattern: addresses.0),
                          let from = UnsafePointer<Float>(bitPattern: addresses.1) else { return }
                    // The other operand as a "bias" over one long row (CVectorKernels: 16 lanes).
                    scion_clamp_rows(to + range.lowerBound, 1, range.count, range.count, from + range.lowerBound,
                                     reluCap == nil ? 0 : 1, reluCap ?? .infinity)
                }
            }
        }
    }

    /// `x · s` for a channels-last `x` `[N, H, W, C]` and `s` `[N, 1, 1, C]` (either order in
    /// `operands`): each sample's pixels times that sample's per-channel weights, written into `x`'s
    /// buffer (its only holder when this multiplication reads it last). nil for any other shapes.
    static func gateChannelsLast(_ operands: inout [RuntimeTensor]) -> RuntimeTensor? {
        guard operands.count == 2, operands.allSatisfy({ $0.rank == 4 }) else { return nil }
        let gateFirst = operands[0].count < operands[1].count
        let (xShape, gateShape) = gateFirst ? (operands[1].shape, operands[0].shape) : (operands[0].shape, operands[1].shape)
        guard gateShape == [xShape[0], 1, 1, xShape[3]], xShape[1] * xShape[2] > 1 else { return nil }
        var x = operands[gateFirst ? 1 : 0]
        let gate = operands[gateFirst ? 0 : 1]
        operands = []
        let (samples, pixels, channels) = (xShape[0], xShape[1] * xShape[2], xShape[3])
        x.data.withUnsafeMutableBufferPointer { values in
            gate.data.withUnsafeBufferPointer { weights in
                let addresses = (Int(bitPattern: values.baseAddress), Int(bitPattern: weights.baseAddress))
                overCoresWhenLarge(samples * pixels, valuesEach: channels) { range in
                    guard let values = UnsafeMutablePointer<Float>(bitPattern: addresses.0),
                          let weights = UnsafePointer<Float>(bitPattern: addresses.1) else { return }
                    // The range's pixels, a sample's run at a time (each with its own weights).
                    var pixel = range.lowerBound
                    while pixel < range.upperBound {
                        let sample = pixel / pixels, end = min(range.upperBound, (sample + 1) * pixels)
                        scion_scale_rows(values + pixel * channels, end - pixel, channels, channels, weights + sample * channels)
                        pixel = end
                    }
                }
            }
        }
        return x
    }

    /// Concatenation along the channels of channels-last tensors (`[N, H, W, Ci]` → `[N, H, W, ΣCi]`):
    /// each pixel's channels are copied input after input.
    static func concatenateChannelsLast(_ inputs: [RuntimeTensor]) -> RuntimeTensor {
        guard let first = inputs.first else { return RuntimeTensor(shape: [0], data: []) }
        let pixels = first.count / max(first.shape[3], 1)
        let total = inputs.reduce(0) { $0 + $1.shape[3] }
        var output = uninitialized(pixels * total)
        // Each output pixel written whole, one input's channels after the other, pixels split over
        // the cores (DenseNet concatenates its growing feature maps after every layer).
        let widths = inputs.map { $0.shape[3] }
        // The arrays' storage stays where it is while `inputs` holds them (withExtendedLifetime below).
        let sources = inputs.map { input in input.data.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } }
        withExtendedLifetime(inputs) {
            output.withUnsafeMutableBufferPointer { out in
                let target = Int(bitPattern: out.baseAddress)
                let copy = { @Sendable (range: Range<Int>) in
                    guard let target = UnsafeMutablePointer<Float>(bitPattern: target) else { return }
                    for p in range {
                        var offset = p * total
                        for (source, width) in zip(sources, widths) {
                            guard let from = UnsafePointer<Float>(bitPattern: source) else { continue }
                            (target + offset).update(from: from + p * width, count: width)
                            offset += width
                        }
                    }
                }
                if pixels * total < 1 << 16 { copy(0..<pixels) } else { splitOverCores(pixels, copy) }
            }
        }
        return RuntimeTensor(shape: [first.shape[0], first.shape[1], first.shape[2], total], data: output)
    }

    /// Constant padding (negative: cropping) of the spatial axes of a channels-last tensor: whole
    /// rows of `W·C` values at a time. `top`/`left`/`bottom`/`right` count cells.
    static func padChannelsLast(_ x: RuntimeTensor, top: Int, bottom: Int, left: Int, right: Int, value: Float) -> RuntimeTensor {
        let (batch, height, width, channels) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let outHeight = max(height + top + bottom, 0), outWidth = max(width + left + right, 0)
        var output = [Float](repeating: value, count: batch * outHeight * outWidth * channels)
        // The part of each input row that lands inside the output.
        let firstColumn = max(-left, 0), lastColumn = min(width, outWidth - left)
        guard lastColumn > firstColumn else { return RuntimeTensor(shape: [batch, outHeight, outWidth, channels], data: output) }
        x.data.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                guard let from = source.baseAddress, let to = target.baseAddress else { return }
                let firstRow = max(-top, 0), lastRow = min(height, outHeight - top)
                guard lastRow > firstRow else { return }
                for n in 0..<batch {
                    for y in firstRow..<lastRow {
                        let input = from + ((n * height + y) * width + firstColumn) * channels
                        let row = to + ((n * outHeight + y + top) * outWidth + firstColumn + left) * channels
                        row.update(from: input, count: (lastColumn - firstColumn) * channels)
                    }
                }
            }
        }
        return RuntimeTensor(shape: [batch, outHeight, outWidth, channels], data: output)
    }
}

extension Kernels {
    /// Depthwise convolution (each filter reads one channel; `g.filtersPerGroup` filters per channel)
    /// on a channels-last input, kernel `[kh, kw, F]` (Kernels+KernelLayout.swift), `epilogue`
    /// applied to each output row as it is written.
    static func depthwiseConvolutionChannelsLast(_ x: RuntimeTensor, kernel: WeightValues, _ g: ConvGeometry,
                                                 epilogue: ConvolutionEpilogue) -> RuntimeTensor {
        var output = uninitialized(g.batch * g.oh * g.ow * g.filters)
        x.data.withUnsafeBufferPointer { input in
            kernel.withUnsafeBufferPointer { k in
                output.withUnsafeMutableBufferPointer { out in
                    guard let source = input.baseAddress, let weights = k.baseAddress, let target = out.baseAddress else { return }
                    depthwiseChannelsLast(source, kernel: weights, into: target, g, epilogue: epilogue)
                }
            }
        }
        return RuntimeTensor(shape: [g.batch, g.oh, g.ow, g.filters], data: output)
    }
}
