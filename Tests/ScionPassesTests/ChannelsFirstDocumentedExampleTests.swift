import ScionIR
import XCTest

@testable import ScionPasses

/// The example drawn in `ChannelsFirstLayoutPass`'s doc comment, node for node.
final class ChannelsFirstDocumentedExampleTests: XCTestCase {
    func testDocumentedExample() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 32, 32, 3])])
        sketch.add("conv", Ops.conv(16, kernel: [3, 3]), ["image"], parameters: [("kernel", [3, 3, 3, 16]), ("bias", [16])])
        sketch.add("bn", Ops.batchNormalization, ["conv"], parameters: Ops.batchNormalizationRoles(16))
        sketch.add("relu", .activation(.plainRelu), ["bn"])
        sketch.add("dw", .depthwiseConv(Ops.depthwise(kernel: [3, 3], multiplier: 1)), ["relu"],
                   parameters: [("depthwise_kernel", [3, 3, 16, 1]), ("bias", [16])])
        sketch.add("sep", .separableConv(SeparableConvAttributes(filters: 24, depthwise: Ops.depthwise(kernel: [3, 3], multiplier: 1))),
                   ["dw"], parameters: [("depthwise_kernel", [3, 3, 16, 1]), ("pointwise_kernel", [1, 1, 16, 24]), ("bias", [24])])
        sketch.add("gap", Ops.globalAverage(), ["sep"])
        sketch.add("dense", Ops.dense(10), ["gap"], parameters: [("kernel", [24, 10]), ("bias", [10])])
        sketch.outputs = ["dense", "sep"]
        let graph = try convert(sketch.graph)
        XCTAssertEqual(graph.nodes.map(\.name), ["image/to_channels_first", "conv", "bn", "relu", "dw", "sep/depthwise", "sep",
                                                 "gap", "dense", "sep/to_channels_last"])
        XCTAssertEqual(graph.node(named: "sep")?.outputs, ["sep/channels_first"])
        XCTAssertEqual(graph.values["sep/channels_first"]?.shape, Shape([nil, 24, 32, 32]))
        XCTAssertEqual(graph.values["sep"]?.shape, Shape([nil, 32, 32, 24]))
        XCTAssertEqual(graph.parameters["conv/kernel"]?.shape, [16, 3, 3, 3])
        XCTAssertEqual(graph.parameters["dw/depthwise_kernel"]?.shape, [16, 1, 3, 3])
        XCTAssertEqual(graph.parameters["sep/depthwise_kernel"]?.shape, [16, 1, 3, 3])
        XCTAssertEqual(graph.parameters["sep/pointwise_kernel"]?.shape, [24, 16, 1, 1])
        XCTAssertEqual(graph.node(named: "dense"), sketch.graph.node(named: "dense"))
    }
}
