import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// The channels-last window kernels (Kernels+ChannelsLastWindows.swift) against the channels-first
/// kernels they stand in for, on the same random inputs transposed: every padding, stride 1 and 2,
/// dilation, odd sizes, channel counts that are not a multiple of the vector width, batch 1 and 3.
/// `SCION_WINDOWS_BENCH=1` also times both on MobileNetV2's, EfficientNetB0's, ResNet's, Inception's
/// and DenseNet's real shapes (run it in release: see `testTimesAgainstChannelsFirstWhenAsked`).
final class ChannelsLastWindowTests: XCTestCase {
    static let paddings: [Padding] = [.valid, .same, .explicit([2, 0, 1, 3])]

    /// Every kernel, padding, stride and dilation together (48 cases), channels and batch cycling.
    func testDepthwiseMatchesChannelsFirst() throws {
        var random = SplitMix64(seed: 11)
        let kernels = [(1, 1), (3, 3), (5, 5), (7, 1)]
        var index = 0
        for (kh, kw) in kernels {
            for padding in Self.paddings {
                for stride in [1, 2] {
                    for dilation in [1, 2] {
                        let channels = [3, 17, 40][index % 3], batch = [1, 3][(index / 3) % 2]
                        try checkDepthwise(batch: batch, channels: channels, height: 13, width: 10, kernel: (kh, kw), stride: stride,
                                           dilation: dilation, padding: padding, multiplier: 1, random: &random)
                        index += 1
                    }
                }
            }
        }
    }

    /// A channel multiplier: output channel c · m + j reads input channel c (Keras's depth_multiplier).
    func testDepthwiseWithChannelMultiplierMatchesChannelsFirst() throws {
        var random = SplitMix64(seed: 12)
        for (index, padding) in Self.paddings.enumerated() {
            try checkDepthwise(batch: 2, channels: [3, 5, 9][index], height: 9, width: 11, kernel: (3, 3), stride: index == 1 ? 2 : 1,
                               dilation: 1, padding: padding, multiplier: [2, 3, 2][index], random: &random)
        }
    }

    /// Large enough to spread over the cores, with a 7x7 map whose rows are split into channel blocks.
    func testDepthwiseOverTheCoresMatchesChannelsFirst() throws {
        var random = SplitMix64(seed: 13)
        try checkDepthwise(batch: 1, channels: 136, height: 7, width: 7, kernel: (5, 5), stride: 1, dilation: 1, padding: .same,
                           multiplier: 1, random: &random)
        try checkDepthwise(batch: 2, channels: 35, height: 24, width: 21, kernel: (3, 3), stride: 2, dilation: 1, padding: .same,
                           multiplier: 1, random: &random)
    }

    /// Max and average, with and without padding counted, ceil mode, and the models' own poolings.
    func testPoolingMatchesChannelsFirst() throws {
        var random = SplitMix64(seed: 21)
        let windows = [([3, 3], [2, 2]), ([3, 3], [1, 1]), ([2, 2], [2, 2]), ([3, 1], [1, 2]), ([1, 1], [2, 2])]
        var index = 0
        for (poolSize, strides) in windows {
            // Explicit pads asymmetric but smaller than the window: channels-first `pool` (like
            // onnxruntime) takes no window wholly inside padding.
            for padding in [Padding.valid, .same, .explicit([poolSize[0] - 1, 0, 0, poolSize[1] - 1])] {
                for kind in [PoolKind.max, .average] {
                    let attributes = PoolAttributes(kind: kind, poolSize: poolSize, strides: strides, padding: padding,
                                                    countIncludePad: index % 4 >= 2, ceilMode: index % 3 == 0, layout: .channelsFirst)
                    try checkPooling(batch: [1, 3][index % 2], channels: [3, 17, 40][index % 3], height: 11, width: 8, attributes,
                                     random: &random)
                    index += 1
                }
            }
        }
        // Big enough to run over the cores.
        try checkPooling(batch: 2, channels: 40, height: 23, width: 23,
                         PoolAttributes(kind: .max, poolSize: [3, 3], strides: [2, 2], padding: .valid, layout: .channelsFirst), random: &random)
    }

    func testDilatedPoolingStaysChannelsFirst() {
        let dilated = PoolAttributes(kind: .max, poolSize: [2, 2], strides: [1, 1], padding: .valid, layout: .channelsFirst, dilations: [2, 2])
        XCTAssertFalse(Kernels.poolRunsChannelsLast(dilated))
        XCTAssertTrue(Kernels.poolRunsChannelsLast(PoolAttributes(kind: .max, poolSize: [2, 2], strides: [1, 1], padding: .valid,
                                                                  layout: .channelsFirst)))
        XCTAssertThrowsError(try Kernels.poolChannelsLast([Float](repeating: 0, count: 16), logical: [1, 1, 4, 4], dilated, node: "pool")) {
            XCTAssertEqual(($0 as? RuntimeError)?.description.contains("does not run channels-last"), true, "\($0)")
        }
    }

