import ScionIR
@testable import ScionPasses
import XCTest

/// ONNX-style (channels-first) graphs to Keras layers: structure, kernels, and, through the
/// reference evaluator, the same outputs for the same inputs. Real exporters' files are checked
/// against Keras itself in Tests/Interop/check_onnx_keras.py.
final class KerasLayersPassTests: XCTestCase {
    /// A channels-first sketch, as the ONNX importer marks its graphs.
    func onnxGraph(_ sketch: GraphSketch) -> Graph {
        var graph = sketch.graph
        graph.layout = .channelsFirst
        return graph
    }

    func cfConv(_ filters: Int, kernel: [Int] = [3, 3], strides: [Int] = [1, 1], pads: [Int], groups: Int = 1) -> Op {
        .conv(ConvAttributes(filters: filters, kernelSize: kernel, strides: strides, dilations: kernel.map { _ in 1 },
                             padding: .explicit(pads), groups: groups, useBias: true, layout: .channelsFirst))
    }

    func toKeras(_ original: Graph, channelsLastInputs: Bool = false) throws -> Graph {
        var graph = original
        try KerasLayersPass(channelsLastInputs: channelsLastInputs).run(&graph)
        try graph.verify()
        XCTAssertEqual(graph.layout, .channelsLast)
        XCTAssertEqual(graph.outputs, original.outputs)
        XCTAssertEqual(graph.nodes.filter { $0.op.spatialLayout == .channelsFirst }.map(\.name), [])
        return graph
    }

