import CVectorKernels
import Foundation

/// A depthwise block on a small image with fewer samples than cores: the cores share the channels.
///
/// The band walk (Kernels+DepthwiseBlock.swift) gives each core a share of a sample's rows when the
/// samples do not divide between the cores, and each share expands the input rows its windows
/// read, so the rows at the edge between two shares are expanded by both. On EfficientNetB0's 7x7
/// and 14x14 blocks with 5x5 windows that is 40-60% more expansion than the block needs, and 7
/// output rows split 4 and 3: those blocks ran 1.2x faster on two cores than on one. Here each
/// core takes whole panels of the expansion's filters (64 channels each) over every pixel, and the
/// depthwise convolution of the same channels: a depthwise filter reads its own channel only, so
/// nothing crosses between the cores and nothing is computed twice: EfficientNetB0 at batch 1,
/// 8.9 → 8.3 ms. Blocks with a projection keep the band walk: the projection sums over all the
/// channels, so it waited for both cores and read the other core's half (MobileNetV2 at batch 1:
/// 6% slower so), and sharing the stages out by pixels instead (each stage reading what the other
/// core had written) was slower still. Each stage is the band walk's own kernel and arithmetic:
/// the values are the same bits.
extension Kernels {
    /// Floats of one sample's expanded image up to which a block with fewer samples than cores
    /// shares its channels between the cores (1 MB, a core's L2): above it, the band walk's edge
    /// rows are a few in a hundred.
    static let depthwiseBlockChannelSplitFloats = 1 << 18

    /// Whether `block` runs so on `cores` cores: EfficientNet's expansion and depthwise, no projection.
    static func depthwiseBlockRunsByChannels(_ block: DepthwiseBlock, _ g: ConvGeometry, cores: Int) -> Bool {
        cores > 1 && g.batch % cores != 0 && g.height * g.width * g.channels <= depthwiseBlockChannelSplitFloats
            && g.channels >= 32 && block.project == nil
    }

    /// `block` (an expansion and a depthwise convolution) on the channels-last `x`, a sample at a
    /// time; `output` is `[N, OH, OW, C]`, every value written here.
    static func depthwiseBlockByChannels(_ x: UnsafePointer<Float>, _ block: DepthwiseBlock, _ g: ConvGeometry,
                                         into output: UnsafeMutablePointer<Float>, cores: Int) {
        precondition(block.project == nil, "a depthwise block with a projection shares its rows, not its channels")
        let channels = g.channels, inputChannels = block.expand?.depth ?? channels
        let (inputPixels, outputPixels) = (g.height * g.width, g.oh * g.ow)
        // Parts of whole panels where there is an expansion, of whole 16-lane vectors otherwise.
        let unit = block.expand == nil ? 16 : 64, units = (channels + unit - 1) / unit
        let parts = min(cores, units)
        let expanded = UnsafeMutablePointer<Float>.allocate(capacity: block.expand == nil ? 1 : inputPixels * channels)
        defer { expanded.deallocate() }
        let rows = TapRanges(outputs: g.oh, stride: g.sh, dilation: g.dh, before: g.top, kernel: g.kh, length: g.height)
        let cols = TapRanges(outputs: g.ow, stride: g.sw, dilation: g.dw, before: g.left, kernel: g.kw, length: g.width)
        block.depthwise.withUnsafeBufferPointer { kernel in
            cols.low.withUnsafeBufferPointer { kxLow in
                cols.high.withUnsafeBufferPointer { kxHigh in
                    let pointers = (kernel: Int(bitPattern: kernel.baseAddress), low: Int(bitPattern: kxLow.baseAddress),
                                    high: Int(bitPattern: kxHigh.baseAddress), expanded: Int(bitPattern: expanded))
                    for sample in 0..<g.batch {
                        let image = Int(bitPattern: x + sample * inputPixels * inputChannels)
                        let sampleOutput = Int(bitPattern: output + sample * outputPixels * channels)
                        splitOverCores(parts) { range in
                            for part in range {
                                let first = units * part / parts * unit, last = min(channels, units * (part + 1) / parts * unit)
                                guard first < last, var depthwiseInput = UnsafePointer<Float>(bitPattern: image),
                                      let target = UnsafeMutablePointer<Float>(bitPattern: sampleOutput) else { continue }
                                if let expand = block.expand, let buffer = UnsafeMutablePointer<Float>(bitPattern: pointers.expanded) {
                                    expand.multiply(depthwiseInput, lda: inputChannels, count: inputPixels, into: buffer,
                                                    panels: (first / 64)..<((last + 63) / 64))
                                    depthwiseInput = UnsafePointer(buffer)
                                }
                                for oy in 0..<g.oh {
                                    let row = target + oy * g.ow * channels
                                    depthwiseRow(depthwiseInput, kernel: UnsafePointer(bitPattern: pointers.kernel), into: row, g,
                                                 oy: oy, rows: rows, kxLow: UnsafePointer(bitPattern: pointers.low),
                                                 kxHigh: UnsafePointer(bitPattern: pointers.high), channels: first..<last)
                                    block.depthwiseEpilogue.apply(row + first, rows: g.ow, stride: channels, firstChannel: first,
                                                                  count: last - first)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
