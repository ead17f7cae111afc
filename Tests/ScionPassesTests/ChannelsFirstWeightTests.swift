import ScionIR
import XCTest

@testable import ScionPasses

/// Every permuted weight element by element, with the index formula spelled out, and whole small
/// graphs computed before and after the pass by `ReferenceEvaluator`.
final class ChannelsFirstWeightTests: XCTestCase {
    /// Conv2D kernel HWIO [kh, kw, in, out] to OIHW [out, in, kh, kw]: new[o, i, y, x] = old[y, x, i, o].
    func testConvolutionKernelBecomesOIHW() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 6, 6, 3])])
        sketch.add("conv", Ops.conv(4, kernel: [3, 2]), ["image"], parameters: [("kernel", [3, 2, 3, 4]), ("bias", [4])])
        sketch.outputs = ["conv"]
        let graph = try convert(sketch.graph)
        let old = try parameterValues(sketch.graph, "conv/kernel")
        let new = try parameterValues(graph, "conv/kernel")
        XCTAssertEqual(graph.parameters["conv/kernel"]?.shape, [4, 3, 3, 2])
        for index in allIndices([4, 3, 3, 2]) {
            let (o, i, y, x) = (index[0], index[1], index[2], index[3])
            XCTAssertEqual(new[offset(index, in: [4, 3, 3, 2])], old[offset([y, x, i, o], in: [3, 2, 3, 4])])
        }
        XCTAssertEqual(try parameterValues(graph, "conv/bias"), try parameterValues(sketch.graph, "conv/bias"))
    }

    /// DepthwiseConv2D kernel [kh, kw, C, M] to a grouped convolution (groups C, C·M filters) with
    /// weight [C·M, 1, kh, kw]: new[c·M + m, 0, y, x] = old[y, x, c, m].
    func testDepthwiseKernelBecomesGroupedConvolution() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 5, 5, 3])])
        sketch.add("dw", .depthwiseConv(Ops.depthwise(kernel: [3, 2], multiplier: 2)), ["image"],
                   parameters: [("depthwise_kernel", [3, 2, 3, 2]), ("bias", [6])])
        sketch.outputs = ["dw"]
        let graph = try convert(sketch.graph)
        guard case .conv(let a) = graph.node(named: "dw")?.op else { return XCTFail("not a conv") }
        XCTAssertEqual(a.groups, 3)
        XCTAssertEqual(a.filters, 6)
        XCTAssertEqual(a.layout, .channelsFirst)
        let parameter = try XCTUnwrap(graph.parameters["dw/depthwise_kernel"])
        XCTAssertEqual(parameter.shape, [6, 1, 3, 2])
        XCTAssertEqual(parameter.role, .kernel)
        let old = try parameterValues(sketch.graph, "dw/depthwise_kernel")
        let new = try parameterValues(graph, "dw/depthwise_kernel")
        for index in allIndices([3, 2, 3, 2]) {
            let (y, x, c, m) = (index[0], index[1], index[2], index[3])
            XCTAssertEqual(new[offset([c * 2 + m, 0, y, x], in: [6, 1, 3, 2])], old[offset(index, in: [3, 2, 3, 2])])
        }
    }

    /// SeparableConv2D becomes `sep/depthwise` (grouped, no bias) then `sep` (1x1, pointwise kernel
    /// [1, 1, C·M, F] to [F, C·M, 1, 1], bias, activation), flags and names carried over.
    func testSeparableConvolutionBecomesTwoConvolutions() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 5, 5, 2])])
        sketch.add("sep", .separableConv(SeparableConvAttributes(filters: 3, depthwise: DepthwiseConvAttributes(
            kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same, depthMultiplier: 2, useBias: true,
            activation: .plainRelu, layout: .channelsLast))), ["image"],
            parameters: [("depthwise_kernel", [3, 3, 2, 2]), ("pointwise_kernel", [1, 1, 4, 3]), ("bias", [3])], trainable: false)
        sketch.outputs = ["sep"]
        let graph = try convert(sketch.graph)

        let depthwise = try XCTUnwrap(graph.node(named: "sep/depthwise"))
        let pointwise = try XCTUnwrap(graph.node(named: "sep"))
        XCTAssertEqual(depthwise.op, .conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1],
                                                          padding: .same, groups: 2, useBias: false, layout: .channelsFirst)))
        XCTAssertEqual(pointwise.op, .conv(ConvAttributes(filters: 3, kernelSize: [1, 1], strides: [1, 1], dilations: [1, 1],
                                                          padding: .valid, groups: 1, useBias: true, activation: .plainRelu,
                                                          layout: .channelsFirst)))
        XCTAssertEqual(depthwise.parameters, ["sep/depthwise_kernel"])
        XCTAssertEqual(pointwise.parameters, ["sep/pointwise_kernel", "sep/bias"])
        XCTAssertEqual(pointwise.inputs, depthwise.outputs)
        XCTAssertEqual([depthwise.layer, pointwise.layer], ["sep", "sep"])
        XCTAssertEqual([depthwise.trainable, pointwise.trainable], [false, false])
        XCTAssertEqual(graph.parameters.all.map(\.trainable), [false, false, false])
        XCTAssertEqual(graph.parameters["sep/pointwise_kernel"]?.shape, [3, 4, 1, 1])

        let oldPointwise = try parameterValues(sketch.graph, "sep/pointwise_kernel")
        let newPointwise = try parameterValues(graph, "sep/pointwise_kernel")
        for index in allIndices([3, 4]) {
            XCTAssertEqual(newPointwise[offset(index, in: [3, 4])], oldPointwise[offset([index[1], index[0]], in: [4, 3])])
        }
        let oldDepthwise = try parameterValues(sketch.graph, "sep/depthwise_kernel")
        let newDepthwise = try parameterValues(graph, "sep/depthwise_kernel")
        for index in allIndices([3, 3, 2, 2]) {
            let (y, x, c, m) = (index[0], index[1], index[2], index[3])
            XCTAssertEqual(newDepthwise[offset([c * 2 + m, 0, y, x], in: [4, 1, 3, 3])], oldDepthwise[offset(index, in: [3, 3, 2, 2])])
        }
    }

    /// Conv2DTranspose kernel [kh, kw, out, in] to ONNX ConvTranspose's [in, out, kh, kw]:
    /// new[i, o, y, x] = old[y, x, o, i].
    func testTransposedConvolutionKernelBecomesIOHW() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3])])
        sketch.add("deconv", .convTranspose(ConvTransposeAttributes(
            filters: 5, kernelSize: [3, 2], strides: [2, 2], dilations: [1, 1], padding: .same, outputPadding: nil,
            useBias: true, activation: .linear, layout: .channelsLast)), ["image"],
            parameters: [("kernel", [3, 2, 5, 3]), ("bias", [5])])
        sketch.outputs = ["deconv"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.parameters["deconv/kernel"]?.shape, [3, 5, 3, 2])
        let old = try parameterValues(sketch.graph, "deconv/kernel")
        let new = try parameterValues(graph, "deconv/kernel")
        for index in allIndices([3, 5, 3, 2]) {
            let (i, o, y, x) = (index[0], index[1], index[2], index[3])
            XCTAssertEqual(new[offset(index, in: [3, 5, 3, 2])], old[offset([y, x, o, i], in: [3, 2, 5, 3])])
        }
    }

    /// Flatten -> Dense: the Flatten goes channels-first (no Transpose) and the Dense rows move from
    /// Keras's (h, w, c) numbering to (c, h, w): new row c·H·W + h·W + w = old row h·W·C + w·C + c.
    func testFlattenThenDensePermutesDenseRows() throws {
        let (height, width, channels, units) = (3, 2, 4, 5)
        var sketch = GraphSketch(inputs: [("image", [nil, 5, 4, 3])])
        sketch.add("conv", Ops.conv(channels, kernel: [3, 3], padding: .valid), ["image"],
                   parameters: [("kernel", [3, 3, 3, channels]), ("bias", [channels])])
        sketch.add("flatten", .flatten(FlattenAttributes(layout: .channelsLast)), ["conv"])
        sketch.add("dropout", .dropout(DropoutAttributes(rate: 0.5)), ["flatten"])
        sketch.add("dense", Ops.dense(units), ["dropout"], parameters: [("kernel", [height * width * channels, units]), ("bias", [units])])
        sketch.outputs = ["dense"]
        let graph = try convert(sketch.graph)

        XCTAssertEqual(graph.transposes.map(\.name), ["image/to_channels_first"])
        XCTAssertEqual(graph.node(named: "flatten")?.op, .flatten(FlattenAttributes(layout: .channelsFirst)))
        XCTAssertEqual(graph.node(named: "flatten")?.inputs, ["conv"])
        let old = try parameterValues(sketch.graph, "dense/kernel")
        let new = try parameterValues(graph, "dense/kernel")
        for (h, w, c) in allIndices([height, width, channels]).map({ ($0[0], $0[1], $0[2]) }) {
            let oldRow = (h * width + w) * channels + c
            let newRow = (c * height + h) * width + w
            XCTAssertEqual(Array(new[(newRow * units)..<(newRow * units + units)]),
                           Array(old[(oldRow * units)..<(oldRow * units + units)]), "h \(h) w \(w) c \(c)")
        }
        try assertSameResults(sketch.graph, graph, inputs: ["image": Tensor.random([2, 5, 4, 3], seed: 3)])
    }

    /// Two Flattens joined by a Concatenate before one Dense: each permutes its own block of rows
    /// (the second block starts after the first's features and a pooled vector's).
    func testFlattensThroughConcatenatePermuteTheirBlocksOfRows() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 3, 2])])
        sketch.add("conv", Ops.conv(3, kernel: [1, 1]), ["image"], parameters: [("kernel", [1, 1, 2, 3]), ("bias", [3])])
        sketch.add("flat_a", .flatten(FlattenAttributes(layout: .channelsLast)), ["conv"])
        sketch.add("gap", Ops.globalAverage(), ["conv"])
        sketch.add("pool", .pool(PoolAttributes(kind: .max, poolSize: [2, 1], strides: [2, 1], padding: .valid,
                                                layout: .channelsLast)), ["conv"])
        sketch.add("flat_b", .flatten(FlattenAttributes(layout: .channelsLast)), ["pool"])
        sketch.add("relu", .activation(.plainRelu), ["flat_b"])
        sketch.add("cat", .concatenate(ConcatenateAttributes(axis: -1)), ["flat_a", "gap", "relu"])
        sketch.add("dense", Ops.dense(2), ["cat"], parameters: [("kernel", [36 + 3 + 18, 2]), ("bias", [2])])
        sketch.outputs = ["dense"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.map(\.name), ["image/to_channels_first"])
        let old = try parameterValues(sketch.graph, "dense/kernel")
        let new = try parameterValues(graph, "dense/kernel")
        func row(_ values: [Float], _ index: Int) -> [Float] { Array(values[(index * 2)..<(index * 2 + 2)]) }
        for (h, w, c) in allIndices([4, 3, 3]).map({ ($0[0], $0[1], $0[2]) }) {
            XCTAssertEqual(row(new, (c * 4 + h) * 3 + w), row(old, (h * 3 + w) * 3 + c))
        }
        for index in 36..<39 { XCTAssertEqual(row(new, index), row(old, index), "pooled rows stay") }
        for (h, w, c) in allIndices([2, 3, 3]).map({ ($0[0], $0[1], $0[2]) }) {
            XCTAssertEqual(row(new, 39 + (c * 2 + h) * 3 + w), row(old, 39 + (h * 3 + w) * 3 + c))
        }
        var weighted = sketch.graph
        for parameter in weighted.parameters.all {
            let values = Tensor.random([parameter.shape.checkedProduct ?? 0], seed: 5).values
            weighted.parameters[parameter.name]?.storage = TensorStorage(bytes: floatBytes(values))
        }
        try assertSameResults(weighted, try convert(weighted), inputs: ["image": Tensor.random([2, 4, 3, 2], seed: 8)])
    }

    /// When the Dense kernel is shared or the flattened value has another reader, the rows stay and
    /// the Flatten reads a Transpose back instead.
    func testFlattenWithoutSoleDenseReaderTransposesBack() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3])])
        sketch.add("conv", Ops.conv(2, kernel: [3, 3], padding: .valid), ["image"], parameters: [("kernel", [3, 3, 3, 2]), ("bias", [2])])
        sketch.add("flatten", .flatten(FlattenAttributes(layout: .channelsLast)), ["conv"])
        sketch.add("dense", Ops.dense(3), ["flatten"], parameters: [("kernel", [8, 3]), ("bias", [3])])
        sketch.call("dense#1", sharing: "dense", ["flatten"])
        sketch.outputs = ["dense", "dense#1"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.map(\.name), ["image/to_channels_first", "conv/to_channels_last"])
        XCTAssertEqual(graph.node(named: "flatten")?.op, .flatten(FlattenAttributes(layout: .channelsLast)))
        XCTAssertEqual(try parameterValues(graph, "dense/kernel"), try parameterValues(sketch.graph, "dense/kernel"))
    }

    /// PReLU alpha [H, W, C] to [C, H, W]; shared axes (1-based, batch excluded) move with their axes.
    func testPReLUAlphaFollowsTheChannels() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 3, 2, 4])])
        sketch.add("conv", Ops.conv(4, kernel: [1, 1]), ["image"], parameters: [("kernel", [1, 1, 4, 4]), ("bias", [4])])
        sketch.add("prelu", .prelu(PReLUAttributes(sharedAxes: [])), ["conv"], parameters: [("alpha", [3, 2, 4])])
        sketch.add("prelu_shared", .prelu(PReLUAttributes(sharedAxes: [1, 2])), ["prelu"], parameters: [("alpha", [1, 1, 4])])
        sketch.add("gap", Ops.globalAverage(), ["prelu_shared"])
        sketch.outputs = ["gap"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.count, 1)
        XCTAssertEqual(graph.node(named: "prelu_shared")?.op, .prelu(PReLUAttributes(sharedAxes: [2, 3])))
        XCTAssertEqual(graph.parameters["prelu_shared/alpha"]?.shape, [4, 1, 1])
        XCTAssertEqual(try parameterValues(graph, "prelu_shared/alpha"), try parameterValues(sketch.graph, "prelu_shared/alpha"))
        let old = try parameterValues(sketch.graph, "prelu/alpha")
        let new = try parameterValues(graph, "prelu/alpha")
        XCTAssertEqual(graph.parameters["prelu/alpha"]?.shape, [4, 3, 2])
        for index in allIndices([4, 3, 2]) {
            XCTAssertEqual(new[offset(index, in: [4, 3, 2])], old[offset([index[1], index[2], index[0]], in: [3, 2, 4])])
        }
    }

    /// The pass reads no weight: the new kernel reads the old one once, when its bytes are asked for.
    func testWeightsAreReadOnlyWhenAskedFor() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3])])
        sketch.add("conv", Ops.conv(2, kernel: [3, 3], useBias: false), ["image"], parameters: [("kernel", [3, 3, 3, 2])])
        sketch.outputs = ["conv"]
        let counting = CountingSource(bytes: floatBytes(count: 54))
        let original = TensorStorage(source: counting)
        var graph = sketch.graph
        graph.parameters["conv/kernel"]?.storage = original
        var converted = graph
        try ChannelsFirstLayoutPass().run(&converted)
        try converted.verify()
        XCTAssertEqual(counting.reads, 0, "converting must not read weights")
        let storage = try XCTUnwrap(converted.parameters["conv/kernel"]?.storage)
        XCTAssertFalse(storage === original)
        XCTAssertEqual(storage.byteCount, 54 * 4)
        _ = try storage.bytes()
        _ = try storage.bytes()
        XCTAssertEqual(counting.reads, 1)
        XCTAssertFalse(original.isLoaded, "the source graph's storage does not keep a second copy")
        XCTAssertEqual(graph.parameters["conv/kernel"]?.shape, [3, 3, 3, 2], "the source graph is unchanged")
    }

    /// A small network with every kind of kernel change computes the same outputs before and after.
    func testConvertedGraphComputesTheSameOutputs() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 6, 5, 3])])
        sketch.add("conv", Ops.conv(4, kernel: [3, 3], strides: [2, 1], activation: .plainRelu), ["image"],
                   parameters: [("kernel", [3, 3, 3, 4]), ("bias", [4])])
        sketch.add("grouped", Ops.conv(6, kernel: [2, 2], padding: .valid, groups: 2), ["conv"],
                   parameters: [("kernel", [2, 2, 2, 6]), ("bias", [6])])
        sketch.add("dw", .depthwiseConv(Ops.depthwise(kernel: [3, 3], multiplier: 2)), ["grouped"],
                   parameters: [("depthwise_kernel", [3, 3, 6, 2]), ("bias", [12])])
        sketch.add("bn", Ops.batchNormalization, ["dw"], parameters: Ops.batchNormalizationRoles(12))
        sketch.add("sep", .separableConv(SeparableConvAttributes(filters: 5, depthwise: Ops.depthwise(kernel: [2, 2], multiplier: 3))),
                   ["bn"], parameters: [("depthwise_kernel", [2, 2, 12, 3]), ("pointwise_kernel", [1, 1, 36, 5]), ("bias", [5])])
        sketch.add("seg", Ops.conv(3, kernel: [1, 1], activation: .softmax(axis: -1)), ["sep"],
                   parameters: [("kernel", [1, 1, 5, 3]), ("bias", [3])])
        sketch.add("cat", .concatenate(ConcatenateAttributes(axis: -1)), ["sep", "seg"])
        sketch.add("flatten", .flatten(FlattenAttributes(layout: .channelsLast)), ["cat"])
        sketch.add("dense", Ops.dense(4), ["flatten"], parameters: [("kernel", [2 * 4 * 8, 4]), ("bias", [4])])
        sketch.add("gap", Ops.globalAverage(), ["cat"])
        sketch.outputs = ["dense", "seg", "gap"]
        var graph = sketch.graph
        // Keep the weights small so the values stay in a comfortable float range.
        for parameter in graph.parameters.all {
            let count = parameter.shape.checkedProduct ?? 0
            let values = Tensor.random([count], seed: UInt64(parameter.name.count)).values
                .map { parameter.role == .movingVariance ? abs($0) + 0.5 : $0 * 0.3 }
            graph.parameters[parameter.name]?.storage = TensorStorage(bytes: floatBytes(values))
        }
        let converted = try convert(graph)
        XCTAssertEqual(converted.transposes.map(\.name), ["image/to_channels_first", "seg/to_channels_last"])
        try assertSameResults(graph, converted, inputs: ["image": Tensor.random([2, 6, 5, 3], seed: 11)])
    }

    func assertSameResults(_ original: Graph, _ converted: Graph, inputs: [String: Tensor],
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try ReferenceEvaluator(graph: original).run(inputs)
        let actual = try ReferenceEvaluator(graph: converted).run(inputs)
        XCTAssertEqual(expected.count, actual.count, file: file, line: line)
        for (name, (a, b)) in zip(original.outputs, zip(expected, actual)) {
            XCTAssertEqual(a.shape, b.shape, name, file: file, line: line)
            XCTAssertLessThan(largestDifference(a, b), 1e-5, name, file: file, line: line)
        }
    }
}
