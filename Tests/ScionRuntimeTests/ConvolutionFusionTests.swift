import Foundation
import CVectorKernels
import ScionIR
@testable import ScionRuntime
import XCTest

/// The work convolutions and poolings take over from the nodes around them at inference: residual
/// sums written into the other operand's buffer (Executor+ResidualConvolutions.swift), a
/// BatchNormalization and ReLU applied to a 1x1 convolution's input as it is read
/// (Executor+NormalizedInputs.swift), a zero padding taken into the pooling after it
/// (Executor+Fusion.swift). Each case runs the fused executor (channels-last and channels-first
/// plans) against the trainer's unfused one, node by node, and checks that the fusions happened.
final class ConvolutionFusionTests: XCTestCase {
    /// Builds graphs channels-first, as the lowering leaves them, with random weights.
    struct Builder {
        var random: SplitMix64
        var nodes: [Node] = []
        var parameters = ParameterTable()

        init(seed: UInt64) { random = SplitMix64(seed: seed) }

        mutating func parameter(_ name: String, _ role: ParameterRole, _ shape: [Int], _ low: Float, _ high: Float) -> String {
            let values = (0..<shape.reduce(1, *)).map { _ in random.uniform(low, high) }
            parameters.add(Parameter(name: "\(name)/\(role.rawValue)", role: role, shape: shape, dtype: .float32, trainable: true,
                                     storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
            return "\(name)/\(role.rawValue)"
        }

        mutating func conv(_ name: String, _ input: String, _ channels: Int, _ filters: Int, kernel: Int = 1) -> String {
            let a = ConvAttributes(filters: filters, kernelSize: [kernel, kernel], strides: [1, 1], dilations: [1, 1],
                                   padding: kernel == 1 ? .valid : .same, groups: 1, useBias: true, layout: .channelsFirst)
            let scale = 1 / Float(channels * kernel * kernel).squareRoot()
            let weights = [parameter(name, .kernel, [filters, channels, kernel, kernel], -scale, scale),
                           parameter(name, .bias, [filters], -0.3, 0.1)]
            nodes.append(Node(name: name, op: .conv(a), inputs: [input], outputs: [name], parameters: weights))
            return name
        }

        mutating func normalize(_ name: String, _ input: String, _ channels: Int) -> String {
            let b = BatchNormalizationAttributes(axis: 1, epsilon: 1e-3, momentum: 0.99, center: true, scale: true)
            let weights = [parameter(name, .gamma, [channels], 0.5, 1.5), parameter(name, .beta, [channels], -0.3, 0.3),
                           parameter(name, .movingMean, [channels], -0.2, 0.2), parameter(name, .movingVariance, [channels], 0.5, 2)]
            nodes.append(Node(name: name, op: .batchNormalization(b), inputs: [input], outputs: [name], parameters: weights))
            return name
        }

        mutating func node(_ name: String, _ op: Op, _ inputs: [String]) -> String {
            nodes.append(Node(name: name, op: op, inputs: inputs, outputs: [name], parameters: []))
            return name
        }

        mutating func relu(_ name: String, _ input: String) -> String {
            node(name, .activation(.relu(maxValue: nil, negativeSlope: 0, threshold: 0)), [input])
        }

        /// The graph from `x` `[N, channels, H, W]` to a global average pooling of `last` (and `taps`).
        func graph(channels: Int, last: String, taps: [String] = []) -> Graph {
            var nodes = self.nodes
            let pooled = GlobalPoolAttributes(kind: .average, rank: 2, keepDimensions: false, layout: .channelsFirst)
            nodes.append(Node(name: "pool", op: .globalPool(pooled), inputs: [last], outputs: ["pooled"], parameters: []))
            return Graph(name: "fusions", inputs: [ValueInfo(name: "x", shape: Shape([nil, channels, nil, nil]), dtype: .float32)],
                         outputs: [last, "pooled"] + taps, nodes: nodes, parameters: parameters)
        }
    }

    /// The fused executors' outputs against the unfused executor's; returns the channels-last executor.
    @discardableResult
    func checkAgainstUnfused(_ graph: Graph, batch: Int, channels: Int, size: Int, file: StaticString = #filePath,
                             line: UInt = #line) throws -> Executor {
        var random = SplitMix64(seed: 3)
        let count = batch * channels * size * size
        let x = RuntimeTensor(shape: [batch, channels, size, size], data: (0..<count).map { _ in random.uniform(-2, 2) })
        let expected = try Executor(graph: graph, fusing: false).run(["x": x])
        let fused = try Executor(graph: graph)
        for executor in [fused, try Executor(graph: graph, channelsLastPlan: false)] {
            let outputs = try executor.run(["x": x])
            for (name, want) in expected {
                let got = try XCTUnwrap(outputs[name], name, file: file, line: line)
                XCTAssertEqual(got.shape, want.shape, name, file: file, line: line)
                let scale = want.data.map(abs).max() ?? 0
                let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(worst, 1e-5 * max(scale, 1), "\(name) at batch \(batch), \(size)x\(size): off by \(worst)",
                                         file: file, line: line)
            }
        }
        return fused
    }

    static func enabled(_ variable: String) -> Bool { ProcessInfo.processInfo.environment[variable] != "off" }

    /// A ResNet50 projection block as Keras orders it (the shortcut convolution before the branch's
    /// last, its BatchNormalization after), an identity block (a Dropout before its sum, as
    /// EfficientNet's), and ResNet18's basic block (two 3x3 convolutions: the sum in a Winograd
    /// convolution); `shortcutLast` orders the projection block as torch's export does (the shortcut
    /// after the branch: the sum goes into the shortcut's convolution).
    static func residualNetwork(shortcutLast: Bool = false, tapShortcut: Bool = false) -> Graph {
        var b = Builder(seed: 11)
        let stem = b.relu("stem_relu", b.normalize("stem_bn", b.conv("stem", "x", 3, 16, kernel: 3), 16))
        var branch = b.relu("b1_relu", b.normalize("b1_bn", b.conv("b1", stem, 16, 8), 8))
        branch = b.relu("b2_relu", b.normalize("b2_bn", b.conv("b2", branch, 8, 16, kernel: 3), 16))
        let shortcut: String, last: String
        if shortcutLast {
            last = b.normalize("b3_bn", b.conv("b3", branch, 16, 32), 32)
            shortcut = b.normalize("s_bn", b.conv("s", stem, 16, 32), 32)
        } else {
            let s = b.conv("s", stem, 16, 32), b3 = b.conv("b3", branch, 16, 32)
            shortcut = b.normalize("s_bn", s, 32)
            last = b.normalize("b3_bn", b3, 32)
        }
        var out = b.relu("block1", b.node("add1", .elementwise(.add), [shortcut, last]))
        var identity = b.relu("c1_relu", b.normalize("c1_bn", b.conv("c1", out, 32, 16), 16))
        identity = b.relu("c2_relu", b.normalize("c2_bn", b.conv("c2", identity, 16, 16, kernel: 3), 16))
        // EfficientNet's Dropout between the BatchNormalization and the sum (identity at inference).
        let dropped = b.node("c3_drop", .dropout(DropoutAttributes(rate: 0.2)), [b.normalize("c3_bn", b.conv("c3", identity, 16, 32), 32)])
        out = b.relu("block2", b.node("add2", .elementwise(.add), [out, dropped]))
        let basic = b.relu("d1_relu", b.normalize("d1_bn", b.conv("d1", out, 32, 32, kernel: 3), 32))
        out = b.relu("block3", b.node("add3", .elementwise(.add), [b.normalize("d2_bn", b.conv("d2", basic, 32, 32, kernel: 3), 32), out]))
        return b.graph(channels: 3, last: out, taps: tapShortcut ? [shortcut] : [])
    }

    func testResidualSumsAreDoneByTheConvolutionBeforeThem() throws {
        for shortcutLast in [false, true] {
            // 12x12 at batch 2: blocks of rows on each core; 4x4 at batch 1: the few-rows products.
            for (batch, size) in [(2, 12), (1, 4)] {
                let executor = try checkAgainstUnfused(Self.residualNetwork(shortcutLast: shortcutLast), batch: batch, channels: 3, size: size)
                let fused = executor.residualConvolutions.fusions.values.map { executor.graph.nodes[$0.sum].name }.sorted()
                XCTAssertEqual(fused, Self.enabled("SCION_RESIDUALS") ? ["add1", "add2", "add3"] : [], "shortcut last: \(shortcutLast)")
                // ResNet18's sum is done by a Winograd convolution, the bottlenecks' by products.
                if Self.enabled("SCION_RESIDUALS"), let d2 = executor.graph.nodes.firstIndex(where: { $0.name == "d2" }) {
                    XCTAssertNotNil(executor.residualConvolutions.fusions[d2])
                    if case .winograd = executor.convolutionForms["d2"] {} else { XCTFail("d2 is \(String(describing: executor.convolutionForms["d2"]))") }
                }
            }
        }
    }

    /// A sum whose other operand is also a graph output keeps its own node: its buffer cannot become the result.
    func testAResidualReadElsewhereIsNotOverwritten() throws {
        let executor = try checkAgainstUnfused(Self.residualNetwork(tapShortcut: true), batch: 2, channels: 3, size: 12)
        let fused = executor.residualConvolutions.fusions.values.map { executor.graph.nodes[$0.sum].name }
        XCTAssertFalse(fused.contains("add1"))
    }

    /// A sum whose operands' shapes agree only up to a batch the graph leaves open is planned, and at
    /// run time, given a batch of 1 against 2 (the sum broadcasts), falls back to the nodes one by one.
    func testASumThatBroadcastsAtRunTimeRunsNodeByNode() throws {
        var b = Builder(seed: 14)
        let left = b.conv("left", "x", 3, 16), right = b.conv("right", "y", 3, 16)
        let sum = b.node("sum", .elementwise(.add), [left, right])
        var graph = b.graph(channels: 3, last: sum)
        graph.inputs.append(ValueInfo(name: "y", shape: Shape([nil, 3, nil, nil]), dtype: .float32))
        var random = SplitMix64(seed: 4)
        let x = RuntimeTensor(shape: [2, 3, 5, 5], data: (0..<150).map { _ in random.uniform(-2, 2) })
        let y = RuntimeTensor(shape: [1, 3, 5, 5], data: (0..<75).map { _ in random.uniform(-2, 2) })
        let fused = try Executor(graph: graph)
        XCTAssertEqual(fused.residualConvolutions.fusions.count, Self.enabled("SCION_RESIDUALS") ? 1 : 0)
        let want = try XCTUnwrap(Executor(graph: graph, fusing: false).run(["x": x, "y": y])["sum"])
        let got = try XCTUnwrap(fused.run(["x": x, "y": y])["sum"])
        XCTAssertEqual(got.shape, [2, 16, 5, 5])
        let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-5 * (want.data.map(abs).max() ?? 0))
    }

