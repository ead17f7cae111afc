import CVectorKernels
import Foundation

/// A depthwise convolution with the 1x1 convolutions on either side of it, run band by band so
/// that the wide tensors between them never leave the core's cache: MobileNetV2's inverted residual
/// (1x1 expansion to 6C channels, 3x3 depthwise, 1x1 projection back, the block's input added),
/// MobileNet's depthwise-separable pair (depthwise, then 1x1), EfficientNet's expansion and
/// depthwise (its squeeze-and-excitation reads the depthwise output, so the projection runs apart).
///
/// Run layer by layer, the expanded tensor (112x112x96 floats, 4.8 MB an image, in MobileNetV2's
/// second block) is written by the expansion, read and the depthwise output written, then read by
/// the projection: every pass streams from memory, and the depthwise one spends its time waiting
/// on loads (docs/benchmarks.md, issue #18). Here each core takes a sample (or, with fewer samples
/// than cores, a share of a sample's rows) and walks its output rows a band at a time: the
/// expansion computes only the input rows the band's windows read (rows shared with the previous
/// band are kept, not recomputed), the depthwise writes the band, the projection reads it back at
/// once, and only the block's output reaches memory. Each stage is the same kernel and the same
/// arithmetic as the layer-by-layer path (the 1x1 products on filter panels, `scion_gemm_panels`;
/// the depthwise rows, `scion_depthwise_row`; `ConvolutionEpilogue`), so the values agree with
/// that path's up to the order of a product's sums.
extension Kernels {
    /// A 1x1 convolution of a block: its filters packed as panels (`FilterOrder.panels`), what
    /// follows it applied to each band as it is written.
    struct PointwiseStage {
        let panels: WeightValues
        let depth: Int, filters: Int
        let epilogue: ConvolutionEpilogue

        /// `rows` rows of `depth` values (`lda` apart) times the filters into `target` (rows
        /// `filters` apart), the epilogue applied: in registers as the products are stored when
        /// it is a bias and a ReLU, else over the stored rows while they are cached.
        func multiply(_ rows: UnsafePointer<Float>, lda: Int, count: Int, into target: UnsafeMutablePointer<Float>) {
            multiply(rows, lda: lda, count: count, into: target, panels: 0..<((filters + 63) / 64))
        }

        /// The same for the filters of `panels` (64 each) only, into their columns of `target`.
        func multiply(_ rows: UnsafePointer<Float>, lda: Int, count: Int, into target: UnsafeMutablePointer<Float>, panels range: Range<Int>) {
            let first = range.lowerBound * 64, width = min(filters, range.upperBound * 64) - first
            guard width > 0 else { return }
            panels.withUnsafeBufferPointer { panels in
                guard let (relu, cap) = epilogue.inRegisters else {
                    _ = scion_gemm_panels(rows, lda, panels.baseAddress, target, filters, count, filters, depth, range.lowerBound, range.count)
                    epilogue.apply(target + first, rows: count, stride: filters, firstChannel: first, count: width)
                    return
                }
                Kernels.withOptionalPointer(epilogue.bias) { bias in
                    _ = scion_gemm_panels_then(rows, lda, panels.baseAddress, target, filters, count, filters, depth, range.lowerBound,
                                               range.count, bias, relu ? 1 : 0, cap)
                }
            }
        }
    }

    /// The block's stages; `expand` or `project` (or both) present.
    struct DepthwiseBlock {
        let expand: PointwiseStage?
        /// `[kh, kw, C]` (the channels-last depthwise order), one filter per channel.
        let depthwise: WeightValues
        let depthwiseEpilogue: ConvolutionEpilogue
        let project: PointwiseStage?
        /// The block's input added to the projection's output (same shape), then a ReLU capped
        /// at `residualCap` when given (`.infinity`: uncapped).
        let residual: Bool
        let residualCap: Float?
    }

    /// Floats of cache a band's buffers should fit in: a quarter of a core's 1 MB L2 leaves room
    /// for the panels of filters and the input rows the expansion reads.
    static let depthwiseBlockBandFloats = 1 << 16

