import CVectorKernels
import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// The inference executor's fusions (Executor+Fusion.swift, `ConvolutionEpilogue`, CVectorKernels):
/// each removes a pass over the values, none may change one. Every case compares the fused
/// executor with the trainer's unfused one (`fusing: false`: every node as the graph has it) and
/// with the channels-first plan, and checks which nodes the fused graph still has.
final class InferenceFusionTests: XCTestCase {
    /// x [N, 3, 12, 12] → pad → conv 3x3 (4 filters, bias) → activation, channels-first as an ONNX
    /// file has it; the activation `Sigmoid → Mul(conv, sigmoid)` when `swish`.
    func model(pad: Op, padding: Padding = .valid, swish: Bool, sigmoidIsOutput: Bool = false) -> Graph {
        var parameters = ParameterTable()
        var random = SplitMix64(seed: 5)
        for (name, role, shape) in [("conv/kernel", "kernel", [4, 3, 3, 3]), ("conv/bias", "bias", [4])] {
            let values = (0..<shape.reduce(1, *)).map { _ in random.unit() - 0.5 }
            parameters.add(Parameter(name: name, role: ParameterRole(rawValue: role), shape: shape, dtype: .float32, trainable: true,
                                     storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
        }
        let conv = Op.conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: padding,
                                          layout: .channelsFirst))
        var nodes = [
            Node(name: "pad", op: pad, inputs: ["x"], outputs: ["padded"]),
            Node(name: "conv", op: conv, inputs: ["padded"], outputs: ["conv"], parameters: ["conv/kernel", "conv/bias"]),
        ]
        if swish {
            nodes += [Node(name: "sigmoid", op: .activation(.sigmoid), inputs: ["conv"], outputs: ["gate"]),
                      Node(name: "mul", op: .elementwise(.multiply), inputs: ["gate", "conv"], outputs: ["y"])]
        } else {
            nodes.append(Node(name: "relu", op: .activation(.relu(maxValue: 6, negativeSlope: 0, threshold: 0)), inputs: ["conv"], outputs: ["y"]))
        }
        return Graph(name: "fusion", inputs: [ValueInfo(name: "x", shape: Shape([nil, 3, 12, 12]), dtype: .float32)],
                     outputs: sigmoidIsOutput ? ["y", "gate"] : ["y"], nodes: nodes, parameters: parameters)
    }

    static let onnxPad = Op.onnx(.pad(PadAttributes(pads: [0, 0, 1, 2, 0, 0, 2, 1], mode: .constant)))
    static let kerasPad = Op.zeroPadding(SpatialPaddingAttributes(padding: [[1, 2], [2, 1]], layout: .channelsFirst))