    func testGlobalPoolingMatchesChannelsFirst() {
        var random = SplitMix64(seed: 31)
        // The last is big enough to run over the cores, in blocks of channels (two rows only).
        for shape in [[1, 17, 5, 7], [3, 40, 1, 1], [2, 3, 4, 4], [2, 136, 7, 7], [2, 100, 13, 13]] {
            for kind in [PoolKind.max, .average] {
                let x = RuntimeTensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in random.uniform(-1, 1) })
                let expected = Kernels.globalPool(x, GlobalPoolAttributes(kind: kind, rank: 2, layout: .channelsFirst))
                let result = Kernels.globalPoolChannelsLast(Kernels.transpose(x, [0, 2, 3, 1]).data, logical: shape, kind: kind)
                assertClose(result, expected.data, "global \(kind) pooling of \(shape)")
            }
        }
    }

    // MARK: - The cases

    func checkDepthwise(batch: Int, channels: Int, height: Int, width: Int, kernel: (Int, Int), stride: Int, dilation: Int,
                        padding: Padding, multiplier: Int, random: inout SplitMix64) throws {
        let filters = channels * multiplier
        let attributes = ConvAttributes(filters: filters, kernelSize: [kernel.0, kernel.1], strides: [stride, stride],
                                        dilations: [dilation, dilation], padding: padding, groups: channels, useBias: false,
                                        layout: .channelsFirst)
        let kernelShape = [filters, 1, kernel.0, kernel.1]
        let x = RuntimeTensor(shape: [batch, channels, height, width], data: (0..<(batch * channels * height * width)).map { _ in random.uniform(-1, 1) })
        let weights = RuntimeTensor(shape: kernelShape, data: (0..<kernelShape.reduce(1, *)).map { _ in random.uniform(-1, 1) })
        let expected = try Kernels.convolution(x, kernel: weights.data, kernelShape: kernelShape, bias: nil, attributes: attributes, node: "depthwise")
        let g = try Kernels.ConvGeometry(input: x.shape, kernelShape: kernelShape, attributes, node: "depthwise")
        let input = Kernels.transpose(x, [0, 2, 3, 1]).data, tapMajor = Kernels.transpose(weights, [2, 3, 1, 0]).data
        // NaN-filled: a value the kernel forgets to write fails the comparison.
        var result = [Float](repeating: .nan, count: batch * g.oh * g.ow * filters)
        input.withUnsafeBufferPointer { x in
            tapMajor.withUnsafeBufferPointer { k in
                result.withUnsafeMutableBufferPointer { out in
                    Kernels.depthwiseChannelsLast(x.baseAddress!, kernel: k.baseAddress!, into: out.baseAddress!, g)
                }
            }
        }
        assertClose(result, Kernels.transpose(expected, [0, 2, 3, 1]).data,
                    "depthwise \(kernel) stride \(stride) dilation \(dilation) \(padding) on \([batch, channels, height, width]) x\(multiplier)")
    }

    func checkPooling(batch: Int, channels: Int, height: Int, width: Int, _ a: PoolAttributes, random: inout SplitMix64) throws {
        let shape = [batch, channels, height, width]
        let x = RuntimeTensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in random.uniform(-1, 1) })
        let expected = try Kernels.pool(x, a, node: "pool")
        let result = try Kernels.poolChannelsLast(Kernels.transpose(x, [0, 2, 3, 1]).data, logical: shape, a, node: "pool")
        assertClose(result, Kernels.transpose(expected, [0, 2, 3, 1]).data,
                    "\(a.kind) pool \(a.poolSize) strides \(a.strides) \(a.padding) countIncludePad \(a.countIncludePad) ceil \(a.ceilMode) on \(shape)")
    }

    /// Equal (infinities included) or within 1e-6 of the largest expected magnitude: the kernels sum
    /// in the channels-first order, so in practice the bits are the same.
    func assertClose(_ result: [Float], _ expected: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard result.count == expected.count else {
            return XCTFail("\(what): \(result.count) values, expected \(expected.count)", file: file, line: line)
        }
        let scale = expected.lazy.filter { $0.isFinite }.map { abs($0) }.max() ?? 0
        if let bad = result.indices.first(where: { result[$0] != expected[$0] && !(abs(result[$0] - expected[$0]) <= 1e-6 * scale) }) {
            XCTFail("\(what): value \(bad) is \(result[bad]), expected \(expected[bad])", file: file, line: line)
        }
    }
}
