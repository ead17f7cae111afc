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

    /// Convolution with one group on a channels-last input: windows unfolded into rows `(ky, kx, c)`
    /// of a block of output pixels, then one GEMM per block against the filter matrix, `[K, F]`
    /// (`order` `filtersLast`) or read transposed from `[F, K]` (`filtersFirst`; Kernels+KernelLayout.swift),
    /// written straight into the channels-last output; a 1x1 convolution with stride 1 and no padding
    /// multiplies the input itself. The bias and a (capped) ReLU are applied in the same pass over
    /// each block (`reluCap`).
    static func convolutionChannelsLast(_ x: RuntimeTensor, kernel: [Float], order: FilterOrder, _ g: ConvGeometry, bias: [Float]?,
                                        reluCap: Float?) -> RuntimeTensor {
        let (channels, filters) = (g.channels, g.filters)
        let pixels = g.batch * g.oh * g.ow, patch = g.kh * g.kw * channels
        let transposeB = order == .filtersFirst
        var output = uninitialized(pixels * filters)
        let pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.top == 0 && g.left == 0
            && g.oh == g.height && g.ow == g.width
        kernel.withUnsafeBufferPointer { k in
            output.withUnsafeMutableBufferPointer { out in
                guard let weights = k.baseAddress, let target = out.baseAddress else { return }
                if pointwise {
                    x.data.withUnsafeBufferPointer { input in
                        guard let source = input.baseAddress else { return }
                        BLAS.splitGemm(m: pixels, n: filters, k: channels, a: source, b: weights, transposeB: transposeB, c: target)
                    }
                    channelsLastEpilogue(target, rows: pixels, channels: filters, bias: bias, reluCap: reluCap)
                    return
                }
                // Blocks of output pixels whose unfolded rows take about 8 MB: big enough for an
                // efficient GEMM, small enough not to hold a whole batch's unfolding.
                let block = max(16, min(pixels, (1 << 21) / max(patch, 1)))
                var columns = uninitialized(block * patch)
                columns.withUnsafeMutableBufferPointer { buffer in
                    guard let rows = buffer.baseAddress else { return }
                    for first in stride(from: 0, to: pixels, by: block) {
                        let count = min(block, pixels - first)
                        unfoldChannelsLast(x, g, firstPixel: first, pixelCount: count, into: rows)
                        BLAS.splitGemm(m: count, n: filters, k: patch, a: rows, b: weights, transposeB: transposeB, c: target + first * filters)
                        channelsLastEpilogue(target + first * filters, rows: count, channels: filters, bias: bias, reluCap: reluCap)
                    }
                }
            }
        }
        return RuntimeTensor(shape: [g.batch, g.oh, g.ow, filters], data: output)
    }

    /// Unfolds the windows of output pixels `firstPixel ..< firstPixel + pixelCount` (row-major over
    /// `[N, OH, OW]`) into rows of `kh·kw·C` values: each tap's `C` channels are one contiguous copy,
    /// padding reads as zeros. Rows are spread over the cores.
    static func unfoldChannelsLast(_ x: RuntimeTensor, _ g: ConvGeometry, firstPixel: Int, pixelCount: Int,
                                   into rows: UnsafeMutablePointer<Float>) {
        let channels = g.channels, patch = g.kh * g.kw * g.channels
        let workers = min(max(ProcessInfo.processInfo.activeProcessorCount, 1), max(pixelCount / 64, 1))
        x.data.withUnsafeBufferPointer { input in
            let addresses = (Int(bitPattern: input.baseAddress), Int(bitPattern: rows))
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                guard let source = UnsafePointer<Float>(bitPattern: addresses.0),
                      let target = UnsafeMutablePointer<Float>(bitPattern: addresses.1) else { return }
                for local in (pixelCount * worker / workers)..<(pixelCount * (worker + 1) / workers) {
                    let pixel = firstPixel + local
                    let ox = pixel % g.ow, oy = (pixel / g.ow) % g.oh, n = pixel / (g.ow * g.oh)
                    var row = target + local * patch
                    for ky in 0..<g.kh {
                        let y = oy * g.sh + ky * g.dh - g.top
                        if y < 0 || y >= g.height {
                            row.update(repeating: 0, count: g.kw * channels)
                            row += g.kw * channels
                            continue
                        }
                        let line = source + ((n * g.height + y) * g.width) * channels
                        for kx in 0..<g.kw {
                            let xx = ox * g.sw + kx * g.dw - g.left
                            if xx < 0 || xx >= g.width {
                                row.update(repeating: 0, count: channels)
                            } else {
                                row.update(from: line + xx * channels, count: channels)
                            }
                            row += channels
                        }
                    }
                }
            }
        }
    }

    /// Bias per channel (the last axis) and a (capped) ReLU, in place over `rows` rows of `channels`.
    static func channelsLastEpilogue(_ values: UnsafeMutablePointer<Float>, rows: Int, channels: Int, bias: [Float]?, reluCap: Float?) {
        guard bias != nil || reluCap != nil else { return }
        let zeros = [Float](repeating: 0, count: bias == nil ? channels : 0)
        (bias ?? zeros).withUnsafeBufferPointer { shifts in
            guard let shift = shifts.baseAddress else { return }
            for r in 0..<rows {
                let row = values + r * channels
                if let cap = reluCap {
                    for c in 0..<channels { row[c] = min(max(row[c] + shift[c], 0), cap) }
                } else {
                    for c in 0..<channels { row[c] += shift[c] }
                }
            }
        }
    }

    /// `sum += other` value by value (same shapes), then a (capped) ReLU when `reluCap` is given.
    static func addInPlace(_ sum: inout RuntimeTensor, _ other: RuntimeTensor, reluCap: Float?) {
        sum.data.withUnsafeMutableBufferPointer { target in
            other.data.withUnsafeBufferPointer { source in
                let count = min(target.count, source.count)
                guard let to = target.baseAddress, let from = source.baseAddress else { return }
                if let cap = reluCap {
                    for i in 0..<count { to[i] = min(max(to[i] + from[i], 0), cap) }
                } else {
                    for i in 0..<count { to[i] += from[i] }
                }
            }
        }
    }

    /// Concatenation along the channels of channels-last tensors (`[N, H, W, Ci]` → `[N, H, W, ΣCi]`):
    /// each pixel's channels are copied input after input.
    static func concatenateChannelsLast(_ inputs: [RuntimeTensor]) -> RuntimeTensor {
        guard let first = inputs.first else { return RuntimeTensor(shape: [0], data: []) }
        let pixels = first.count / max(first.shape[3], 1)
        let total = inputs.reduce(0) { $0 + $1.shape[3] }
        var output = uninitialized(pixels * total)
        output.withUnsafeMutableBufferPointer { out in
            guard let target = out.baseAddress else { return }
            var offset = 0
            for input in inputs {
                let width = input.shape[3]
                input.data.withUnsafeBufferPointer { source in
                    guard let from = source.baseAddress else { return }
                    for p in 0..<pixels { (target + p * total + offset).update(from: from + p * width, count: width) }
                }
                offset += width
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
    /// on a channels-last input, kernel `[kh, kw, F]` (Kernels+KernelLayout.swift), then the bias and a
    /// (capped) ReLU in one pass.
    static func depthwiseConvolutionChannelsLast(_ x: RuntimeTensor, kernel: [Float], _ g: ConvGeometry, bias: [Float]?,
                                                 reluCap: Float?) -> RuntimeTensor {
        var output = uninitialized(g.batch * g.oh * g.ow * g.filters)
        x.data.withUnsafeBufferPointer { input in
            kernel.withUnsafeBufferPointer { k in
                output.withUnsafeMutableBufferPointer { out in
                    guard let source = input.baseAddress, let weights = k.baseAddress, let target = out.baseAddress else { return }
                    depthwiseChannelsLast(source, kernel: weights, into: target, g)
                    channelsLastEpilogue(target, rows: g.batch * g.oh * g.ow, channels: g.filters, bias: bias, reluCap: reluCap)
                }
            }
        }
        return RuntimeTensor(shape: [g.batch, g.oh, g.ow, g.filters], data: output)
    }
}
