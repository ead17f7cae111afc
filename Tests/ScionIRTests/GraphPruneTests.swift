import ScionIR
import XCTest

/// `prune(keepingOutputs:)` and the cleanup helpers it is made of, on the small CNN of GraphTests.
final class GraphPruneTests: XCTestCase {
    func testPruneKeepsWhatTheNewOutputNeeds() throws {
        var graph = smallCNN()
        try graph.prune(keepingOutputs: ["relu"])
        XCTAssertEqual(graph.outputs, ["relu"])
        XCTAssertEqual(graph.nodes.map(\.name), ["conv", "bn", "relu"])
        XCTAssertEqual(graph.parameters.names, ["conv/kernel", "conv/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"])
        XCTAssertEqual(graph.inputs.map(\.name), ["image"])
        // Shapes are recomputed: what was removed has none any more.
        XCTAssertEqual(graph.values["relu"]?.shape, Shape([nil, 8, 8, 4]))
        XCTAssertNil(graph.values["dense"])
        try graph.verify()
    }

    func testPruneDropsInputsAndScopesNothingKeptReads() throws {
        var graph = smallCNN()
        graph.inputs.append(ValueInfo(name: "mask", shape: Shape([nil, 2]), dtype: .float32))
        graph.nodes.append(Node(name: "head/scale", op: .elementwise(.multiply), inputs: ["dense", "mask"], outputs: ["scaled"],
                                scope: "head"))
        graph.submodels = [Submodel(path: "head", type: "Functional", trainable: true)]
        graph.outputs = ["scaled"]
        try graph.verify()

        var pruned = graph
        try pruned.prune(keepingOutputs: ["dense"])
        XCTAssertEqual(pruned.inputs.map(\.name), ["image"])
        XCTAssertEqual(pruned.submodels, [])
        XCTAssertEqual(pruned.nodes.count, 5)

        // A scope survives while a node (or a node of a scope inside it) remains.
        graph.nodes[4].scope = "head/inner"
        try graph.prune(keepingOutputs: ["scaled"])
        XCTAssertEqual(graph.submodels.map(\.path), ["head"])
    }

    func testRemoveUnusedParametersKeepsTheOthersInOrder() {
        var graph = smallCNN()
        graph.parameters.add(Parameter(name: "orphan", role: .kernel, shape: [2], dtype: .float32, trainable: true,
                                       storage: TensorStorage(bytes: [UInt8](repeating: 0, count: 8))))
        graph.nodes.removeAll { $0.name == "bn" }
        graph.removeUnusedParameters()
        XCTAssertEqual(graph.parameters.names, ["conv/kernel", "conv/bias", "dense/kernel", "dense/bias"])
    }
}
