import Foundation
import ScionIR
import ScionPasses
@testable import ScionRuntime
import XCTest

/// Preparation (Executor+Weights.swift, Executor+Folding.swift, Kernels+KernelLayout.swift): each
/// channels-last convolution's kernel in the order its kernel reads, folded BatchNormalizations
/// applied in the same pass. A Keras kernel is the file's HWIO values as they are (scaled per
/// column when folded); an ONNX OIHW kernel becomes `[F, kh, kw, C]` (1x1: as stored) and a
/// depthwise one `[kh, kw, F]`. Each model runs the same in every layout and with no folding.
final class ExecutorPreparationTests: XCTestCase {
    var random = SplitMix64(seed: 11)

    func values(_ count: Int, offset: Float = -0.5) -> [Float] { (0..<count).map { _ in random.unit() + offset } }

    func parameter(_ name: String, _ role: ParameterRole, _ shape: [Int], offset: Float = -0.5) -> Parameter {
        let data = values(shape.reduce(1, *), offset: offset)
        return Parameter(name: name, role: role, shape: shape, dtype: .float32, trainable: true,
                         storage: TensorStorage(bytes: data.withUnsafeBytes { Array($0) }))
    }

    /// A BatchNormalization's four parameters (variance positive) and its node.
    func batchNormalization(_ name: String, _ input: String, channels: Int, axis: Int) -> (Node, [Parameter]) {
        let parameters = [parameter("\(name)/gamma", .gamma, [channels], offset: 0.5), parameter("\(name)/beta", .beta, [channels]),
                          parameter("\(name)/moving_mean", .movingMean, [channels]),
                          parameter("\(name)/moving_variance", .movingVariance, [channels], offset: 0.25)]
        let op = Op.batchNormalization(BatchNormalizationAttributes(axis: axis, epsilon: 1e-3, momentum: 0.99, center: true, scale: true))
        return (Node(name: name, op: op, inputs: [input], outputs: [name], parameters: parameters.map(\.name)), parameters)
    }