    func assertSameOutputs(_ source: Graph, _ converted: Graph, input: Tensor, convertedInput: Tensor? = nil,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let name = source.inputs[0].name
        let expected = try ReferenceEvaluator(graph: source).run([name: input])
        let got = try ReferenceEvaluator(graph: converted).run([name: convertedInput ?? input])
        XCTAssertEqual(got.map(\.shape), expected.map(\.shape), file: file, line: line)
        for (a, b) in zip(got, expected) {
            let scale = b.values.map(abs).max() ?? 1
            let worst = zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, file: file, line: line)
        }
    }

    /// torch's classic head: Conv (pads 1) → BatchNormalization → Relu → Flatten → Gemm(transB).
    func torchStyle() -> Graph {
        var sketch = GraphSketch(inputs: [("image", [2, 3, 6, 6])])
        let conv = sketch.add("conv", cfConv(4, pads: [1, 1, 1, 1]), ["image"], parameters: [("kernel", [4, 3, 3, 3]), ("bias", [4])])
        let bn = sketch.add("bn", .batchNormalization(BatchNormalizationAttributes(axis: 1, epsilon: 1e-5, momentum: 0.9,
                                                                                   center: true, scale: true)),
                            [conv], parameters: Ops.batchNormalizationRoles(4))
        let relu = sketch.add("relu", .activation(.plainRelu), [bn])
        let flat = sketch.add("flatten", .flatten(FlattenAttributes(layout: .channelsFirst)), [relu])
        sketch.add("fc", .onnx(.gemm(GemmAttributes(transposeB: true))), [flat], parameters: [("kernel", [5, 144]), ("bias", [5])])
        sketch.outputs = ["fc"]
        return onnxGraph(sketch)
    }

    func testTorchStyleHeadBecomesKerasLayersWithOneEntryPermute() throws {
        let source = torchStyle()
        let graph = try toKeras(source)
        XCTAssertEqual(graph.nodes.map(\.op.typeName),
                       ["Transpose", "Conv2D", "BatchNormalization", "ReLU", "Flatten", "Dense"])
        XCTAssertEqual(graph.nodes[0].inputs, ["image"])
        guard case .conv(let conv) = graph.nodes[1].op, case .batchNormalization(let bn) = graph.nodes[2].op,
              case .dense(let dense) = graph.nodes[5].op else { return XCTFail("ops") }
        XCTAssertEqual(conv.padding, .same, "pads of 1 on a 3x3 stride-1 kernel are Keras's 'same'")
        XCTAssertEqual(bn.axis, -1)
        XCTAssertEqual(dense.units, 5)
        XCTAssertEqual(graph.parameters["conv/kernel"]?.shape, [3, 3, 3, 4])
        XCTAssertEqual(graph.parameters["fc/kernel"]?.shape, [144, 5])
        try assertSameOutputs(source, graph, input: Tensor.random([2, 3, 6, 6], seed: 1))
    }

    func testChannelsLastInputsDropTheEntryPermute() throws {
        let source = torchStyle()
        let graph = try toKeras(source, channelsLastInputs: true)
        XCTAssertEqual(graph.inputs[0].shape, Shape([2, 6, 6, 3]))
        XCTAssertEqual(graph.nodes.filter { $0.op.typeName == "Transpose" }.count, 0)
        let input = Tensor.random([2, 3, 6, 6], seed: 2)
        try assertSameOutputs(source, graph, input: input,
                              convertedInput: ReferenceEvaluator(graph: graph).transpose(input, [0, 2, 3, 1]))
    }

    /// Pads Keras's 'same' would place differently (stride 2: TensorFlow pads the end only) become a
    /// ZeroPadding2D in front of a 'valid' convolution.
    func testPaddingKerasCannotSayBecomesZeroPadding() throws {
        var sketch = GraphSketch(inputs: [("x", [1, 2, 6, 6])])
        sketch.add("conv", cfConv(3, strides: [2, 2], pads: [1, 1, 1, 1]), ["x"], parameters: [("kernel", [3, 2, 3, 3]), ("bias", [3])])
        sketch.outputs = ["conv"]
        let source = onnxGraph(sketch)
        let graph = try toKeras(source)
        XCTAssertEqual(graph.nodes.map(\.op.typeName), ["Transpose", "ZeroPadding2D", "Conv2D", "Transpose"])
        guard case .zeroPadding(let pad) = graph.nodes[1].op, case .conv(let conv) = graph.nodes[2].op else { return XCTFail("ops") }
        XCTAssertEqual(pad.padding, [[1, 1], [1, 1]])
        XCTAssertEqual(conv.padding, .valid)
        XCTAssertEqual(graph.nodes.last?.outputs, ["conv"], "the output keeps its name and its NCHW order")
        try assertSameOutputs(source, graph, input: Tensor.random([1, 2, 6, 6], seed: 3))
    }

    /// A Conv with one group per input channel is a DepthwiseConv2D; kernel `[C·m, 1, kh, kw]`
    /// becomes `[kh, kw, C, m]`.
    func testGroupedConvolutionPerChannelIsDepthwise() throws {
        var sketch = GraphSketch(inputs: [("x", [1, 2, 5, 5])])
        sketch.add("dw", cfConv(4, pads: [1, 1, 1, 1], groups: 2), ["x"], parameters: [("kernel", [4, 1, 3, 3]), ("bias", [4])])
        sketch.outputs = ["dw"]
        let graph = try toKeras(onnxGraph(sketch))
        guard case .depthwiseConv(let a) = graph.nodes[1].op else { return XCTFail("not depthwise: \(graph.nodes[1].op)") }
        XCTAssertEqual(a.depthMultiplier, 2)
        let kernel = try parameterValues(graph, "dw/kernel")
        XCTAssertEqual(graph.parameters["dw/kernel"]?.shape, [3, 3, 2, 2])
        XCTAssertEqual(graph.parameters["dw/kernel"]?.role, .depthwiseKernel)
        // Keras [y, x, c, m] is ONNX filter c·2 + m at (y, x): element ((c·2 + m)·3 + y)·3 + x.
        for (y, x, c, m) in [(0, 0, 0, 0), (1, 2, 1, 0), (2, 1, 0, 1), (2, 2, 1, 1)] {
            XCTAssertEqual(kernel[offset([y, x, c, m], in: [3, 3, 2, 2])], Float(((c * 2 + m) * 3 + y) * 3 + x))
        }
    }

    /// tf2onnx keeps the NHWC interface with a Transpose on each side: both disappear.
    func testLayoutTransposesAroundConvolutionsCostNothing() throws {
        var sketch = GraphSketch(inputs: [("x", [1, 5, 5, 2])])
        let nchw = sketch.add("to_nchw", .transpose(TransposeAttributes(permutation: [0, 3, 1, 2])), ["x"])
        let conv = sketch.add("conv", cfConv(3, pads: [1, 1, 1, 1]), [nchw], parameters: [("kernel", [3, 2, 3, 3]), ("bias", [3])])
        sketch.add("y", .transpose(TransposeAttributes(permutation: [0, 2, 3, 1])), [conv])
        sketch.outputs = ["y"]
        let source = onnxGraph(sketch)
        let graph = try toKeras(source)
        XCTAssertEqual(graph.nodes.map(\.op.typeName), ["Conv2D", "Identity"])
        XCTAssertEqual(graph.nodes[0].inputs, ["x"])
        try assertSameOutputs(source, graph, input: Tensor.random([1, 5, 5, 2], seed: 4))
    }

    /// Zero padding in front of a max pooling is exact only for values that cannot be negative; over
    /// others the padding is a keras.ops Pad with float32's lowest value (ONNX's is -inf).
    func testMaxPoolPaddingIsZerosOnlyForNonNegativeInput() throws {
        func graph(afterRelu: Bool) -> Graph {
            var sketch = GraphSketch(inputs: [("x", [1, 2, 6, 6])])
            let input = afterRelu ? sketch.add("relu", .activation(.plainRelu), ["x"]) : "x"
            sketch.add("pool", .pool(PoolAttributes(kind: .max, poolSize: [3, 3], strides: [2, 2], padding: .explicit([1, 1, 1, 1]),
                                                    layout: .channelsFirst)), [input])
            sketch.outputs = ["pool"]
            return onnxGraph(sketch)
        }
        let source = graph(afterRelu: true)
        let converted = try toKeras(source)
        XCTAssertEqual(converted.nodes.map(\.op.typeName), ["Transpose", "ReLU", "ZeroPadding2D", "MaxPooling2D", "Transpose"])
        try assertSameOutputs(source, converted, input: Tensor.random([1, 2, 6, 6], seed: 5))
        let signed = graph(afterRelu: false)
        let padded = try toKeras(signed)
        XCTAssertEqual(padded.nodes.map(\.op.typeName), ["Transpose", "Pad", "MaxPooling2D", "Transpose"])
        XCTAssertEqual(padded.nodes[1].op, .onnx(.pad(PadAttributes(pads: [0, 1, 1, 0, 0, 1, 1, 0], mode: .constant,
                                                                   value: -Float.greatestFiniteMagnitude))))
        try assertSameOutputs(signed, padded, input: Tensor.random([1, 2, 6, 6], seed: 5))
    }

    func testNodeWithoutKerasLayerIsNamedWithItsOp() throws {
        var sketch = GraphSketch(inputs: [("x", [2, 4])])
        sketch.add("lrn", .onnx(.localResponseNormalization(LocalResponseNormalizationAttributes(size: 3, alpha: 1e-4, beta: 0.75, bias: 1))),
                   ["x"])
        sketch.outputs = ["lrn"]
        var graph = onnxGraph(sketch)
        XCTAssertThrowsError(try KerasLayersPass().run(&graph)) { error in
            XCTAssertEqual((error as? PassError)?.subject, "lrn")
            XCTAssertTrue("\(error)".contains("LRN has no Keras layer"), "\(error)")
        }
    }

    /// MatMul by a constant, then Add of a constant bias: one Dense with that bias; x·σ(x): swish.
    func testMatMulAddAndSwishPatterns() throws {
        var sketch = GraphSketch(inputs: [("x", [2, 4])])
        let matmul = sketch.add("matmul", .onnx(.matMul), ["x"], parameters: [("kernel", [4, 3])])
        let bias = sketch.add("b", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: [("value", [3])])
        let add = sketch.add("add", .elementwise(.add), [matmul, bias])
        let gate = sketch.add("gate", .activation(.sigmoid), [add])
        sketch.add("swish", .elementwise(.multiply), [add, gate])
        sketch.outputs = ["swish"]
        let graph = try toKeras(onnxGraph(sketch))
        XCTAssertEqual(graph.nodes.map(\.op.typeName), ["Dense", "Activation"])
        XCTAssertEqual(graph.nodes[0].parameters, ["matmul/kernel", "b/value"])
        XCTAssertEqual(graph.parameters["b/value"]?.role, .bias)
        XCTAssertEqual(graph.nodes[1].op, .activation(.swish))
    }

    /// torchvision's DenseNet: the first layer of each dense block concatenates a list of one
    /// (`torch.cat([x], 1)`), which Keras 3 refuses as a Concatenate when it reads a legacy .h5. The
    /// Concat goes; as the model's output, the input's producer takes its name; reading a graph
    /// input directly, it stays as an Identity layer.
    func testConcatOfOneInputLeavesNoConcatenate() throws {
        var sketch = GraphSketch(inputs: [("image", [2, 3, 4, 4])])
        let conv = sketch.add("conv", cfConv(4, pads: [1, 1, 1, 1]), ["image"], parameters: [("kernel", [4, 3, 3, 3]), ("bias", [4])])
        let single = sketch.add("cat_one", .concatenate(ConcatenateAttributes(axis: 1)), [conv])
        let relu = sketch.add("relu", .activation(.plainRelu), [single])
        let both = sketch.add("cat_two", .concatenate(ConcatenateAttributes(axis: 1)), [single, relu])
        sketch.add("cat_out", .concatenate(ConcatenateAttributes(axis: 1)), [both])
        sketch.outputs = ["cat_out"]
        let source = onnxGraph(sketch)
        let graph = try toKeras(source)
        XCTAssertEqual(graph.nodes.filter { $0.op.typeName == "Concatenate" }.map(\.inputs.count), [2])
        XCTAssertNil(graph.node(named: "cat_one"))
        XCTAssertNil(graph.node(named: "cat_out"), "the output keeps its name on the two-input Concatenate's output")
        try assertSameOutputs(source, graph, input: Tensor.random([2, 3, 4, 4], seed: 3))

        var direct = GraphSketch(inputs: [("x", [2, 4])])
        direct.add("cat", .concatenate(ConcatenateAttributes(axis: 1)), ["x"])
        direct.outputs = ["cat"]
        XCTAssertEqual(try toKeras(onnxGraph(direct)).nodes.map(\.op), [.identity])
    }

    func testKerasGraphsAreLeftAlone() throws {
        var sketch = GraphSketch(inputs: [("x", [nil, 4])])
        sketch.add("dense", Ops.dense(2), ["x"], parameters: [("kernel", [4, 2]), ("bias", [2])])
        sketch.outputs = ["dense"]
        var graph = sketch.graph
        let before = graph.nodes
        try KerasLayersPass().run(&graph)
        XCTAssertEqual(graph.nodes, before)
    }
}
