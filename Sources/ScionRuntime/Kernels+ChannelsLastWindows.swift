import CVectorKernels
import Foundation
import ScionIR

/// The window kernels of the channels-last plan: depthwise convolution, pooling and global pooling
/// on physical NHWC data (`[N, H, W, C]`), reproducing the channels-first kernels' results (same
/// taps, same summation order per value, so the same bits). The inner loops run over a block of
/// contiguous channels with SIMD vectors (16, then 4 wide, then one at a time for the remainder);
/// the window's valid taps are found once per output row and column, never per value; output rows
/// (and, when there are few, blocks of channels) are spread over the cores.
extension Kernels {
    /// Depthwise convolution, channels-last: `x` is `[g.batch, g.height, g.width, g.channels]`,
    /// `kernel` is `[kh, kw, g.filters]` (tap-major, filters contiguous), the output is
    /// `[g.batch, g.oh, g.ow, g.filters]`, `epilogue` applied to each pixel's values as they are
    /// written (cached). Output channel `c · m + j`
    /// reads input channel `c`, `m` being `g.filtersPerGroup` (the channel multiplier, usually 1).
    /// `g` is the geometry of the logical NCHW shapes (kernel `[filters, 1, kh, kw]`).
    static func depthwiseChannelsLast(_ x: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                                      into output: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
                                      epilogue: ConvolutionEpilogue = ConvolutionEpilogue(bias: nil, activation: .linear)) {
        let multiplier = g.filtersPerGroup
        guard multiplier > 1 else { return depthwiseOnePerChannel(x, kernel: kernel, into: output, g, epilogue: epilogue) }
        // Each input channel repeated m times makes a multiplier-1 convolution over g.filters
        // channels: the fast loop stays one load per filter and tap instead of a gather.
        let pixels = g.batch * g.height * g.width
        let repeated = [Float](unsafeUninitializedCapacity: pixels * g.filters) { buffer, count in
            guard let target = buffer.baseAddress else { return }
            for pixel in 0..<pixels {
                let source = x + pixel * g.channels, row = target + pixel * g.filters
                for c in 0..<g.channels { (row + c * multiplier).initialize(repeating: source[c], count: multiplier) }
            }
            count = pixels * g.filters
        }
        var expanded = g
        (expanded.channels, expanded.perGroup, expanded.groups) = (g.filters, 1, g.filters)
        repeated.withUnsafeBufferPointer { source in
            guard let base = source.baseAddress else { return }
            depthwiseOnePerChannel(base, kernel: kernel, into: output, expanded, epilogue: epilogue)
        }
    }

    /// Multiplier 1 (`g.filters == g.channels`). Each output value sums its valid taps kx-major then
    /// ky, as `depthwise` does (a tap's product added to the running sum, starting from zero). One
    /// output row of a block of channels per task, in CVectorKernels (`scion_depthwise_row`: 16
    /// channels to a vector, AVX-512 where the CPU has it), the epilogue applied to the row while it
    /// is cached. Blocking four pixels per weight load with unrolled 3x3/5x5 taps was measured and
    /// dropped: up to 1.3x faster at batch 1 on some shapes, but 1.5-2x slower at batch 32.
    private static func depthwiseOnePerChannel(_ x: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                                               into output: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
                                               epilogue: ConvolutionEpilogue) {
        let rows = TapRanges(outputs: g.oh, stride: g.sh, dilation: g.dh, before: g.top, kernel: g.kh, length: g.height)
        let cols = TapRanges(outputs: g.ow, stride: g.sw, dilation: g.dw, before: g.left, kernel: g.kw, length: g.width)
        let channels = g.channels
        let addresses = (Int(bitPattern: x), Int(bitPattern: kernel), Int(bitPattern: output))
        cols.low.withUnsafeBufferPointer { kxLow in
            cols.high.withUnsafeBufferPointer { kxHigh in
                let columnAddresses = (Int(bitPattern: kxLow.baseAddress), Int(bitPattern: kxHigh.baseAddress))
                spreadOverCores(rows: g.batch * g.oh, channels: channels, work: g.ow * channels * g.kh * g.kw) { row, first, last in
                    let (n, oy) = row.quotientAndRemainder(dividingBy: g.oh)
                    guard let image = UnsafePointer<Float>(bitPattern: addresses.0).map({ $0 + n * g.height * g.width * channels }),
                          let target = UnsafeMutablePointer<Float>(bitPattern: addresses.2).map({ $0 + row * g.ow * channels }) else { return }
                    depthwiseRow(image, kernel: UnsafePointer(bitPattern: addresses.1), into: target, g, oy: oy, rows: rows,
                                 kxLow: UnsafePointer(bitPattern: columnAddresses.0), kxHigh: UnsafePointer(bitPattern: columnAddresses.1),
                                 channels: first..<last)
                    epilogue.apply(target + first, rows: g.ow, stride: channels, firstChannel: first, count: last - first)
                }
            }
        }
    }

