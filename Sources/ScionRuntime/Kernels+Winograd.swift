import CVectorKernels
import Foundation
import ScionIR
import Synchronization

/// 3x3 convolutions with stride 1 through Winograd's minimal filtering (CVectorKernels' winograd.c):
/// F(2x2, 3x3) multiplies 16 values where the direct convolution multiplies 36 for each 2x2 block of
/// outputs, per channel and filter. The filters are transformed once, when the executor prepares
/// its weights (`Executor.KernelForm.winograd`); a call transforms input tiles, runs one narrow
/// product per tile position and transforms the results back, a block of tile rows at a time on
/// each core, the epilogue applied to each block's output rows while they are in that core's cache.
///
/// Measured on this machine's ResNet, Inception and DenseNet shapes (bench/winograd_bench.c): 1.5-2.4x
/// the unfolded GEMM, with the relative error of the GEMM's own rounding (about 1e-6). F(4x4, 3x3)
/// multiplies less still but its transforms scale values by up to 8 and lose about ten times as
/// many bits (about 1e-5 per layer), too close to 1e-4 after a deep network's dozens of layers.
extension Kernels {
    /// The output tile side Scion uses (m of F(m×m, 3×3)); nil where the CPU has neither AVX2 nor
    /// AVX-512 (the narrow products need them) or `SCION_WINOGRAD=off` asks for the unfolded GEMM.
    static let winogradTile: Int? = {
        guard narrowProductsRun else { return nil }
        switch ProcessInfo.processInfo.environment["SCION_WINOGRAD"] {
        case "off": return nil
        case "4": return 4
        default: return 2
        }
    }()

    /// Whether a convolution (kernel OIHW `kernelShape`) runs through Winograd's F(m×m, 3×3): 3x3,
    /// stride 1, no dilation, one group, any padding, and at least 16 input channels. With fewer
    /// the transforms' cost is not paid back (an RGB input's 3 channels: 0.5x the unfolded GEMM;
    /// 8 channels: 1.1x; 16: 1.8x).
    static func runsWinograd(_ a: ConvAttributes, kernelShape: [Int]) -> Bool {
        a.rank == 2 && a.groups == 1 && kernelShape.count == 4 && kernelShape[1] >= 16 && kernelShape[2] == 3 && kernelShape[3] == 3
            && a.strides == [1, 1] && a.dilations == [1, 1]
    }

    /// A 3x3 kernel (stored as `stored`) transformed for `winogradConvolution` into `target`,
    /// filter `f` times `scales[f]` when given (a folded BatchNormalization).
    static func winogradWeights(_ kernel: UnsafeBufferPointer<Float>, stored: StoredKernel, tile: Int, channels: Int, filters: Int,
                                scales: [Float]?, into target: UnsafeMutableBufferPointer<Float>) {
        precondition(kernel.count == 9 * channels * filters && target.count == winogradWeightCount(tile: tile, channels: channels, filters: filters)
                     && (scales?.count ?? filters) == filters, "Winograd weights of \(target.count) values for a 3x3 kernel of \(kernel.count)")
        guard let from = kernel.baseAddress, let to = target.baseAddress else { return }
        let s = stored.strides(taps: 9, channels: channels, filters: filters)
        withOptionalPointer(scales) { scion_winograd_transform_weights(Int32(tile), from, s.tap, s.channel, s.filter, channels, filters, $0, to) }
    }

    static func winogradWeightCount(tile: Int, channels: Int, filters: Int) -> Int {
        scion_winograd_weights_count(Int32(tile), channels, filters)
    }

    /// The convolution `g` (3x3, stride 1, one group) of channels-last `x` with `weights` from
    /// `winogradWeights`, `epilogue` applied.
    static func winogradConvolution(_ x: RuntimeTensor, weights: WeightValues, tile: Int, _ g: ConvGeometry,
                                    epilogue: ConvolutionEpilogue, node: String) throws -> RuntimeTensor {
        var output = uninitialized(g.batch * g.oh * g.ow * g.filters)
        try winograd(x, weights: weights, tile: tile, g, epilogue: epilogue, into: &output, residual: nil, node: node)
        return RuntimeTensor(shape: [g.batch, g.oh, g.ow, g.filters], data: output)
    }