    /// Runs `block` on the channels-last `x` (`[N, H, W, Cin]`); `g` is the depthwise convolution's
    /// geometry (its logical input `[N, C, H, W]`, C the expanded channels). Returns `[N, OH, OW, Cout]`.
    static func depthwiseBlock(_ x: RuntimeTensor, _ block: DepthwiseBlock, _ g: ConvGeometry) -> RuntimeTensor {
        let (height, width, channels) = (g.height, g.width, g.channels)
        let inputChannels = block.expand?.depth ?? channels, outputChannels = block.project?.filters ?? channels
        var output = uninitialized(g.batch * g.oh * g.ow * outputChannels)
        let rows = TapRanges(outputs: g.oh, stride: g.sh, dilation: g.dh, before: g.top, kernel: g.kh, length: height)
        let cols = TapRanges(outputs: g.ow, stride: g.sw, dilation: g.dw, before: g.left, kernel: g.kw, length: width)
        // Input rows a band of `count` output rows reads at most.
        let span = { (count: Int) in (count - 1) * g.sh + (g.kh - 1) * g.dh + 1 }
        let bandFloats = { (count: Int) in
            (block.expand == nil ? 0 : span(count) * width * channels) + (block.project == nil ? 0 : count * g.ow * channels)
        }
        let band = (1...max(g.oh, 1)).last { $0 == 1 || bandFloats($0) <= depthwiseBlockBandFloats } ?? 1
        // Whole samples to each core when they divide evenly between the cores; otherwise (one
        // sample, three on two cores) each sample's rows are shared out too, so that no core waits
        // (the rows at a share's edge that both read are expanded twice; on small images, where
        // those rows are a large part, the cores share the channels instead:
        // Kernels+DepthwiseBlockChannels.swift).
        let cores = CorePool.cores
        if depthwiseBlockRunsByChannels(block, g, cores: cores) {
            x.data.withUnsafeBufferPointer { input in
                output.withUnsafeMutableBufferPointer { out in
                    guard let source = input.baseAddress, let target = out.baseAddress else { return }
                    depthwiseBlockByChannels(source, block, g, into: target, cores: cores)
                }
            }
            return RuntimeTensor(shape: [g.batch, g.oh, g.ow, outputChannels], data: output)
        }
        let shares = g.batch % cores == 0 ? 1 : max(1, min(cores, g.oh))
        let expandedCapacity = block.expand == nil ? 0 : span(band) * width * channels
        let bandCapacity = block.project == nil ? 0 : band * g.ow * channels
        x.data.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                let addresses = (Int(bitPattern: input.baseAddress), Int(bitPattern: out.baseAddress))
                withColumns(cols) { kxLow, kxHigh in
                    let columns = (Int(bitPattern: kxLow), Int(bitPattern: kxHigh))
                    splitOverCores(g.batch * shares) { units in
                        guard let source = UnsafePointer<Float>(bitPattern: addresses.0),
                              let target = UnsafeMutablePointer<Float>(bitPattern: addresses.1),
                              let kxLow = UnsafePointer<Int>(bitPattern: columns.0),
                              let kxHigh = UnsafePointer<Int>(bitPattern: columns.1) else { return }
                        let expanded = UnsafeMutablePointer<Float>.allocate(capacity: max(expandedCapacity, 1))
                        let banded = UnsafeMutablePointer<Float>.allocate(capacity: max(bandCapacity, 1))
                        defer { expanded.deallocate(); banded.deallocate() }
                        var walk = BandWalk(block: block, g: g, rows: rows, kxLow: kxLow, kxHigh: kxHigh, input: source,
                                            output: target, expanded: expanded, banded: banded,
                                            inputChannels: inputChannels, outputChannels: outputChannels)
                        for unit in units {
                            let (sample, share) = unit.quotientAndRemainder(dividingBy: shares)
                            walk.run(sample: sample, rows: (share * g.oh / shares)..<((share + 1) * g.oh / shares), band: band)
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: [g.batch, g.oh, g.ow, outputChannels], data: output)
    }

    private static func withColumns(_ cols: TapRanges, _ body: (UnsafePointer<Int>, UnsafePointer<Int>) -> Void) {
        cols.low.withUnsafeBufferPointer { low in
            cols.high.withUnsafeBufferPointer { high in
                guard let low = low.baseAddress, let high = high.baseAddress else { return }
                body(low, high)
            }
        }
    }

    /// One core's walk down a sample's output rows, a band at a time.
    private struct BandWalk {
        let block: DepthwiseBlock
        let g: ConvGeometry
        let rows: TapRanges
        let kxLow: UnsafePointer<Int>, kxHigh: UnsafePointer<Int>
        let input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
        /// The expansion's rows `kept` (input rows of the current sample), and the band's depthwise output.
        let expanded: UnsafeMutablePointer<Float>, banded: UnsafeMutablePointer<Float>
        let inputChannels: Int, outputChannels: Int
        var kept = 0..<0

        mutating func run(sample: Int, rows range: Range<Int>, band: Int) {
            kept = 0..<0
            for first in stride(from: range.lowerBound, to: range.upperBound, by: band) {
                let bandRows = first..<min(first + band, range.upperBound)
                // The input rows the band's valid taps read.
                var (low, high) = (Int.max, Int.min)
                for oy in bandRows where rows.high[oy] > rows.low[oy] {
                    let start = oy * g.sh - g.top
                    (low, high) = (min(low, start + rows.low[oy] * g.dh), max(high, start + (rows.high[oy] - 1) * g.dh + 1))
                }
                let (image, firstRow) = source(sample: sample, rows: low < high ? low..<high : 0..<0)
                let depthwiseTarget = block.project == nil ? output + (sample * g.oh + first) * g.ow * g.channels : banded
                depthwise(image: image, firstRow: firstRow, outputRows: bandRows, into: depthwiseTarget)
                if let project = block.project { projection(project, sample: sample, outputRows: bandRows) }
            }
        }

        /// Where the depthwise reads input rows `needed` of `sample`, and the row that address
        /// starts at: the sample's input itself, or the expansion's rows, computing those not kept
        /// from the previous band.
        private mutating func source(sample: Int, rows needed: Range<Int>) -> (UnsafePointer<Float>, Int) {
            let rowFloats = g.width * g.channels
            guard let expand = block.expand else { return (input + sample * g.height * rowFloats, 0) }
            var reused = 0
            if kept.contains(needed.lowerBound) {
                reused = min(kept.upperBound, needed.upperBound) - needed.lowerBound
                if needed.lowerBound > kept.lowerBound {
                    memmove(expanded, expanded + (needed.lowerBound - kept.lowerBound) * rowFloats, reused * rowFloats * 4)
                }
            }
            let fresh = needed.count - reused
            if fresh > 0 {
                let pixels = fresh * g.width
                let from = input + ((sample * g.height + needed.lowerBound + reused) * g.width) * inputChannels
                expand.multiply(from, lda: inputChannels, count: pixels, into: expanded + reused * rowFloats)
            }
            kept = needed
            return (UnsafePointer(expanded), needed.lowerBound)
        }

        /// The depthwise convolution of `outputRows`, from `image` whose first row is input row `firstRow`.
        private func depthwise(image: UnsafePointer<Float>, firstRow: Int, outputRows: Range<Int>, into target: UnsafeMutablePointer<Float>) {
            let channels = g.channels
            block.depthwise.withUnsafeBufferPointer { kernel in
                for oy in outputRows {
                    let row = target + (oy - outputRows.lowerBound) * g.ow * channels
                    Kernels.depthwiseRow(image, firstRow: firstRow, kernel: kernel.baseAddress, into: row, g, oy: oy, rows: rows,
                                         kxLow: kxLow, kxHigh: kxHigh, channels: 0..<channels)
                }
            }
            block.depthwiseEpilogue.apply(target, rows: outputRows.count * g.ow, channels: channels)
        }

        /// The band's depthwise output times the projection's filters, into the block's output
        /// rows, then its epilogue and the residual sum.
        private func projection(_ project: PointwiseStage, sample: Int, outputRows: Range<Int>) {
            let pixels = outputRows.count * g.ow, first = (sample * g.oh + outputRows.lowerBound) * g.ow
            let target = output + first * outputChannels
            project.multiply(banded, lda: g.channels, count: pixels, into: target)
            guard block.residual else { return }
            // Stride 1 and the same size (the plan checked): output pixel p adds input pixel p.
            // The input's rows as a "bias" over one long row: the sum, then the ReLU when asked.
            let count = pixels * outputChannels
            scion_clamp_rows(target, 1, count, count, input + first * inputChannels, block.residualCap == nil ? 0 : 1,
                             block.residualCap ?? .infinity)
        }
    }
}
