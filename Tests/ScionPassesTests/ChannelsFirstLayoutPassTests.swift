import ScionIR
import XCTest

@testable import ScionPasses

/// Where the pass puts Transposes and how it rewrites attributes, on small hand-built graphs.
final class ChannelsFirstLayoutPassTests: XCTestCase {
    /// image -> conv -> bn -> relu -> conv -> gap -> dense: one Transpose, right after the input.
    func testClassifierGetsOneTransposeAtTheInput() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 8, 8, 3])])
        sketch.add("conv1", Ops.conv(4, kernel: [3, 3]), ["image"], parameters: [("kernel", [3, 3, 3, 4]), ("bias", [4])])
        sketch.add("bn", Ops.batchNormalization, ["conv1"], parameters: Ops.batchNormalizationRoles(4))
        sketch.add("relu", .activation(.plainRelu), ["bn"])
        sketch.add("conv2", Ops.conv(6, kernel: [3, 3], strides: [2, 2]), ["relu"],
                   parameters: [("kernel", [3, 3, 4, 6]), ("bias", [6])])
        sketch.add("gap", Ops.globalAverage(), ["conv2"])
        sketch.add("dense", Ops.dense(2, activation: .softmax(axis: -1)), ["gap"], parameters: [("kernel", [6, 2]), ("bias", [2])])
        sketch.outputs = ["dense"]
        let graph = try convert(sketch.graph)

        XCTAssertEqual(graph.transposes.map(\.name), ["image/to_channels_first"])
        XCTAssertEqual(graph.nodes.first?.name, "image/to_channels_first")
        XCTAssertEqual(graph.nodes.first?.op, .transpose(TransposeAttributes(permutation: [0, 3, 1, 2])))
        XCTAssertEqual(graph.values["conv1"]?.shape, Shape([nil, 4, 8, 8]))
        XCTAssertEqual(graph.node(named: "bn")?.op, .batchNormalization(
            BatchNormalizationAttributes(axis: 1, epsilon: 1e-3, momentum: 0.99, center: true, scale: true)))
        // Dense on the rank-2 pooled features is untouched, its softmax included.
        XCTAssertEqual(graph.node(named: "dense"), sketch.graph.node(named: "dense"))
        XCTAssertEqual(graph.parameters["dense/kernel"]?.storage.location, "memory")
        XCTAssertEqual(graph.parameters["conv1/kernel"]?.shape, [4, 3, 3, 3])
        XCTAssertEqual(graph.parameters.names, sketch.graph.parameters.names, "parameter names and order are kept")
    }

    /// image -> conv -> conv, returned as an image: a Transpose in and one out, the output's name kept.
    func testImageOutputGetsTransposedBackUnderItsOwnName() throws {
        var sketch = GraphSketch(inputs: [("image", [2, 6, 5, 3])])
        sketch.add("conv1", Ops.conv(4, kernel: [3, 3]), ["image"], parameters: [("kernel", [3, 3, 3, 4]), ("bias", [4])])
        sketch.add("conv2", Ops.conv(2, kernel: [1, 1]), ["conv1"], parameters: [("kernel", [1, 1, 4, 2]), ("bias", [2])])
        sketch.outputs = ["conv2"]
        let graph = try convert(sketch.graph)

        XCTAssertEqual(graph.transposes.count, 2)
        XCTAssertEqual(graph.node(named: "conv2")?.outputs, ["conv2/channels_first"])
        let back = try XCTUnwrap(graph.nodes.last)
        XCTAssertEqual(back.name, "conv2/to_channels_last")
        XCTAssertEqual(back.op, .transpose(TransposeAttributes(permutation: [0, 2, 3, 1])))
        XCTAssertEqual(back.outputs, ["conv2"])
        XCTAssertEqual(graph.values["conv2"]?.shape, Shape([2, 6, 5, 2]))
    }

    /// A graph output also read inside the graph by an op needing channels-last: one Transpose back,
    /// named as the output, serves both.
    func testOutputReadInsideTheGraphIsTransposedOnce() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3])])
        sketch.add("conv", Ops.conv(2, kernel: [1, 1]), ["image"], parameters: [("kernel", [1, 1, 3, 2]), ("bias", [2])])
        sketch.add("reshape", .reshape(ReshapeAttributes(targetShape: [16, 2])), ["conv"])
        sketch.outputs = ["conv", "reshape"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.map(\.name), ["image/to_channels_first", "conv/to_channels_last"])
        XCTAssertEqual(graph.node(named: "reshape")?.inputs, ["conv"])
    }

    /// ConvNeXt: Dense and LayerNormalization on NHWC features stay a channels-last island; the
    /// residual Add joins the input that exists in both forms without a Transpose of its own.
    func testConvNeXtBlockKeepsAChannelsLastIsland() throws {
        var sketch = GraphSketch(inputs: [("x", [nil, 8, 8, 4])])
        sketch.add("dwconv", Ops.conv(4, kernel: [7, 7], groups: 4), ["x"], parameters: [("kernel", [7, 7, 1, 4]), ("bias", [4])])
        sketch.add("layernorm", .layerNormalization(LayerNormalizationAttributes(axes: [-1], epsilon: 1e-6, center: true, scale: true)),
                   ["dwconv"], parameters: [("gamma", [4]), ("beta", [4])])
        sketch.add("pointwise1", Ops.dense(16), ["layernorm"], parameters: [("kernel", [4, 16]), ("bias", [16])])
        sketch.add("gelu", .activation(.gelu(approximate: false)), ["pointwise1"])
        sketch.add("pointwise2", Ops.dense(4), ["gelu"], parameters: [("kernel", [16, 4]), ("bias", [4])])
        sketch.add("scale", .layerScale(LayerScaleAttributes()), ["pointwise2"], parameters: [("gamma", [4])])
        sketch.add("add", .elementwise(.add), ["x", "scale"])
        sketch.outputs = ["add"]
        let graph = try convert(sketch.graph)

        XCTAssertEqual(graph.transposes.map(\.name), ["x/to_channels_first", "dwconv/to_channels_last"])
        for name in ["layernorm", "pointwise1", "gelu", "pointwise2", "scale", "add"] {
            XCTAssertEqual(graph.node(named: name), sketch.graph.node(named: name).map { node in
                var expected = node
                if name == "layernorm" { expected.inputs = ["dwconv/to_channels_last"] }
                return expected
            }, "\(name) runs channels-last, unchanged")
        }
        XCTAssertEqual(graph.values["pointwise1"]?.shape, Shape([nil, 8, 8, 16]))
    }

    /// Two channels-last readers of one channels-first value share one Transpose back.
    func testTransposeBackIsSharedByReaders() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3])])
        sketch.add("conv", Ops.conv(2, kernel: [1, 1]), ["image"], parameters: [("kernel", [1, 1, 3, 2]), ("bias", [2])])
        sketch.add("dense_a", Ops.dense(3), ["conv"], parameters: [("kernel", [2, 3])], trainable: true)
        sketch.add("dense_b", Ops.dense(3), ["conv"], parameters: [("kernel", [2, 3])])
        sketch.outputs = ["dense_a", "dense_b"]
        var graph = sketch.graph
        for index in graph.nodes.indices where graph.nodes[index].name.hasPrefix("dense") {
            graph.nodes[index].op = .dense(DenseAttributes(units: 3, useBias: false))
        }
        let converted = try convert(graph)
        XCTAssertEqual(converted.transposes.map(\.name), ["image/to_channels_first", "conv/to_channels_last"])
        XCTAssertEqual(converted.node(named: "dense_a")?.inputs, ["conv/to_channels_last"])
        XCTAssertEqual(converted.node(named: "dense_b")?.inputs, ["conv/to_channels_last"])
    }

    /// Merging a channels-first value with one in the original order transposes only the odd one.
    func testMergeOfMixedLayoutsTransposesTheOddInput() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3]), ("vector", [nil, 48])])
        sketch.add("conv", Ops.conv(3, kernel: [3, 3]), ["image"], parameters: [("kernel", [3, 3, 3, 3]), ("bias", [3])])
        sketch.add("relu", .activation(.plainRelu), ["conv"])
        sketch.add("reshape", .reshape(ReshapeAttributes(targetShape: [4, 4, 3])), ["vector"])
        sketch.add("add", .elementwise(.add), ["relu", "reshape"])
        sketch.add("conv2", Ops.conv(2, kernel: [1, 1]), ["add"], parameters: [("kernel", [1, 1, 3, 2]), ("bias", [2])])
        sketch.add("gap", Ops.globalAverage(), ["conv2"])
        sketch.outputs = ["gap"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.map(\.name), ["image/to_channels_first", "reshape/to_channels_first"])
        XCTAssertEqual(graph.node(named: "add")?.inputs, ["relu", "reshape/to_channels_first"])
    }

    /// Squeeze-and-excitation: GlobalAveragePooling -> Reshape (1, 1, C) -> Conv2D -> Multiply. The
    /// reshape writes (C, 1, 1) directly: no Transpose besides the input's.
    func testSqueezeAndExcitationReshapeNeedsNoTranspose() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 6, 6, 8])])
        sketch.add("conv", Ops.conv(8, kernel: [3, 3]), ["image"], parameters: [("kernel", [3, 3, 8, 8]), ("bias", [8])])
        sketch.add("squeeze", Ops.globalAverage(), ["conv"])
        sketch.add("reshape", .reshape(ReshapeAttributes(targetShape: [1, 1, 8])), ["squeeze"])
        sketch.add("reduce", Ops.conv(2, kernel: [1, 1], activation: .plainRelu), ["reshape"],
                   parameters: [("kernel", [1, 1, 8, 2]), ("bias", [2])])
        sketch.add("expand", Ops.conv(8, kernel: [1, 1], activation: .sigmoid), ["reduce"],
                   parameters: [("kernel", [1, 1, 2, 8]), ("bias", [8])])
        sketch.add("excite", .elementwise(.multiply), ["conv", "expand"])
        sketch.add("head", Ops.conv(4, kernel: [1, 1]), ["excite"], parameters: [("kernel", [1, 1, 8, 4]), ("bias", [4])])
        sketch.add("flat", .reshape(ReshapeAttributes(targetShape: [-1])), ["head"])
        sketch.outputs = ["flat"]
        var graph = sketch.graph
        // Make the final reshape read a (1, 1, C) value: pool first.
        graph.nodes.insert(Node(name: "pool", op: Ops.globalAverage(keep: true), inputs: ["head"], outputs: ["pool"]), at: 7)
        graph.nodes[8].inputs = ["pool"]
        let converted = try convert(graph)
        XCTAssertEqual(converted.transposes.map(\.name), ["image/to_channels_first"])
        XCTAssertEqual(converted.node(named: "reshape")?.op, .reshape(ReshapeAttributes(targetShape: [8, 1, 1])))
        XCTAssertEqual(converted.node(named: "flat")?.inputs, ["pool"], "(N, C, 1, 1) reshapes like (N, 1, 1, C)")
    }

    /// Axis attributes follow the channels: softmax inside a convolution and as a layer, Concatenate
    /// on the channels and on height, per-channel Rescaling, LayerScale, Normalization.
    func testAxisAttributesAreRewritten() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 5, 3])])
        sketch.add("seg", Ops.conv(3, kernel: [1, 1], activation: .softmax(axis: -1)), ["image"],
                   parameters: [("kernel", [1, 1, 3, 3]), ("bias", [3])])
        sketch.add("softmax_h", .activation(.softmax(axis: 1)), ["seg"])
        sketch.add("cat_c", .concatenate(ConcatenateAttributes(axis: -1)), ["seg", "softmax_h"])
        sketch.add("cat_h", .concatenate(ConcatenateAttributes(axis: 1)), ["cat_c", "cat_c"])
        sketch.add("rescale", .rescaling(RescalingAttributes(scale: [1, 2, 3, 4, 5, 6], offset: [0])), ["cat_h"])
        sketch.add("rescale_scalar", .rescaling(RescalingAttributes(scale: [2], offset: [1])), ["rescale"])
        sketch.add("scale", .layerScale(LayerScaleAttributes()), ["rescale_scalar"], parameters: [("gamma", [6])])
        sketch.add("norm", .normalization(NormalizationAttributes(axes: [-1])), ["scale"],
                   parameters: [("mean", [6]), ("variance", [6])])
        sketch.add("pool", .pool(PoolAttributes(kind: .max, poolSize: [2, 2], strides: [2, 2], padding: .valid, layout: .channelsLast)),
                   ["norm"])
        sketch.add("gap", Ops.globalAverage(), ["pool"])
        sketch.outputs = ["gap"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.count, 1)
        guard case .conv(let seg) = graph.node(named: "seg")?.op else { return XCTFail("seg is not a conv") }
        XCTAssertEqual(seg.activation, .softmax(axis: 1))
        XCTAssertEqual(graph.node(named: "softmax_h")?.op, .activation(.softmax(axis: 2)))
        XCTAssertEqual(graph.node(named: "cat_c")?.op, .concatenate(ConcatenateAttributes(axis: 1)))
        XCTAssertEqual(graph.node(named: "cat_h")?.op, .concatenate(ConcatenateAttributes(axis: 2)))
        XCTAssertEqual(graph.node(named: "rescale")?.op, .rescaling(RescalingAttributes(scale: [1, 2, 3, 4, 5, 6], offset: [0], axis: 1)))
        XCTAssertEqual(graph.node(named: "rescale_scalar")?.op, .rescaling(RescalingAttributes(scale: [2], offset: [1])))
        XCTAssertEqual(graph.node(named: "scale")?.op, .layerScale(LayerScaleAttributes(axis: 1)))
        XCTAssertEqual(graph.node(named: "norm")?.op, .normalization(NormalizationAttributes(axes: [1])))
        XCTAssertEqual(graph.values["cat_h"]?.shape, Shape([nil, 6, 8, 5]))
    }

    /// A LayerNormalization over the channels transposes back; one over the time axis of a sequence
    /// stays channels-first (it is the trailing axis there, as ONNX LayerNormalization wants).
    func testLayerNormalizationRunsChannelsFirstOnlyOverTrailingAxes() throws {
        var sketch = GraphSketch(inputs: [("sequence", [nil, 10, 4])])
        sketch.add("conv", Ops.conv(6, kernel: [3]), ["sequence"], parameters: [("kernel", [3, 4, 6]), ("bias", [6])])
        sketch.add("ln_time", .layerNormalization(LayerNormalizationAttributes(axes: [1], epsilon: 1e-3, center: true, scale: true)),
                   ["conv"], parameters: [("gamma", [10]), ("beta", [10])])
        sketch.add("ln_channels", .layerNormalization(LayerNormalizationAttributes(axes: [-1], epsilon: 1e-3, center: true, scale: true)),
                   ["ln_time"], parameters: [("gamma", [6]), ("beta", [6])])
        sketch.outputs = ["ln_channels"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.node(named: "ln_time")?.op,
                       .layerNormalization(LayerNormalizationAttributes(axes: [2], epsilon: 1e-3, center: true, scale: true)))
        XCTAssertEqual(graph.node(named: "ln_channels")?.inputs, ["ln_time/to_channels_last"])
        XCTAssertEqual(graph.transposes.count, 2)
    }

    /// A rank-3 graph without spatial ops (Keras merge layers on sequences) is not touched.
    func testGraphWithoutSpatialOpsKeepsItsNodes() throws {
        var sketch = GraphSketch(inputs: [("a", [nil, 4, 6]), ("b", [nil, 4, 6])])
        sketch.add("add", .elementwise(.add), ["a", "b"])
        sketch.add("cat", .concatenate(ConcatenateAttributes(axis: -1)), ["add", "b"])
        sketch.add("flat", .flatten(FlattenAttributes(layout: .channelsLast)), ["cat"])
        sketch.outputs = ["flat", "add"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.nodes, sketch.graph.nodes)
    }

    /// Graphs already channels-first (read from ONNX) are left exactly as they are.
    func testChannelsFirstGraphIsLeftUnchanged() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 3, 8, 8])])
        sketch.add("conv", .conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1],
                                                padding: .valid, layout: .channelsFirst)),
                   ["image"], parameters: [("kernel", [4, 3, 3, 3]), ("bias", [4])])
        sketch.outputs = ["conv"]
        var graph = sketch.graph
        try ChannelsFirstLayoutPass().run(&graph)
        XCTAssertEqual(graph.nodes, sketch.graph.nodes)
        XCTAssertEqual(graph.metadata, sketch.graph.metadata)
        XCTAssertEqual(graph.layout, sketch.graph.layout)
        try graph.verify()

        var marked = GraphSketch(inputs: [("x", [nil, 3, 8])])
        marked.add("relu", .activation(.plainRelu), ["x"])
        marked.outputs = ["relu"]
        var markedGraph = marked.graph
        markedGraph.layout = .channelsFirst
        let copy = markedGraph
        try ChannelsFirstLayoutPass().run(&markedGraph)
        XCTAssertEqual(markedGraph.nodes, copy.nodes)
    }

    func testWeightsOnlyGraphIsRefused() {
        var graph = Graph(name: "weights", hasArchitecture: false)
        XCTAssertThrowsError(try ChannelsFirstLayoutPass().run(&graph)) { error in
            XCTAssertEqual((error as? PassError)?.pass, "layout-channels-first")
        }
    }

    /// New names never collide with existing ones.
    func testInsertedNamesAreUnique() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3])])
        sketch.add("image/to_channels_first", .activation(.plainRelu), ["image"])
        sketch.add("conv", Ops.conv(2, kernel: [1, 1]), ["image"], parameters: [("kernel", [1, 1, 3, 2]), ("bias", [2])])
        sketch.add("gap", Ops.globalAverage(), ["conv"])
        sketch.outputs = ["gap", "image/to_channels_first"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.map(\.name), ["image/to_channels_first_2"])
        XCTAssertEqual(graph.node(named: "conv")?.inputs, ["image/to_channels_first_2"])
    }

    /// An opaque layer reads the original order; a convolution after it transposes its output even
    /// though its shape is unknown (the convolution knows the rank).
    func testOpaqueLayerIsAnIslandOfOriginalOrder() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3])])
        sketch.add("conv", Ops.conv(3, kernel: [1, 1]), ["image"], parameters: [("kernel", [1, 1, 3, 3]), ("bias", [3])])
        sketch.add("lambda", .opaque(OpaqueAttributes(domain: "keras", type: "Lambda", configuration: "{}")), ["conv"])
        sketch.add("conv2", Ops.conv(2, kernel: [1, 1]), ["lambda"], parameters: [("kernel", [1, 1, 3, 2]), ("bias", [2])])
        sketch.outputs = ["conv2"]
        var graph = sketch.graph
        try ChannelsFirstLayoutPass().run(&graph)
        try graph.verify()
        XCTAssertEqual(graph.transposes.map(\.name),
                       ["image/to_channels_first", "conv/to_channels_last", "lambda/to_channels_first", "conv2/to_channels_last"])
        XCTAssertEqual(graph.node(named: "lambda")?.inputs, ["conv/to_channels_last"])
    }

    /// A shared convolution (two calls of one layer) has its kernel permuted once, for both calls.
    func testSharedLayerKernelIsPermutedOnce() throws {
        var sketch = GraphSketch(inputs: [("left", [nil, 5, 5, 3]), ("right", [nil, 5, 5, 3])])
        sketch.add("shared", Ops.conv(4, kernel: [3, 3], padding: .valid), ["left"],
                   parameters: [("kernel", [3, 3, 3, 4]), ("bias", [4])])
        sketch.call("shared#1", sharing: "shared", ["right"])
        sketch.add("gap", Ops.globalAverage(), ["shared"])
        sketch.add("gap2", Ops.globalAverage(), ["shared#1"])
        sketch.add("cat", .concatenate(ConcatenateAttributes(axis: -1)), ["gap", "gap2"])
        sketch.outputs = ["cat"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.count, 2)
        XCTAssertEqual(graph.parameters["shared/kernel"]?.shape, [4, 3, 3, 3])
        XCTAssertEqual(graph.node(named: "shared#1")?.parameters, ["shared/kernel", "shared/bias"])
        XCTAssertEqual(graph.parameters.count, 2)
    }

    /// BatchNormalization over the channels always runs channels-first (ONNX normalizes axis 1), even
    /// after a channels-last island; one over another axis keeps the original order.
    func testBatchNormalizationAfterAnIslandGoesChannelsFirst() throws {
        var sketch = GraphSketch(inputs: [("tokens", [nil, 4, 6])])
        sketch.add("dense", Ops.dense(5), ["tokens"], parameters: [("kernel", [6, 5]), ("bias", [5])])
        sketch.add("bn", Ops.batchNormalization, ["dense"], parameters: Ops.batchNormalizationRoles(5))
        sketch.add("bn_rows", .batchNormalization(BatchNormalizationAttributes(axis: 1, epsilon: 1e-3, momentum: 0.99,
                                                                                 center: true, scale: true)),
                   ["bn"], parameters: Ops.batchNormalizationRoles(4))
        sketch.outputs = ["bn_rows"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.transposes.map(\.name), ["dense/to_channels_first", "bn/to_channels_last"])
        XCTAssertEqual(graph.node(named: "bn")?.op, .batchNormalization(
            BatchNormalizationAttributes(axis: 1, epsilon: 1e-3, momentum: 0.99, center: true, scale: true)))
        XCTAssertEqual(graph.node(named: "bn_rows")?.inputs, ["bn/to_channels_last"])
        XCTAssertEqual(graph.node(named: "bn_rows")?.op, sketch.graph.node(named: "bn_rows")?.op)
    }
}
