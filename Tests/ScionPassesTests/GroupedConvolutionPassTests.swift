import ScionIR
import XCTest

@testable import ScionPasses

/// `GroupedConvolutionPass` on its own: channels-last grouped convolutions with the Keras kernels'
/// bytes untouched (the element order already is the grouped one), names and flags carried over.
final class GroupedConvolutionPassTests: XCTestCase {
    func testDepthwiseAndSeparableBecomeGroupedConvolutionsInPlace() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 5, 5, 3])])
        sketch.add("dw", .depthwiseConv(Ops.depthwise(kernel: [3, 2], multiplier: 2)), ["image"],
                   parameters: [("depthwise_kernel", [3, 2, 3, 2]), ("bias", [6])])
        sketch.add("sep", .separableConv(SeparableConvAttributes(filters: 3, depthwise: DepthwiseConvAttributes(
            kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same, depthMultiplier: 1, useBias: true,
            activation: .plainRelu, layout: .channelsLast))), ["dw"],
            parameters: [("depthwise_kernel", [3, 3, 6, 1]), ("pointwise_kernel", [1, 1, 6, 3]), ("bias", [3])], trainable: false)
        sketch.outputs = ["sep"]
        var graph = sketch.graph
        try GroupedConvolutionPass().run(&graph)
        try graph.verify()

        XCTAssertEqual(graph.nodes.map(\.name), ["dw", "sep/depthwise", "sep"])
        XCTAssertEqual(graph.node(named: "dw")?.op, .conv(ConvAttributes(
            filters: 6, kernelSize: [3, 2], strides: [1, 1], dilations: [1, 1], padding: .same, groups: 3, useBias: true,
            layout: .channelsLast)))
        XCTAssertEqual(graph.node(named: "sep/depthwise")?.op, .conv(ConvAttributes(
            filters: 6, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1], padding: .same, groups: 6, useBias: false,
            layout: .channelsLast)))
        XCTAssertEqual(graph.node(named: "sep")?.op, .conv(ConvAttributes(
            filters: 3, kernelSize: [1, 1], strides: [1, 1], dilations: [1, 1], padding: .valid, groups: 1, useBias: true,
            activation: .plainRelu, layout: .channelsLast)))
        XCTAssertEqual(graph.node(named: "sep")?.outputs, ["sep"])
        XCTAssertEqual(graph.node(named: "sep")?.inputs, graph.node(named: "sep/depthwise")?.outputs)
        XCTAssertEqual(graph.node(named: "sep/depthwise")?.trainable, false)
        XCTAssertEqual(graph.parameters["dw/depthwise_kernel"]?.shape, [3, 2, 1, 6])
        XCTAssertEqual(graph.parameters["sep/depthwise_kernel"]?.shape, [3, 3, 1, 6])
        XCTAssertEqual(graph.parameters["sep/pointwise_kernel"]?.shape, [1, 1, 6, 3])
        XCTAssertEqual(Set(graph.parameters.all.filter { $0.name.hasSuffix("_kernel") }.map(\.role)), [ParameterRole.kernel])
        for name in ["dw/depthwise_kernel", "sep/depthwise_kernel", "sep/pointwise_kernel"] {
            XCTAssertEqual(try parameterValues(graph, name), try parameterValues(sketch.graph, name), name)
        }
    }

    func testGraphsWithoutDepthwiseConvolutionsAreUnchanged() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 6, 6, 3])])
        sketch.add("conv", Ops.conv(4, kernel: [3, 3]), ["image"], parameters: [("kernel", [3, 3, 3, 4]), ("bias", [4])])
        sketch.outputs = ["conv"]
        var graph = sketch.graph
        try GroupedConvolutionPass().run(&graph)
        XCTAssertEqual(graph.nodes, sketch.graph.nodes)
    }
}