    /// Output row `oy` of a channels-last depthwise convolution with one filter per channel
    /// (`kernel` `[kh, kw, C]`), channels `channels` only, through CVectorKernels'
    /// `scion_depthwise_row`: `image` holds one sample's input from its row `firstRow` on, `kxLow`
    /// and `kxHigh` each output column's valid taps (`TapRanges`). The epilogue is the caller's.
    static func depthwiseRow(_ image: UnsafePointer<Float>, firstRow: Int = 0, kernel: UnsafePointer<Float>?,
                             into row: UnsafeMutablePointer<Float>, _ g: ConvGeometry, oy: Int, rows: TapRanges,
                             kxLow: UnsafePointer<Int>?, kxHigh: UnsafePointer<Int>?, channels: Range<Int>) {
        var arguments = scion_depthwise_row_arguments(
            image: image, kernel: kernel, output: row,
            channels: g.channels, width: g.width, output_width: g.ow, stride: g.sw, left: g.left, kernel_width: g.kw,
            row_start: oy * g.sh - g.top - firstRow, row_stride: g.dh * g.width * g.channels, tap_stride: g.dw * g.channels,
            ky_low: rows.low[oy], ky_high: rows.high[oy], kx_low: kxLow, kx_high: kxHigh,
            first: channels.lowerBound, last: channels.upperBound)
        scion_depthwise_row(&arguments)
    }

    /// Whether `poolChannelsLast` runs this pooling: rank 2 with adjacent cells (dilated max pooling,
    /// ONNX only, keeps the channels-first path).
    static func poolRunsChannelsLast(_ a: PoolAttributes) -> Bool { a.rank == 2 && a.isDense }

