import CVectorKernels
import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Filter matrices packed once into panels of 64 filters (`Kernels.FilterOrder.panels`,
/// `scion_pack_panels`, `scion_gemm_panels`) against OpenBLAS's product of the same filters read
/// from the OIHW kernel: filter counts that end a panel and a vector early, rows few enough for the
/// single-block path and many enough for the per-core blocks and several cached chunks of rows
/// within each, unfolded windows and 1x1, both
/// stored orders, folded scales.
final class PanelProductTests: XCTestCase {
    func testPanelsMatchOpenBLASOnTheSameFilters() throws {
        guard Kernels.narrowProductsRun else { throw XCTSkip("no AVX2 here: every product is OpenBLAS's") }
        var random = SplitMix64(seed: 77)
        // batch, channels, size, filters, kernel side
        for (batch, channels, size, filters, side) in [(1, 130, 3, 65, 1), (2, 128, 9, 200, 1), (1, 20, 6, 100, 3), (3, 16, 11, 129, 3), (2, 600, 20, 70, 1)] {
            let a = ConvAttributes(filters: filters, kernelSize: [side, side], strides: [1, 1], dilations: [1, 1], padding: .same,
                                   layout: .channelsFirst)
            let kernelShape = [filters, channels, side, side], taps = side * side, depth = taps * channels
            XCTAssertTrue(Kernels.runsOnPanels(filters: filters, depth: depth))
            let x = RuntimeTensor(shape: [batch, channels, size, size], data: (0..<(batch * channels * size * size)).map { _ in random.uniform(-1, 1) })
            let oihw = (0..<(filters * depth)).map { _ in random.uniform(-0.5, 0.5) }
            let scales = (0..<filters).map { _ in random.uniform(0.5, 2) }
            let g = try Kernels.ConvGeometry(input: x.shape, kernelShape: kernelShape, a, node: "panels")
            let input = Kernels.relayout(x, toChannelsLast: true)
            // OpenBLAS on the scaled filters in the `filtersFirst` order.
            var filtersFirst = [Float](repeating: 0, count: oihw.count)
            oihw.withUnsafeBufferPointer { source in
                filtersFirst.withUnsafeMutableBufferPointer {
                    Kernels.filtersFirst(from: source, into: $0, filters: filters, channels: channels, taps: taps, scales: scales)
                }
            }
            let identity = ConvolutionEpilogue(bias: nil, activation: .linear)
            let expected = Kernels.convolutionChannelsLast(input, kernel: WeightValues(filtersFirst), order: .filtersFirst, g, epilogue: identity)
            var hwio = [Float](repeating: 0, count: oihw.count)
            oihw.withUnsafeBufferPointer { source in
                hwio.withUnsafeMutableBufferPointer { Kernels.filtersLast(from: source, into: $0, filters: filters, channels: channels, taps: taps, scales: nil) }
            }
            var packedFromEach: [[Float]] = []
            for (stored, values) in [(Kernels.StoredKernel.oihw, oihw), (.hwio, hwio)] {
                var packed = [Float](repeating: .nan, count: Kernels.panelCount(filters: filters, depth: depth))
                values.withUnsafeBufferPointer { source in
                    packed.withUnsafeMutableBufferPointer {
                        Kernels.panels(source, stored: stored, taps: taps, channels: channels, filters: filters, scales: scales, into: $0)
                    }
                }
                XCTAssertTrue(packed.allSatisfy(\.isFinite), "every panel value written, padding included")
                packedFromEach.append(packed)
                let result = Kernels.convolutionChannelsLast(input, kernel: WeightValues(packed), order: .panels, g, epilogue: identity)
                XCTAssertEqual(result.shape, expected.shape)
                let scale = expected.data.map(abs).max() ?? 0
                let worst = zip(result.data, expected.data).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(batch)x\(channels)x\(size) → \(filters) (\(side)x\(side)) from \(stored): off by \(worst)")
            }
            XCTAssertEqual(packedFromEach[0], packedFromEach[1], "both stored orders pack to the same panels")
        }
        XCTAssertFalse(Kernels.runsOnPanels(filters: 64, depth: 4096), "at most 64 filters: the narrow product")
        XCTAssertFalse(Kernels.runsOnPanels(filters: 256, depth: 64), "shallow: OpenBLAS")
    }

    /// `scion_gemm_panels_then` applies the bias and the capped ReLU in registers: the same bits as
    /// the product stored, then `scion_clamp_rows` over it; NaN stays NaN, -0 becomes +0, a filter
    /// count that ends inside a vector keeps the columns past it untouched.
    func testEpilogueInRegistersIsTheSeparatePassBitForBit() throws {
        guard Kernels.narrowProductsRun else { throw XCTSkip("no AVX2 here: every product is OpenBLAS's") }
        var random = SplitMix64(seed: 5)
        for (rows, depth, filters) in [(37, 24, 144), (9, 16, 70), (64, 96, 24), (5, 3, 1)] {
            var a = (0..<(rows * depth)).map { _ in random.uniform(-1, 1) }
            a[0] = .nan  // row 0: every product NaN
            let kernel = (0..<(filters * depth)).map { _ in random.uniform(-0.5, 0.5) }
            let bias = (0..<filters).map { _ in random.uniform(-0.3, 0.3) }
            var packed = [Float](repeating: 0, count: Kernels.panelCount(filters: filters, depth: depth))
            kernel.withUnsafeBufferPointer { k in
                packed.withUnsafeMutableBufferPointer { scion_pack_panels(k.baseAddress, 1, depth, filters, 0, 1, depth, nil, $0.baseAddress) }
            }
            let panels = (filters + 63) / 64, ldc = filters + 3
            for (relu, cap) in [(0, Float(0)), (1, Float(6)), (1, Float.infinity)] {
                for withBias in [false, true] {
                    var expected = [Float](repeating: 7, count: rows * ldc), fused = expected
                    XCTAssertEqual(scion_gemm_panels(a, depth, packed, &expected, ldc, rows, filters, depth, 0, panels), 0)
                    scion_clamp_rows(&expected, rows, filters, ldc, withBias ? bias : nil, Int32(relu), cap)
                    XCTAssertEqual(scion_gemm_panels_then(a, depth, packed, &fused, ldc, rows, filters, depth, 0, panels,
                                                          withBias ? bias : nil, Int32(relu), cap), 0)
                    let same = zip(fused, expected).allSatisfy { $0.bitPattern == $1.bitPattern }
                    XCTAssertTrue(same, "\(rows)x\(depth)x\(filters) relu \(relu) cap \(cap) bias \(withBias)")
                    XCTAssertTrue(fused[0].isNaN && fused[filters] == 7, "NaN kept; the padding past the filters untouched")
                }
            }
        }
    }
}