    /// The fused executor (both layouts) against the unfused one; returns the fused graph's node names.
    func checkSameOutputs(_ graph: Graph, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        var random = SplitMix64(seed: 9)
        let x = RuntimeTensor(shape: [2, 3, 12, 12], data: (0..<864).map { _ in random.uniform(-3, 3) })
        let expected = try Executor(graph: graph, fusing: false).run(["x": x])
        let fused = try Executor(graph: graph)
        for executor in [fused, try Executor(graph: graph, channelsLastPlan: false)] {
            let outputs = try executor.run(["x": x])
            for (name, value) in expected {
                let result = try XCTUnwrap(outputs[name], file: file, line: line)
                XCTAssertEqual(result.shape, value.shape, name, file: file, line: line)
                let scale = value.data.map { abs($0) }.max() ?? 0
                let worst = zip(result.data, value.data).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-6 * max(scale, 1), "\(name): fused differs by \(worst)", file: file, line: line)
            }
        }
        return fused.graph.nodes.map(\.name)
    }

    func testZeroPaddingFoldsIntoTheConvolution() throws {
        for pad in [Self.onnxPad, Self.kerasPad] {
            XCTAssertEqual(try checkSameOutputs(model(pad: pad, swish: false)), ["conv", "relu"], "\(pad)")
            // The conv's own explicit pads add to the Pad's.
            XCTAssertEqual(try checkSameOutputs(model(pad: pad, padding: .explicit([1, 0, 0, 1]), swish: false)), ["conv", "relu"])
        }
    }

    func testPaddingThatIsNotZerosStaysItsOwnNode() throws {
        let ones = Op.onnx(.pad(PadAttributes(pads: [0, 0, 1, 1, 0, 0, 1, 1], mode: .constant, value: 1)))
        let reflect = Op.onnx(.pad(PadAttributes(pads: [0, 0, 1, 1, 0, 0, 1, 1], mode: .reflect)))
        let channels = Op.onnx(.pad(PadAttributes(pads: [0, 1, 1, 1, 0, 0, 1, 1], mode: .constant)))
        for pad in [ones, reflect] {
            XCTAssertEqual(try checkSameOutputs(model(pad: pad, swish: false)), ["pad", "conv", "relu"], "\(pad)")
        }
        // A pad over the channels would change the convolution's input channels: not a spatial pad.
        XCTAssertNil(Executor.spatialZeroPads(channels, rank: 2))
        // `same` depends on the padded size: left alone.
        XCTAssertEqual(try checkSameOutputs(model(pad: Self.onnxPad, padding: .same, swish: false)), ["pad", "conv", "relu"])
    }

    func testSigmoidTimesItsInputIsOneSwish() throws {
        XCTAssertEqual(try checkSameOutputs(model(pad: Self.onnxPad, swish: true)), ["conv", "mul"])
        // The gate read by someone else (here: a graph output) must stay computed.
        XCTAssertEqual(try checkSameOutputs(model(pad: Self.onnxPad, swish: true, sigmoidIsOutput: true)), ["conv", "sigmoid", "mul"])
    }

    /// The convolution's block path (each core multiplies, then applies the epilogue to its rows)
    /// against the channels-first kernel followed by the activation, for every epilogue function
    /// and for 1x1 and 3x3 kernels on enough pixels to use several blocks.
    func testBlockedConvolutionEpilogueMatchesSeparatePasses() throws {
        var random = SplitMix64(seed: 31)
        // Sigmoid runs the same C loop as swish (tested below); tanh is left for a pass after.
        let activations: [Activation] = [.linear, .relu(maxValue: 6, negativeSlope: 0, threshold: 0), .swish, .tanh]
        for (size, padding) in [(1, Padding.valid), (3, .same)] {
            for activation in activations {
                let (batch, channels, filters, height, width) = (3, 5, 2100, 11, 9)
                let a = ConvAttributes(filters: filters, kernelSize: [size, size], strides: [1, 1], dilations: [1, 1], padding: padding,
                                       layout: .channelsFirst)
                let kernelShape = [filters, channels, size, size]
                let x = RuntimeTensor(shape: [batch, channels, height, width],
                                      data: (0..<(batch * channels * height * width)).map { _ in random.uniform(-2, 2) })
                let kernel = (0..<kernelShape.reduce(1, *)).map { _ in random.uniform(-1, 1) }
                let bias = (0..<filters).map { _ in random.uniform(-1, 1) }
                let expected = try Kernels.activate(try Kernels.convolution(x, kernel: kernel, kernelShape: kernelShape, bias: bias,
                                                                            attributes: a, node: "conv"), activation, node: "conv")
                let g = try Kernels.ConvGeometry(input: x.shape, kernelShape: kernelShape, a, node: "conv")
                let epilogue = ConvolutionEpilogue(bias: bias, activation: activation)
                var filtersFirst = [Float](repeating: .nan, count: kernel.count)
                kernel.withUnsafeBufferPointer { oihw in
                    filtersFirst.withUnsafeMutableBufferPointer { target in
                        Kernels.filtersFirst(from: oihw, into: target, filters: filters, channels: channels, taps: size * size, scales: nil)
                    }
                }
                let y = Kernels.convolutionChannelsLast(Kernels.relayout(x, toChannelsLast: true), kernel: WeightValues(filtersFirst), order: .filtersFirst,
                                                        g, epilogue: epilogue)
                let result = try Kernels.activate(Kernels.relayout(y, toChannelsLast: false), epilogue.remaining, node: "conv")
                let scale = expected.data.map { abs($0) }.max() ?? 1
                let worst = zip(result.data, expected.data).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(size)x\(size) \(activation): off by \(worst)")
            }
        }
    }

    /// CVectorKernels' swish and sigmoid give the Swift loop's bits (`Kernels.exponential`), with
    /// and without a bias, over rows with a stride, at the clamping limits too.
    func testVectorActivationGivesTheSwiftLoopsBits() {
        var random = SplitMix64(seed: 41)
        let (rows, count, stride) = (7, 37, 40)
        var values = (0..<(rows * stride)).map { _ in random.uniform(-12, 12) }
        values[0] = -100; values[1] = 100; values[2] = 0; values[3] = 88.5; values[4] = -87.5; values[5] = 1e-30
        let bias = (0..<count).map { _ in random.uniform(-1, 1) }
        for (activation, function) in [(SCION_ACTIVATION_SWISH, { (v: Float) in v / (1 + Kernels.exponential(-v)) }),
                                       (SCION_ACTIVATION_SIGMOID, { (v: Float) in 1 / (1 + Kernels.exponential(-v)) })] {
            for withBias in [false, true] {
                var result = values
                result.withUnsafeMutableBufferPointer { buffer in
                    bias.withUnsafeBufferPointer { b in
                        scion_activate_rows(buffer.baseAddress, rows, count, stride, withBias ? b.baseAddress : nil, activation)
                    }
                }
                for row in 0..<rows {
                    for i in 0..<stride {
                        let index = row * stride + i
                        let expected = i < count ? function(values[index] + (withBias ? bias[i] : 0)) : values[index]
                        XCTAssertEqual(result[index].bitPattern, expected.bitPattern,
                                       "\(activation) bias \(withBias) at \(index): \(result[index]) against \(expected)")
                    }
                }
            }
        }
        XCTAssertTrue(["avx512", "avx2", "sse2"].contains(String(cString: scion_vector_level())))
    }

    /// The broadcasts split over the cores give the one-thread loop's values, for each pattern and
    /// with the small operand on either side.
    func testBroadcastOverTheCoresMatchesOneThread() throws {
        var random = SplitMix64(seed: 51)
        let full = [3, 40, 37, 31]
        let x = RuntimeTensor(shape: full, data: (0..<full.reduce(1, *)).map { _ in random.uniform(-2, 2) })
        for smallShape in [[3, 1, 1, 31], [3, 40, 1, 1], [31], [1], [37, 31]] {
            let small = RuntimeTensor(shape: smallShape, data: (0..<smallShape.reduce(1, *)).map { _ in random.uniform(-2, 2) })
            for (a, b) in [(x, small), (small, x)] {
                let split = try XCTUnwrap(Kernels.blockBroadcastOverCores(a, b, shape: full, Kernels.Subtract.self), "\(smallShape)")
                let single = try XCTUnwrap(Kernels.blockBroadcast(a, b, shape: full) { $0 - $1 })
                XCTAssertEqual(split.data, single.data, "\(a.shape) - \(b.shape)")
            }
        }
        XCTAssertNil(Kernels.blockBroadcastOverCores(RuntimeTensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]), RuntimeTensor(shape: [3], data: [1, 2, 3]),
                                                     shape: [2, 3], Kernels.Add.self), "small operands stay on one thread")
    }

    /// A per-channel constant on an RGB image (3 values repeating: a model's own normalization) runs
    /// in tiled runs of 192, over the cores, with the one-thread loop's values; division too.
    func testShortRepeatsRunTiledWithTheSameValues() throws {
        var random = SplitMix64(seed: 53)
        let full = [1, 224, 224, 3]
        let x = RuntimeTensor(shape: full, data: (0..<full.reduce(1, *)).map { _ in random.uniform(0, 255) })
        let mean = RuntimeTensor(shape: [3], data: [123.68, 116.78, 103.94]), deviation = RuntimeTensor(shape: [3], data: [58.4, 57.1, 57.4])
        let centred = try XCTUnwrap(Kernels.blockBroadcastOverCores(x, mean, shape: full, Kernels.Subtract.self))
        XCTAssertEqual(centred.data, try XCTUnwrap(Kernels.blockBroadcast(x, mean, shape: full) { $0 - $1 }).data)
        let scaled = try XCTUnwrap(Kernels.fastElementwise(.divide, centred, deviation))
        XCTAssertEqual(scaled.data, try XCTUnwrap(Kernels.blockBroadcast(centred, deviation, shape: full) { $0 / $1 }).data)
        XCTAssertEqual(scaled.data[4], (x.data[4] - 116.78) / 57.1)
        let inverted = try XCTUnwrap(Kernels.fastElementwise(.divide, deviation, centred))
        XCTAssertEqual(inverted.data[5], 57.4 / centred.data[5])
    }

    /// The executor's cores are those the process may run on (`taskset`, a cpuset) and within the
    /// CPU quota, never more: a worker per CPU the process cannot use only took turns with the caller.
    func testCoresAreThoseTheProcessMayRunOn() {
        let allowed = Int(scion_allowed_cpus())
        #if os(Linux)
        XCTAssertGreaterThan(allowed, 0)
        #endif
        if allowed > 0 { XCTAssertLessThanOrEqual(CorePool.cores, allowed) }
        XCTAssertLessThanOrEqual(CorePool.cores, max(ProcessInfo.processInfo.activeProcessorCount, 1))
        XCTAssertGreaterThanOrEqual(CorePool.cores, 1)
    }

    /// The input check's vectorised scan finds the first NaN or infinity wherever it lies (in the
    /// 16-lane body or the tail), and nothing in finite values however large.
    func testFirstNonFiniteValueIsFoundWhereverItLies() {
        var values = (0..<53).map { Float($0) * 6e36 - 1e38 }
        XCTAssertNil(Kernels.firstNonFinite(values))
        XCTAssertNil(Kernels.firstNonFinite([]))
        for (index, bad) in [(0, Float.nan), (17, .infinity), (47, -.infinity), (52, .nan), (31, .signalingNaN)] {
            let kept = values[index]
            values[index] = bad
            XCTAssertEqual(Kernels.firstNonFinite(values), index, "\(bad) at \(index)")
            values[index] = kept
        }
        values[40] = .nan
        values[20] = .infinity
        XCTAssertEqual(Kernels.firstNonFinite(values), 20)
    }

    /// The narrow product (at most 64 columns, CVectorKernels) against OpenBLAS, every column count
    /// that ends a vector early or fills it, rows that end a block early; refused past 64 columns.
    func testNarrowProductMatchesBLAS() throws {
        var random = SplitMix64(seed: 61)
        guard String(cString: scion_vector_level()) != "sse2" else { throw XCTSkip("no AVX2 here: the product is OpenBLAS's") }
        for (rows, columns, depth) in [(19, 5, 7), (8, 16, 33), (13, 17, 1), (30, 33, 64), (9, 48, 20), (21, 64, 150)] {
            let a = (0..<(rows * depth)).map { _ in random.uniform(-1, 1) }
            let filters = (0..<(columns * depth)).map { _ in random.uniform(-1, 1) }
            var expected = [Float](repeating: 0, count: rows * columns), result = [Float](repeating: .nan, count: rows * columns)
            a.withUnsafeBufferPointer { x in
                filters.withUnsafeBufferPointer { w in
                    expected.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(m: rows, n: columns, k: depth, a: x.baseAddress!, b: w.baseAddress!, transposeB: true, c: c.baseAddress!)
                    }
                    result.withUnsafeMutableBufferPointer { c in
                        XCTAssertNotNil(NarrowProduct(filters: WeightValues(filters), columns: columns, depth: depth)?.multiply(x.baseAddress!, rows: rows, into: c.baseAddress!))
                    }
                }
            }
            // The same filters stored `[depth][columns]` (Keras's HWIO order) give the same bits.
            let transposed = (0..<(depth * columns)).map { filters[($0 % columns) * depth + $0 / columns] }
            var fromLast = [Float](repeating: .nan, count: rows * columns)
            a.withUnsafeBufferPointer { x in
                fromLast.withUnsafeMutableBufferPointer { c in
                    _ = NarrowProduct(filters: WeightValues(transposed), order: .filtersLast, columns: columns, depth: depth)?
                        .multiply(x.baseAddress!, rows: rows, into: c.baseAddress!)
                }
            }
            XCTAssertEqual(fromLast, result, "filters last")
            XCTAssertTrue(result.allSatisfy(\.isFinite), "every value written")
            let worst = zip(result, expected).map { abs($0 - $1) }.max() ?? .nan
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(rows)x\(depth) by \(depth)x\(columns)")
        }
        XCTAssertNil(NarrowProduct(filters: WeightValues([Float](repeating: 1, count: 65 * 2)), columns: 65, depth: 2))
    }
}
