import CVectorKernels

/// Convolutions over few channels (an RGB stem's 3x3 or 7x7 window over 3 channels) multiplied by
/// their filters where the windows lie in the channels-last input, without unfolding them first.
/// Such a window is a few short runs (`kw·C` values, 9 or 21 for an RGB stem), and writing them
/// out took as long as a good part of the product: EfficientNet's stem spent 16% of its time
/// unfolding beside 23% multiplying, ResNet50's about a third. In a window that lies inside the
/// image, the runs of output pixels next to each other in a row are `sw·C` values apart, and the
/// window's rows `W·C·dh` apart: `scion_gemm_narrow_windows` reads them in place. Windows over
/// the padding (a border pixel or row) are unfolded as before. The runs are read in the order
/// they are unfolded, so the products are the same bits either way.
extension Kernels {
    /// Whether `convolveWindows` takes a convolution (with one group): a window larger than 1x1 whose
    /// rows are short adjacent runs (`kw·C` at most 32 values, dilation 1 across), at most 64 filters.
    static func readsWindowsInPlace(_ g: ConvGeometry) -> Bool {
        narrowProductsRun && !(g.kh == 1 && g.kw == 1) && g.dw == 1 && g.kw * g.channels <= 32 && (1...64).contains(g.filters)
    }

    /// The convolution of `source` (`g.batch` samples `[H, W, C]`) by `packed` (`[kh·kw·C][F rounded
    /// up to 16]`, one panel), into `target` (`[N, OH, OW, F]`), over the cores, `epilogue` (and a
    /// `residual` sum: `target` holds its other operand on entry) applied to each block of output
    /// rows while it is in the core's cache.
    static func convolveWindows(_ source: UnsafePointer<Float>, packed: UnsafePointer<Float>, _ g: ConvGeometry,
                                epilogue: ConvolutionEpilogue, into target: UnsafeMutablePointer<Float>,
                                residual: ResidualAddition?) {
        let (pixels, filters, patch) = (g.batch * g.oh * g.ow, g.filters, g.kh * g.kw * g.channels)
        let blockRows = max(128, (1 << 18) / filters)
        let addresses = (Int(bitPattern: source), Int(bitPattern: packed), Int(bitPattern: target))
        splitOverCores(pixels) { share in
            guard let source = UnsafePointer<Float>(bitPattern: addresses.0), let packed = UnsafePointer<Float>(bitPattern: addresses.1),
                  let target = UnsafeMutablePointer<Float>(bitPattern: addresses.2) else { return }
            // Border windows of one output row at most, unfolded.
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: g.ow * patch)
            defer { scratch.deallocate() }
            let saved = residual.map { _ in UnsafeMutablePointer<Float>.allocate(capacity: min(blockRows, share.count) * filters) }
            defer { saved?.deallocate() }
            for first in stride(from: share.lowerBound, to: share.upperBound, by: blockRows) {
                let count = min(blockRows, share.upperBound - first)
                let out = target + first * filters
                saved?.update(from: out, count: count * filters)
                multiplyWindows(source, packed: packed, g, pixels: first..<(first + count), into: target, scratch: scratch)
                epilogue.apply(out, rows: count, channels: filters)
                if let residual, let saved { residual.apply(out, adding: saved, count: count * filters) }
            }
        }
    }

    /// The products of output pixels `pixels` (row-major over `[N, OH, OW]`), an output row's run at
    /// a time: its windows inside the image read in place, the others unfolded into `scratch`.
    private static func multiplyWindows(_ source: UnsafePointer<Float>, packed: UnsafePointer<Float>, _ g: ConvGeometry,
                                        pixels: Range<Int>, into target: UnsafeMutablePointer<Float>,
                                        scratch: UnsafeMutablePointer<Float>) {
        let (channels, filters, patch) = (g.channels, g.filters, g.kh * g.kw * g.channels)
        // The output columns whose windows lie inside the image's width: `ox·sw − left ≥ 0` and
        // `ox·sw − left + kw − 1 < W`.
        let inside = (low: (g.left + g.sw - 1) / g.sw,
                      high: g.width - g.kw + g.left >= 0 ? min(g.ow, (g.width - g.kw + g.left) / g.sw + 1) : 0)
        func unfolded(_ first: Int, _ count: Int) {
            guard count > 0 else { return }
            unfoldChannelsLast(source, g, firstPixel: first, pixelCount: count, into: scratch)
            scion_gemm_narrow(scratch, patch, packed, target + first * filters, filters, count, filters, patch)
        }
        var pixel = pixels.lowerBound
        while pixel < pixels.upperBound {
            let (image, within) = pixel.quotientAndRemainder(dividingBy: g.oh * g.ow)
            let (oy, ox) = within.quotientAndRemainder(dividingBy: g.ow)
            let end = min(pixels.upperBound, pixel - ox + g.ow)  // the end of this output row's run
            let (firstColumn, lastColumn) = (ox, ox + end - pixel)
            let y = oy * g.sh - g.top
            let low = max(firstColumn, inside.low), high = min(lastColumn, inside.high)
            if y >= 0, y + (g.kh - 1) * g.dh < g.height, low < high {
                unfolded(pixel, low - firstColumn)
                let window = source + ((image * g.height + y) * g.width + low * g.sw - g.left) * channels
                scion_gemm_narrow_windows(window, g.sw * channels, g.kh, g.kw * channels, g.dh * g.width * channels, packed,
                                          target + (pixel + low - firstColumn) * filters, filters, high - low, filters)
                unfolded(pixel + high - firstColumn, lastColumn - high)
            } else {
                unfolded(pixel, end - pixel)
            }
            pixel = end
        }
    }
}
