import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Winograd's F(m×m, 3×3) (Kernels+Winograd.swift, CVectorKernels' winograd.c) against the unfolded
/// GEMM of the channels-first kernels, on the shapes that stress its edges: output sizes that are
/// not multiples of the tile, every padding form, channel and filter counts off the 16-lane and
/// 64-filter panels, several samples, the epilogue, folded scales, both stored kernel orders.
final class WinogradTests: XCTestCase {
    struct Case {
        var batch, channels, height, width, filters: Int
        var padding: Padding
    }

    static let cases = [
        Case(batch: 2, channels: 16, height: 9, width: 9, filters: 40, padding: .same),
        Case(batch: 1, channels: 17, height: 7, width: 10, filters: 70, padding: .valid),
        Case(batch: 3, channels: 40, height: 5, width: 6, filters: 16, padding: .explicit([2, 1, 0, 1])),
        Case(batch: 1, channels: 130, height: 4, width: 3, filters: 129, padding: .same),
        Case(batch: 2, channels: 24, height: 1, width: 1, filters: 5, padding: .same),
        Case(batch: 1, channels: 32, height: 12, width: 11, filters: 64, padding: .explicit([1, 1, 1, 1])),
    ]

    func testMatchesTheUnfoldedProductInEveryOrderAndTile() throws {
        var random = SplitMix64(seed: 21)
        for c in Self.cases {
            let a = ConvAttributes(filters: c.filters, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: c.padding,
                                   layout: .channelsFirst)
            let kernelShape = [c.filters, c.channels, 3, 3]
            XCTAssertTrue(Kernels.runsWinograd(a, kernelShape: kernelShape))
            let x = RuntimeTensor(shape: [c.batch, c.channels, c.height, c.width],
                                  data: (0..<(c.batch * c.channels * c.height * c.width)).map { _ in random.uniform(-2, 2) })
            let oihw = (0..<(9 * c.channels * c.filters)).map { _ in random.uniform(-0.5, 0.5) }
            let bias = (0..<c.filters).map { _ in random.uniform(-1, 1) }
            let scales = (0..<c.filters).map { _ in random.uniform(0.5, 2) }
            // The reference: the channels-first im2col GEMM on the scaled kernel, bias and ReLU after.
            var scaled = oihw
            for f in 0..<c.filters { for i in 0..<(9 * c.channels) { scaled[f * 9 * c.channels + i] *= scales[f] } }
            let expected = try Kernels.convolution(x, kernel: scaled, kernelShape: kernelShape, bias: bias, attributes: a, node: "reference",
                                                   reluCap: .infinity)
            var hwio = [Float](repeating: 0, count: oihw.count)
            oihw.withUnsafeBufferPointer { source in
                hwio.withUnsafeMutableBufferPointer { Kernels.filtersLast(from: source, into: $0, filters: c.filters, channels: c.channels, taps: 9, scales: nil) }
            }
            let g = try Kernels.ConvGeometry(input: x.shape, kernelShape: kernelShape, a, node: "winograd")
            let input = Kernels.relayout(x, toChannelsLast: true)
            for tile in [2, 4] {
                for (order, stored) in [(Kernels.StoredKernel.oihw, oihw), (.hwio, hwio)] {
                    var weights = [Float](repeating: .nan, count: Kernels.winogradWeightCount(tile: tile, channels: c.channels, filters: c.filters))
                    stored.withUnsafeBufferPointer { source in
                        weights.withUnsafeMutableBufferPointer {
                            Kernels.winogradWeights(source, stored: order, tile: tile, channels: c.channels, filters: c.filters, scales: scales, into: $0)
                        }
                    }
                    let y = try Kernels.winogradConvolution(input, weights: WeightValues(weights), tile: tile, g,
                                                            epilogue: ConvolutionEpilogue(bias: bias, activation: .relu(maxValue: nil, negativeSlope: 0, threshold: 0)),
                                                            node: "winograd")
                    let result = Kernels.relayout(y, toChannelsLast: false)
                    XCTAssertEqual(result.shape, expected.shape, "\(c) F(\(tile))")
                    let scale = expected.data.map(abs).max() ?? 0
                    let worst = zip(result.data, expected.data).map { abs($0 - $1) }.max() ?? .infinity
                    // F(2x2) keeps the GEMM's own rounding; F(4x4)'s transforms lose about ten times as much.
                    XCTAssertLessThanOrEqual(worst, (tile == 2 ? 1e-5 : 1e-4) * scale, "\(c) F(\(tile)) \(order): off by \(worst) of \(scale)")
                }
            }
        }
    }

    /// x [2, 16, 10, 10] → conv 3x3 same (24 filters) → ReLU → conv 3x3 stride 2 → conv 3x3 on 3
    /// channels is not part of it: the executor picks Winograd for the first convolution only.
    func testExecutorPicksItWhereItPaysAndAgreesWithTheUnfusedGraph() throws {
        var parameters = ParameterTable()
        var random = SplitMix64(seed: 3)
        let shapes: [(String, [Int])] = [("a/kernel", [24, 16, 3, 3]), ("a/bias", [24]), ("b/kernel", [8, 24, 3, 3]), ("b/bias", [8])]
        for (name, shape) in shapes {
            let values = (0..<shape.reduce(1, *)).map { _ in random.unit() - 0.5 }
            parameters.add(Parameter(name: name, role: ParameterRole(rawValue: name.hasSuffix("kernel") ? "kernel" : "bias"), shape: shape,
                                     dtype: .float32, trainable: true, storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
        }
        func conv(_ filters: Int, stride: Int) -> Op {
            .conv(ConvAttributes(filters: filters, kernelSize: [3, 3], strides: [stride, stride], dilations: [1, 1], padding: .same,
                                 activation: .relu(maxValue: nil, negativeSlope: 0, threshold: 0), layout: .channelsFirst))
        }
        let graph = Graph(name: "winograd", inputs: [ValueInfo(name: "x", shape: Shape([nil, 16, 10, 10]), dtype: .float32)], outputs: ["y"],
                          nodes: [Node(name: "a", op: conv(24, stride: 1), inputs: ["x"], outputs: ["h"], parameters: ["a/kernel", "a/bias"]),
                                  Node(name: "b", op: conv(8, stride: 2), inputs: ["h"], outputs: ["y"], parameters: ["b/kernel", "b/bias"])],
                          parameters: parameters)
        let x = RuntimeTensor(shape: [2, 16, 10, 10], data: (0..<3200).map { _ in random.uniform(-1, 1) })
        let fused = try Executor(graph: graph)
        XCTAssertEqual(fused.convolutionForms["a"], Kernels.winogradTile.map { .winograd(tile: $0) } ?? .matrix(.filtersFirst))
        // 8 filters 216 deep: one panel of filters packed at preparation where the narrow products run.
        XCTAssertEqual(fused.convolutionForms["b"], .matrix(Kernels.narrowProductsRun ? .panels : .filtersFirst), "stride 2")
        let expected = try XCTUnwrap(Executor(graph: graph, fusing: false).run(["x": x])["y"])
        let result = try XCTUnwrap(fused.run(["x": x])["y"])
        let scale = expected.data.map(abs).max() ?? 0
        let worst = zip(result.data, expected.data).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "off by \(worst) of \(scale)")
    }
}