    func floats(_ parameter: Parameter?) throws -> [Float] {
        try XCTUnwrap(parameter).storage.bytes(keep: false).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// `s = gamma / sqrt(variance + epsilon)` of the BatchNormalization `name` in `graph`, as the fold computes it.
    func scales(_ name: String, _ graph: Graph) throws -> [Float] {
        let gamma = try floats(graph.parameters["\(name)/gamma"]), variance = try floats(graph.parameters["\(name)/moving_variance"])
        return zip(gamma, variance).map { $0 / ($1 + 1e-3).squareRoot() }
    }

    /// The model run by the plan's executor, the channels-first one and the unfused one: the same outputs.
    func assertLayoutsAgree(_ lowered: Graph, input: RuntimeTensor, file: StaticString = #filePath, line: UInt = #line) throws {
        let output = try XCTUnwrap(lowered.outputs.first)
        let reference = try XCTUnwrap(try Executor(graph: lowered, fusing: false).run(["x": input])[output]).data
        for executor in [try Executor(graph: lowered), try Executor(graph: lowered, channelsLastPlan: false)] {
            let y = try XCTUnwrap(try executor.run(["x": input])[output]).data
            let scale = reference.map(abs).max() ?? 1
            XCTAssertEqual(y.count, reference.count, file: file, line: line)
            XCTAssertLessThan(zip(y, reference).map { abs($0 - $1) }.max() ?? 0, 1e-5 * scale, file: file, line: line)
        }
    }

    /// Keras, channels-last: conv 3x3 (no bias) → BN → ReLU → depthwise 3x3 ×2 → conv 1x1 (bias) → BN → GAP.
    func kerasModel() -> Graph {
        var table = ParameterTable()
        let conv = parameter("conv/kernel", .kernel, [3, 3, 3, 4])
        let (bn, bnParameters) = batchNormalization("bn", "conv", channels: 4, axis: -1)
        let depthwise = [parameter("dw/kernel", .depthwiseKernel, [3, 3, 4, 2]), parameter("dw/bias", .bias, [8])]
        let pointwise = [parameter("pw/kernel", .kernel, [1, 1, 8, 5]), parameter("pw/bias", .bias, [5])]
        let (bn2, bn2Parameters) = batchNormalization("bn2", "pw", channels: 5, axis: -1)
        for p in [conv] + bnParameters + depthwise + pointwise + bn2Parameters { table.add(p) }
        let same = { (filters: Int, kernel: Int, bias: Bool) in
            Op.conv(ConvAttributes(filters: filters, kernelSize: [kernel, kernel], strides: [1, 1], dilations: [1, 1], padding: .same,
                                   useBias: bias, layout: .channelsLast))
        }
        let dw = Op.depthwiseConv(DepthwiseConvAttributes(kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same,
                                                          depthMultiplier: 2, useBias: true, activation: .linear, layout: .channelsLast))
        let nodes = [
            Node(name: "conv", op: same(4, 3, false), inputs: ["x"], outputs: ["conv"], parameters: ["conv/kernel"]), bn,
            Node(name: "relu", op: .activation(.relu(maxValue: nil, negativeSlope: 0, threshold: 0)), inputs: ["bn"], outputs: ["relu"]),
            Node(name: "dw", op: dw, inputs: ["relu"], outputs: ["dw"], parameters: depthwise.map(\.name)),
            Node(name: "pw", op: same(5, 1, true), inputs: ["dw"], outputs: ["pw"], parameters: pointwise.map(\.name)), bn2,
            Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsLast)), inputs: ["bn2"],
                 outputs: ["gap"]),
        ]
        return Graph(name: "keras", inputs: [ValueInfo(name: "x", shape: Shape([nil, 6, 6, 3]), dtype: .float32)], outputs: ["gap"],
                     nodes: nodes, parameters: table)
    }

    func testKerasKernelsAreTheFilesValuesScaledPerColumn() throws {
        let graph = kerasModel()
        var lowered = graph
        try ExecutorLowering().run(&lowered)
        let executor = try Executor(graph: lowered)
        XCTAssertEqual(executor.convolutionForms, ["conv": .matrix(.filtersLast), "dw": .depthwise, "pw": .matrix(.filtersLast)])
        XCTAssertEqual(executor.folded, ["bn", "bn2"])
        // HWIO [3, 3, 3, 4] as stored, column f (filter f) times its scale: no permutation.
        let hwio = try floats(graph.parameters["conv/kernel"]), s = try scales("bn", graph)
        XCTAssertEqual(executor.values(of: "conv/kernel"), hwio.enumerated().map { $1 * s[$0 % 4] })
        let pointwise = try floats(graph.parameters["pw/kernel"]), s2 = try scales("bn2", graph)
        XCTAssertEqual(executor.values(of: "pw/kernel"), pointwise.enumerated().map { $1 * s2[$0 % 5] })
        // Keras's depthwise [3, 3, 4, 2] is [kh, kw, F] already, filter c·2 + m.
        XCTAssertEqual(executor.values(of: "dw/kernel"), try floats(graph.parameters["dw/kernel"]))
        try assertLayoutsAgree(lowered, input: RuntimeTensor(shape: [2, 6, 6, 3], data: values(216)))
    }

    /// ONNX, channels-first: conv 3x3 (bias) → BN → conv 1x1 → depthwise 3x3 (groups 5) → BN → GAP.
    func onnxModel() -> Graph {
        var table = ParameterTable()
        let conv = [parameter("c1/kernel", .kernel, [4, 2, 3, 3]), parameter("c1/bias", .bias, [4])]
        let (bn, bnParameters) = batchNormalization("bn", "c1", channels: 4, axis: 1)
        let pointwise = parameter("c2/kernel", .kernel, [5, 4, 1, 1])
        let depthwise = parameter("dw/kernel", .kernel, [5, 1, 3, 3])
        let (bn2, bn2Parameters) = batchNormalization("bn2", "dw", channels: 5, axis: 1)
        for p in conv + bnParameters + [pointwise, depthwise] + bn2Parameters { table.add(p) }
        let op = { (filters: Int, kernel: Int, groups: Int, bias: Bool) in
            Op.conv(ConvAttributes(filters: filters, kernelSize: [kernel, kernel], strides: [1, 1], dilations: [1, 1], padding: .same,
                                   groups: groups, useBias: bias, layout: .channelsFirst))
        }
        let nodes = [
            Node(name: "c1", op: op(4, 3, 1, true), inputs: ["x"], outputs: ["c1"], parameters: conv.map(\.name)), bn,
            Node(name: "c2", op: op(5, 1, 1, false), inputs: ["bn"], outputs: ["c2"], parameters: ["c2/kernel"]),
            Node(name: "dw", op: op(5, 3, 5, false), inputs: ["c2"], outputs: ["dw"], parameters: ["dw/kernel"]), bn2,
            Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsFirst)), inputs: ["bn2"],
                 outputs: ["gap"]),
        ]
        var graph = Graph(name: "onnx", inputs: [ValueInfo(name: "x", shape: Shape([nil, 2, 6, 6]), dtype: .float32)], outputs: ["gap"],
                          nodes: nodes, parameters: table)
        graph.layout = .channelsFirst
        return graph
    }

    func testONNXKernelsAreReorderedAndScaledInOnePass() throws {
        let graph = onnxModel()
        let executor = try Executor(graph: graph)
        // c2 → dw is a depthwise block (its expansion held as panels) where the CPU runs the narrow products.
        let blocked = !executor.depthwiseBlocks.blocks.isEmpty
        XCTAssertEqual(executor.convolutionForms, ["c1": .matrix(.filtersFirst), "c2": .matrix(blocked ? .panels : .filtersFirst), "dw": .depthwise],
                       "OIHW kernels are held filters first")
        XCTAssertEqual(executor.folded, ["bn", "bn2"])
        // [F, C, kh, kw] → [F, kh, kw, C], filter f times its scale.
        let oihw = try floats(graph.parameters["c1/kernel"]), s = try scales("bn", graph)
        var expected = [Float](repeating: 0, count: oihw.count)
        for f in 0..<4 { for c in 0..<2 { for t in 0..<9 { expected[(f * 9 + t) * 2 + c] = oihw[(f * 2 + c) * 9 + t] * s[f] } } }
        XCTAssertEqual(executor.values(of: "c1/kernel"), expected)
        let pointwise = try floats(graph.parameters["c2/kernel"])
        if blocked {
            // One panel, [C][16]: filter f of channel c at c·16 + f, zeros past the 5 filters.
            var panel = [Float](repeating: 0, count: 4 * 16)
            for f in 0..<5 { for c in 0..<4 { panel[c * 16 + f] = pointwise[f * 4 + c] } }
            XCTAssertEqual(executor.values(of: "c2/kernel"), panel, "a block's 1x1 kernel is packed as a panel")
        } else {
            XCTAssertEqual(executor.values(of: "c2/kernel"), pointwise, "a 1x1 OIHW kernel is [F, C] as stored")
        }
        // Depthwise [F, 1, kh, kw] → [kh, kw, F], scaled.
        let depthwise = try floats(graph.parameters["dw/kernel"]), s2 = try scales("bn2", graph)
        var taps = [Float](repeating: 0, count: 45)
        for f in 0..<5 { for t in 0..<9 { taps[t * 5 + f] = depthwise[f * 9 + t] * s2[f] } }
        XCTAssertEqual(executor.values(of: "dw/kernel"), taps)
        try assertLayoutsAgree(graph, input: RuntimeTensor(shape: [2, 2, 6, 6], data: values(144)))
    }

    /// Bytes read from a source (a file) rather than held in memory.
    final class FileLikeSource: TensorSource {
        let bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var byteCount: Int { bytes.count }
        var location: String { "test source" }
        func readBytes() throws -> [UInt8] { bytes }
    }

    func testEveryKernelFormIsTheSameFromMemoryOrFromASource() throws {
        let inMemory = parameter("k", .kernel, [3, 2, 2, 2])
        var fromSource = inMemory
        fromSource.storage = TensorStorage(source: FileLikeSource(try inMemory.storage.bytes()))
        XCTAssertFalse(fromSource.storage.isLoaded)
        let oihw = try floats(inMemory), scales: [Float] = [0.5, -2, 3]
        for form in [Executor.KernelForm.channelsFirst, .matrix(.filtersFirst), .matrix(.filtersLast), .depthwise] {
            for s in [nil, scales] {
                let a = try Executor.convolutionKernel(inMemory, form, scales: s)
                XCTAssertEqual(a, try Executor.convolutionKernel(fromSource, form, scales: s), "\(form)")
                XCTAssertEqual(a.count, 24)
                // Every form holds the same values, each filter's scaled alike.
                XCTAssertEqual(a.sorted(), (0..<24).map { oihw[$0] * (s?[$0 / 8] ?? 1) }.sorted(), "\(form)")
            }
        }
        XCTAssertEqual(try Executor.convolutionKernel(inMemory, .channelsFirst, scales: scales),
                       (0..<24).map { oihw[$0] * scales[$0 / 8] })
        XCTAssertThrowsError(try Executor.convolutionKernel(parameter("odd", .kernel, [0, 2]), .channelsFirst, scales: nil))
    }

    func testHugePagesAreAskedOnlyForWholePages() {
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { small.deallocate() }
        XCTAssertFalse(Allocator.preferHugePages(small), "1 MiB holds no whole 2 MiB page")
        let values = Executor.weightArray(3 << 20) { buffer in for i in buffer.indices { buffer[i] = Float(i % 7) } }
        XCTAssertEqual(values.count, 3 << 20)
        XCTAssertEqual(values[(3 << 20) - 1], Float(((3 << 20) - 1) % 7))
    }

    func testConcurrentLoadingKeepsTheJobsOrder() throws {
        // Sizes out of order, so the largest-first schedule differs from the jobs' order.
        let jobs = (0..<9).map { i in (size: (i * 5) % 9, run: { @Sendable () throws -> [Float] in [Float(i), Float(i * i)] }) }
        XCTAssertEqual(try Executor.concurrently(jobs), (0..<9).map { [Float($0), Float($0 * $0)] })
        let failing = (0..<6).map { i in
            (size: i, run: { @Sendable () throws -> [Float] in
                if i >= 2 { throw RuntimeError("job \(i)", "failed") }
                return [Float(i)]
            })
        }
        XCTAssertThrowsError(try Executor.concurrently(failing)) { XCTAssertTrue("\($0)".contains("job 2"), "\($0)") }
        XCTAssertEqual(try Executor.concurrently([]), [])
    }
}