    /// The comparison above sees a convolution that skipped the sum: the network without it differs.
    func testTheComparisonSeesAMissingSum() throws {
        try assertDiffersWithout("add3", passing: "d2_bn", in: Self.residualNetwork())
    }

    /// The fused `graph`'s pooled output against the unfused one's with node `name` replaced by an
    /// identity of `input`: they must differ, or the comparisons above could not see that work skipped.
    func assertDiffersWithout(_ name: String, passing input: String, in graph: Graph, file: StaticString = #filePath,
                              line: UInt = #line) throws {
        var random = SplitMix64(seed: 3)
        let x = RuntimeTensor(shape: [2, 3, 12, 12], data: (0..<(2 * 3 * 144)).map { _ in random.uniform(-2, 2) })
        var without = graph
        let index = try XCTUnwrap(without.nodes.firstIndex { $0.name == name }, file: file, line: line)
        without.nodes[index].op = .identity
        without.nodes[index].inputs = [input]
        let a = try XCTUnwrap(Executor(graph: graph).run(["x": x])["pooled"], file: file, line: line)
        let b = try XCTUnwrap(Executor(graph: without, fusing: false).run(["x": x])["pooled"], file: file, line: line)
        let worst = zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(worst, 1e-2 * (b.data.map(abs).max() ?? 0), "without \(name)", file: file, line: line)
    }