    /// `winogradConvolution` with a residual sum (`ResidualAddition`), written into `sum`'s buffer.
    static func winogradConvolution(_ x: RuntimeTensor, weights: WeightValues, tile: Int, _ g: ConvGeometry,
                                    epilogue: ConvolutionEpilogue, adding residual: ResidualAddition,
                                    into sum: inout RuntimeTensor, node: String) throws {
        precondition(sum.count == g.batch * g.oh * g.ow * g.filters, "a residual of \(sum.shape) for a convolution's \(g.filters) filters")
        try winograd(x, weights: weights, tile: tile, g, epilogue: epilogue, into: &sum.data, residual: residual, node: node)
        sum.shape = [g.batch, g.oh, g.ow, g.filters]
    }

    /// The two above: `output` holds `residual`'s other operand on entry when it is given.
    private static func winograd(_ x: RuntimeTensor, weights: WeightValues, tile: Int, _ g: ConvGeometry, epilogue: ConvolutionEpilogue,
                                 into output: inout [Float], residual: ResidualAddition?, node: String) throws {
        let filters = g.filters
        let failures = Mutex(0)
        x.data.withUnsafeBufferPointer { input in
            weights.withUnsafeBufferPointer { w in
                output.withUnsafeMutableBufferPointer { out in
                    guard let source = input.baseAddress, let transformed = w.baseAddress, let target = out.baseAddress else { return }
                    // The pointers cross into the workers as integers (each writes its own tile rows only).
                    let addresses = (Int(bitPattern: source), Int(bitPattern: transformed), Int(bitPattern: target))
                    let arguments = { @Sendable () -> scion_winograd_arguments in
                        scion_winograd_arguments(
                            input: UnsafePointer(bitPattern: addresses.0), weights: UnsafePointer(bitPattern: addresses.1),
                            output: UnsafeMutablePointer(bitPattern: addresses.2), batch: g.batch, height: g.height, width: g.width,
                            channels: g.channels, filters: filters, top: g.top, left: g.left, output_height: g.oh, output_width: g.ow,
                            tile: Int32(tile))
                    }
                    var shared = arguments()
                    let tileRows = scion_winograd_tile_rows(&shared)
                    // Tile rows per block: transformed tiles and products together about 1 MB, so
                    // they stay in the core's cache from transform to product to transform back.
                    let perRow = scion_winograd_scratch_count(&shared, 1)
                    let blockRows = max(1, min(tileRows, (1 << 18) / max(perRow, 1)))
                    splitOverCores(tileRows) { share in
                        var local = arguments()
                        guard let target = local.output else { return }
                        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: min(blockRows, share.count) * perRow)
                        defer { scratch.deallocate() }
                        // The residual's rows of one block (at most `tile` output rows a tile row),
                        // set aside before the output transform overwrites them.
                        let saved = residual.map { _ in
                            UnsafeMutablePointer<Float>.allocate(capacity: min(blockRows, share.count) * tile * g.ow * filters)
                        }
                        defer { saved?.deallocate() }
                        for first in stride(from: share.lowerBound, to: share.upperBound, by: blockRows) {
                            let count = min(blockRows, share.upperBound - first)
                            // The block's output rows, consecutive in [N·OH] order.
                            let (rows, firstRow) = outputRows(ofTileRows: first..<(first + count), tile: tile, g)
                            let out = target + firstRow * g.ow * filters
                            saved?.update(from: out, count: rows * g.ow * filters)
                            guard scion_winograd_rows(&local, first, count, scratch) == 0 else {
                                failures.withLock { $0 += 1 }
                                return
                            }
                            epilogue.apply(out, rows: rows * g.ow, channels: filters)
                            if let residual, let saved { residual.apply(out, adding: saved, count: rows * g.ow * filters) }
                        }
                    }
                }
            }
        }
        guard failures.withLock({ $0 }) == 0 else { throw RuntimeError(node, "Winograd convolution refused by CVectorKernels (internal: it needs AVX2)") }
    }

    /// The output rows (how many, and the first in `[N·OH]` order) that tile rows `range` (over
    /// `[N, ⌈OH/m⌉]`) cover.
    static func outputRows(ofTileRows range: Range<Int>, tile: Int, _ g: ConvGeometry) -> (count: Int, first: Int) {
        let down = (g.oh + tile - 1) / tile
        func row(_ tileRow: Int) -> Int {
            let (n, ty) = tileRow.quotientAndRemainder(dividingBy: down)
            return n * g.oh + min(ty * tile, g.oh)
        }
        let first = row(range.lowerBound)
        // The end: the last tile row's sample's rows up to its clipped bottom.
        let last = range.upperBound - 1
        let (n, ty) = last.quotientAndRemainder(dividingBy: down)
        return (n * g.oh + min((ty + 1) * tile, g.oh) - first, first)
    }
}