    /// Max or average pooling of rank 2, channels-last: `x` is physical NHWC with the logical shape
    /// `logical` (`[N, C, H, W]`); returns physical NHWC `[N, OH, OW, C]`, with `pool`'s semantics:
    /// padding never wins a max (a window wholly in padding gives -infinity, as there), an average
    /// divides by `PoolGeometry.divisor`, sums run over the window's rows then columns. With
    /// `paddingIsZero` padded cells are zeros (`Kernels.pool`'s).
    static func poolChannelsLast(_ x: [Float], logical: [Int], _ a: PoolAttributes, paddingIsZero: Bool = false,
                                 node: String) throws -> [Float] {
        guard poolRunsChannelsLast(a) else {
            throw RuntimeError(node, a.isDense ? "pooling of rank \(a.rank) does not run channels-last (rank 2 does)"
                                               : "dilated pooling (dilations \(a.dilations)) does not run channels-last")
        }
        let g = try PoolGeometry(input: logical, a, node: node)
        guard logical.allSatisfy({ $0 >= 0 }), logical.reduce(1, *) == x.count else {
            throw RuntimeError(node, "pooling input has \(x.count) values, not the \(logical.reduce(1, *)) of its shape \(logical)")
        }
        let channels = g.channels, count = g.batch * g.oh * g.ow * channels
        let rows = TapRanges(outputs: g.oh, stride: g.sh, dilation: 1, before: g.rows.before, kernel: g.kh, length: g.height)
        let cols = TapRanges(outputs: g.ow, stride: g.sw, dilation: 1, before: g.cols.before, kernel: g.kw, length: g.width)
        let isMax = a.kind == .max
        return x.withUnsafeBufferPointer { input in
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                let addresses = (Int(bitPattern: input.baseAddress), Int(bitPattern: buffer.baseAddress))
                spreadOverCores(rows: g.batch * g.oh, channels: channels, work: g.ow * channels * g.kh * g.kw) { row, first, last in
                    guard let x = UnsafePointer<Float>(bitPattern: addresses.0),
                          let output = UnsafeMutablePointer<Float>(bitPattern: addresses.1) else { return }
                    let (n, oy) = row.quotientAndRemainder(dividingBy: g.oh)
                    let y0 = oy * g.sh - g.rows.before
                    let (yLow, yHigh) = (y0 + rows.low[oy], y0 + rows.high[oy])
                    let image = x + n * g.height * g.width * channels
                    for ox in 0..<g.ow {
                        let x0 = ox * g.sw - g.cols.before
                        let (xLow, xHigh) = (x0 + cols.low[ox], x0 + cols.high[ox])
                        let target = output + (row * g.ow + ox) * channels
                        let inside = (yHigh - yLow) * (xHigh - xLow)
                        let divisor = Float(g.divisor(a, y0: y0, x0: x0, inside: inside))
                        // A max whose window holds zero-padded cells starts from their zero.
                        let start: Float = paddingIsZero && inside < g.kh * g.kw ? 0 : -.infinity
                        @inline(__always) func block<V: SIMD>(_: V.Type, _ c: Int) where V.Scalar == Float {
                            var best = V(repeating: start), sum = V()
                            for y in yLow..<yHigh {
                                var cell = image + (y * g.width + xLow) * channels + c
                                for _ in xLow..<xHigh {
                                    let value = load(V.self, cell)
                                    if isMax { best = larger(best, value, takingEqual: true) } else { sum += value }
                                    cell += channels
                                }
                            }
                            store(isMax ? best : sum / V(repeating: divisor), target + c)
                        }
                        var c = first
                        while c + 16 <= last { block(SIMD16<Float>.self, c); c += 16 }
                        while c + 4 <= last { block(SIMD4<Float>.self, c); c += 4 }
                        while c < last {
                            var best = start, sum: Float = 0
                            for y in yLow..<yHigh {
                                for xx in xLow..<xHigh {
                                    let value = image[(y * g.width + xx) * channels + c]
                                    best = max(best, value)
                                    sum += value
                                }
                            }
                            target[c] = isMax ? best : sum / divisor
                            c += 1
                        }
                    }
                }
                initialized = count
            }
        }
    }

    /// Global max or average pooling, channels-last: `x` is physical `[N, spatial..., C]` with the
    /// logical shape `logical` (`[N, C, spatial...]`); returns the `N · C` values in `[N, C]` order
    /// (the bytes of channels-first `[N, C, 1, 1]`), as `globalPool` computes them: the sum in
    /// spatial order divided by the area, or the first largest value (0 for an empty area).
    static func globalPoolChannelsLast(_ x: [Float], logical: [Int], kind: PoolKind) -> [Float] {
        let (batch, channels) = (logical[0], logical[1])
        let area = logical.dropFirst(2).reduce(1, *)
        let count = batch * channels
        guard area > 0 else { return [Float](repeating: 0, count: count) }
        let isMax = kind == .max, scale = Float(area)
        return x.withUnsafeBufferPointer { input in
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                let addresses = (Int(bitPattern: input.baseAddress), Int(bitPattern: buffer.baseAddress))
                spreadOverCores(rows: batch, channels: channels, work: area * channels) { n, first, last in
                    guard let x = UnsafePointer<Float>(bitPattern: addresses.0),
                          let output = UnsafeMutablePointer<Float>(bitPattern: addresses.1) else { return }
                    let image = x + n * area * channels, target = output + n * channels
                    @inline(__always) func block<V: SIMD>(_: V.Type, _ c: Int) where V.Scalar == Float {
                        var cell = image + c
                        if isMax {
                            // Sequence.max() keeps its first value and takes a later one only when larger.
                            var best = load(V.self, cell)
                            for _ in 0..<area {
                                best = larger(best, load(V.self, cell), takingEqual: false)
                                cell += channels
                            }
                            return store(best, target + c)
                        }
                        // Four running sums, pixels taken in turn: one sum waited on each addition
                        // before the next (EfficientNet's squeeze at batch 32: 6% of the pass).
                        var sums = (V(), V(), V(), V()), pixel = 0
                        while pixel + 4 <= area {
                            sums.0 += load(V.self, cell)
                            sums.1 += load(V.self, cell + channels)
                            sums.2 += load(V.self, cell + 2 * channels)
                            sums.3 += load(V.self, cell + 3 * channels)
                            cell += 4 * channels
                            pixel += 4
                        }
                        while pixel < area {
                            sums.0 += load(V.self, cell)
                            cell += channels
                            pixel += 1
                        }
                        store(((sums.0 + sums.1) + (sums.2 + sums.3)) / V(repeating: scale), target + c)
                    }
                    var c = first
                    while c + 16 <= last { block(SIMD16<Float>.self, c); c += 16 }
                    while c + 4 <= last { block(SIMD4<Float>.self, c); c += 4 }
                    while c < last {
                        var best = image[c], sum: Float = 0
                        for p in 0..<area {
                            let value = image[p * channels + c]
                            if best < value { best = value }
                            sum += value
                        }
                        target[c] = isMax ? best : sum / scale
                        c += 1
                    }
                }
                initialized = count
            }
        }
    }

    /// For each output position along one axis, the kernel taps `low..<high` whose input position
    /// `o · stride + t · dilation - before` falls inside `0..<length`: found once per call, so the
    /// inner loops never test a position.
    struct TapRanges {
        var low: [Int], high: [Int]

        init(outputs: Int, stride: Int, dilation: Int, before: Int, kernel: Int, length: Int) {
            (low, high) = ([], [])
            for o in 0..<outputs {
                let start = o * stride - before
                let first = start >= 0 ? 0 : min((-start + dilation - 1) / dilation, kernel)
                let end = length - 1 - start < 0 ? 0 : min((length - 1 - start) / dilation + 1, kernel)
                low.append(first)
                high.append(max(end, first))
            }
        }
    }

    /// Runs `body(row, firstChannel, lastChannel)` over `rows` output rows of `channels` channels,
    /// `work` multiply-adds (or loads) per row: inline when the whole is small (threads cost more
    /// than they save), otherwise over the cores, a task per row, or per row and block of channels
    /// when rows are too few to keep every core busy (7x7 maps at batch 1). Blocks are multiples of
    /// 16 channels, so only the last block of a row has a remainder.
    static func spreadOverCores(rows: Int, channels: Int, work: Int, _ body: @Sendable (Int, Int, Int) -> Void) {
        let workers = CorePool.cores
        if workers == 1 || rows * work < 1 << 15 {
            for row in 0..<rows { body(row, 0, channels) }
            return
        }
        let wanted = 8 * workers
        let splits = rows >= wanted ? 1 : max(1, min((wanted + rows - 1) / rows, channels / 32))
        let block = ((channels + splits - 1) / splits + 15) / 16 * 16
        let blocks = (channels + block - 1) / block
        CorePool.shared.run(count: rows * blocks) { task in
            let (row, part) = task.quotientAndRemainder(dividingBy: blocks)
            body(row, part * block, min((part + 1) * block, channels))
        }
    }

    /// The larger of `best` and `value` lane by lane, as one select per lane: the compiler makes it a
    /// vector compare and blend, where SIMD's `replace(with:where:)` measured 3x slower than the
    /// channels-first loop. `takingEqual` takes `value` when equal too,
    /// as `Swift.max(best, value)` does (`pool`); without, as `Sequence.max()` (`globalPool`); the
    /// two differ only for zeros of opposite signs.
    @inline(__always) private static func larger<V: SIMD>(_ best: V, _ value: V, takingEqual: Bool) -> V where V.Scalar == Float {
        var result = best
        for lane in 0..<V.scalarCount {
            let wins = takingEqual ? value[lane] >= best[lane] : value[lane] > best[lane]
            result[lane] = wins ? value[lane] : best[lane]
        }
        return result
    }

    @inline(__always) private static func load<V: SIMD>(_: V.Type, _ address: UnsafePointer<Float>) -> V where V.Scalar == Float {
        UnsafeRawPointer(address).loadUnaligned(as: V.self)
    }

    @inline(__always) private static func store<V: SIMD>(_ value: V, _ address: UnsafeMutablePointer<Float>) where V.Scalar == Float {
        UnsafeMutableRawPointer(address).storeBytes(of: value, as: V.self)
    }
}