    /// Two DenseNet layers (BatchNormalization → ReLU → 1x1 → 3x3, concatenated to their input, which
    /// the next concatenation reads again) and a transition (BatchNormalization → ReLU → 1x1 → average
    /// pooling), and a BatchNormalization with no ReLU before a 1x1 convolution.
    static func denseNetwork(tapNormalized: Bool = false) -> Graph {
        var b = Builder(seed: 12)
        var features = b.relu("stem_relu", b.normalize("stem_bn", b.conv("stem", "x", 3, 16, kernel: 3), 16))
        var channels = 16
        for layer in 1...2 {
            let name = "layer\(layer)"
            var y = b.relu("\(name)_relu0", b.normalize("\(name)_bn0", features, channels))
            y = b.relu("\(name)_relu1", b.normalize("\(name)_bn1", b.conv("\(name)_conv1", y, channels, 32), 32))
            y = b.conv("\(name)_conv2", y, 32, 8, kernel: 3)
            features = b.node("\(name)_concat", .concatenate(ConcatenateAttributes(axis: 1)), [features, y])
            channels += 8
        }
        var y = b.relu("transition_relu", b.normalize("transition_bn", features, channels))
        y = b.conv("transition_conv", y, channels, 16)
        let average = PoolAttributes(kind: .average, poolSize: [2, 2], strides: [2, 2], padding: .valid, layout: .channelsFirst)
        y = b.node("transition_pool", .pool(average), [y])
        let plain = b.normalize("plain_bn", y, 16)
        let last = b.conv("plain_conv", plain, 16, 8)
        return b.graph(channels: 3, last: last, taps: tapNormalized ? ["layer2_relu0"] : [])
    }

    func testBatchNormalizationsAreAppliedByTheConvolutionAfterThem() throws {
        for (batch, size) in [(2, 12), (1, 4)] {
            let executor = try checkAgainstUnfused(Self.denseNetwork(), batch: batch, channels: 3, size: size)
            let normalized = executor.normalizedInputs.normalizations.keys.sorted()
            XCTAssertEqual(normalized, Self.enabled("SCION_NORMALIZED_INPUTS")
                ? ["layer1_conv1", "layer2_conv1", "plain_conv", "transition_conv"] : [])
        }
        // The normalized values are a graph output: that layer's normalization stays a node.
        let executor = try checkAgainstUnfused(Self.denseNetwork(tapNormalized: true), batch: 2, channels: 3, size: 12)
        XCTAssertNil(executor.normalizedInputs.normalizations["layer2_conv1"])
    }

    /// EfficientNet's squeeze-and-excitation twice: the gate's product projected to 8 filters and
    /// summed with the block's input (the gate carried by the filters: 16 of them for 144 pixels a
    /// sample, or 16 at 4x4), then, gate first, to 80 filters (carried by the input rows).
    static func gatedNetwork(tapProduct: Bool = false) -> Graph {
        var b = Builder(seed: 13)
        let stem = b.relu("stem_relu", b.conv("stem", "x", 3, 8, kernel: 3))
        func gate(_ name: String, _ input: String, _ channels: Int) -> String {
            let squeezed = b.node("\(name)_squeeze", .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, keepDimensions: true,
                                                                                      layout: .channelsFirst)), [input])
            let reduced = b.relu("\(name)_reduce_relu", b.conv("\(name)_reduce", squeezed, channels, 4))
            return b.node("\(name)_sigmoid", .activation(.sigmoid), [b.conv("\(name)_expand", reduced, 4, channels)])
        }
        let expanded = b.relu("e1_relu", b.conv("e1", stem, 8, 24))
        let product = b.node("excite1", .elementwise(.multiply), [expanded, gate("se1", expanded, 24)])
        let sum = b.node("add1", .elementwise(.add), [stem, b.conv("project1", product, 24, 8)])
        let expanded2 = b.relu("e2_relu", b.conv("e2", sum, 8, 48))
        let last = b.conv("project2", b.node("excite2", .elementwise(.multiply), [gate("se2", expanded2, 48), expanded2]), 48, 80)
        return b.graph(channels: 3, last: last, taps: tapProduct ? ["excite1"] : [])
    }

    func testSqueezeAndExcitationGatesAreAppliedByTheConvolutionAfterThem() throws {
        for (batch, size) in [(2, 12), (1, 4), (3, 9)] {
            let executor = try checkAgainstUnfused(Self.gatedNetwork(), batch: batch, channels: 3, size: size)
            let gated = executor.gatedInputs.gates.keys.map { executor.graph.nodes[$0].name }.sorted()
            XCTAssertEqual(gated, Self.enabled("SCION_GATED_INPUTS") ? ["project1", "project2"] : [])
            // The first projection also does the residual sum, with the gate.
            let project1 = try XCTUnwrap(executor.graph.nodes.firstIndex { $0.name == "project1" })
            XCTAssertEqual(executor.residualConvolutions.fusions[project1] != nil, Self.enabled("SCION_RESIDUALS"))
        }
        // The product is a graph output: that multiplication stays a node.
        let executor = try checkAgainstUnfused(Self.gatedNetwork(tapProduct: true), batch: 2, channels: 3, size: 12)
        XCTAssertEqual(executor.gatedInputs.gates.keys.map { executor.graph.nodes[$0].name }, Self.enabled("SCION_GATED_INPUTS") ? ["project2"] : [])
    }

    /// Either side carries the gate to the same values, in every filter order: the filters scaled
    /// per sample (12x12: 144 pixels a sample) or the input rows (3x3), against the product of the
    /// gated input.
    func testAGateOnTheFiltersAgreesWithTheGateOnTheRows() throws {
        var random = SplitMix64(seed: 5)
        let (batch, channels) = (2, 20)
        for size in [12, 3] {
            let x = RuntimeTensor(shape: [batch, size, size, channels], data: (0..<(batch * size * size * channels)).map { _ in random.uniform(-2, 2) })
            let weights = (0..<(batch * channels)).map { _ in random.uniform(0, 1) }
            let gated = RuntimeTensor(shape: x.shape, data: x.data.indices.map { x.data[$0] * weights[$0 / (size * size * channels) * channels + $0 % channels] })
            let gate = SampleGate(weights: weights, pixelsPerSample: size * size)
            for filters in [8, 40, 70] {
                // `[F, C]`, and the same filters as `[C, F]` and in panels.
                let kernel = (0..<(filters * channels)).map { _ in random.uniform(-0.5, 0.5) }
                let transposed = (0..<(filters * channels)).map { kernel[($0 % filters) * channels + $0 / filters] }
                var panels = [Float](repeating: 0, count: scion_panels_count(filters, channels))
                scion_pack_panels(kernel, 1, channels, filters, 1, 1, channels, nil, &panels)
                var g = Kernels.ConvGeometry(pointwiseRows: 1, depth: channels, columns: filters)
                (g.batch, g.height, g.width, g.oh, g.ow) = (batch, size, size, size, size)
                let epilogue = ConvolutionEpilogue(bias: nil, activation: .linear)
                let want = Kernels.convolutionChannelsLast(gated, kernel: WeightValues(kernel), order: .filtersFirst, g, epilogue: epilogue)
                XCTAssertEqual(gate.scalesFilters(filters: filters), size == 12)
                for (order, values) in [(Kernels.FilterOrder.filtersFirst, kernel), (.filtersLast, transposed), (.panels, panels)] {
                    let got = Kernels.convolutionChannelsLast(x, kernel: WeightValues(values), order: order, g, prologue: .gate(gate),
                                                              epilogue: epilogue)
                    let scale = want.data.map(abs).max() ?? 0
                    let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
                    XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(filters) filters \(order) at \(size)x\(size): off by \(worst)")
                }
            }
        }
    }

    /// A gate from another input, one sample for two (it broadcasts over the batch): planned, and at
    /// run time multiplied as its own node.
    func testAGateThatBroadcastsAtRunTimeIsMultipliedAsItsOwnNode() throws {
        var b = Builder(seed: 15)
        let features = b.conv("features", "x", 3, 16)
        let last = b.conv("project", b.node("excite", .elementwise(.multiply), [features, "s"]), 16, 8)
        var graph = b.graph(channels: 3, last: last)
        graph.inputs.append(ValueInfo(name: "s", shape: Shape([nil, 16, 1, 1]), dtype: .float32))
        var random = SplitMix64(seed: 6)
        let x = RuntimeTensor(shape: [2, 3, 5, 5], data: (0..<150).map { _ in random.uniform(-2, 2) })
        let s = RuntimeTensor(shape: [1, 16, 1, 1], data: (0..<16).map { _ in random.uniform(0, 1) })
        let fused = try Executor(graph: graph)
        XCTAssertEqual(fused.gatedInputs.gates.count, Self.enabled("SCION_GATED_INPUTS") ? 1 : 0)
        let want = try XCTUnwrap(Executor(graph: graph, fusing: false).run(["x": x, "s": s])["project"])
        let got = try XCTUnwrap(fused.run(["x": x, "s": s])["project"])
        XCTAssertEqual(got.shape, [2, 8, 5, 5])
        let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-5 * (want.data.map(abs).max() ?? 0))
    }

    /// The comparison above sees a convolution that dropped its gate: the network without it differs.
    func testTheComparisonSeesAMissingGate() throws {
        try assertDiffersWithout("excite2", passing: "e2_relu", in: Self.gatedNetwork())
    }

    /// Keras's ResNet and DenseNet stems: ZeroPadding2D then a valid MaxPooling2D, and an average
    /// pooling after a zero padding; the padded cells must count as zeros, which a pooling's own
    /// padding does not (a max over negative values and padding is 0 here, not the largest value).
    static func paddedPools(ownPadding: Bool = false) -> Graph {
        var b = Builder(seed: 13)
        // Linear, with a negative bias: most values below zero, so padded zeros win many border maxima.
        let stem = b.conv("stem", "x", 3, 8, kernel: 3)
        let pad = SpatialPaddingAttributes(padding: [[1, 1], [1, 1]], layout: .channelsFirst)
        let padding: Padding = ownPadding ? .explicit([1, 1, 1, 1]) : .valid
        let maximum = PoolAttributes(kind: .max, poolSize: [3, 3], strides: [2, 2], padding: padding, layout: .channelsFirst)
        let pooled = b.node("max_pool", .pool(maximum), [ownPadding ? stem : b.node("pad", .zeroPadding(pad), [stem])])
        let average = PoolAttributes(kind: .average, poolSize: [2, 2], strides: [1, 1], padding: .valid, layout: .channelsFirst)
        let onnxPad = Op.onnx(.pad(PadAttributes(pads: [0, 0, 1, 0, 0, 0, 0, 1], mode: .constant)))
        let averaged = b.node("average_pool", .pool(average), [b.node("pad2", onnxPad, [pooled])])
        return b.graph(channels: 3, last: averaged)
    }

    func testZeroPaddingIsTakenIntoThePoolingAfterIt() throws {
        for (batch, size) in [(2, 13), (1, 6)] {
            let executor = try checkAgainstUnfused(Self.paddedPools(), batch: batch, channels: 3, size: size)
            XCTAssertEqual(executor.graph.nodes.map(\.name), ["stem", "max_pool", "average_pool", "pool"])
            XCTAssertEqual(executor.zeroPaddedPools, ["max_pool"])
        }
        // A pooling's own padding is not zeros: the same network with it gives other values.
        var random = SplitMix64(seed: 3)
        let x = RuntimeTensor(shape: [2, 3, 13, 13], data: (0..<(2 * 3 * 169)).map { _ in random.uniform(-2, 2) })
        let zeros = try XCTUnwrap(Executor(graph: Self.paddedPools()).run(["x": x])["average_pool"])
        let own = try XCTUnwrap(Executor(graph: Self.paddedPools(ownPadding: true)).run(["x": x])["average_pool"])
        XCTAssertGreaterThan(zip(zeros.data, own.data).map { abs($0 - $1) }.max() ?? 0, 1e-3)
    }
}
