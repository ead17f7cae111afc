import ScionIR
import Synchronization
import XCTest

/// A parameter whose bytes live in memory, for graphs built by hand.
func parameter(_ name: String, role: ParameterRole, shape: [Int], trainable: Bool = true) -> Parameter {
    Parameter(name: name, role: role, shape: shape, dtype: .float32, trainable: trainable,
              storage: TensorStorage(bytes: [UInt8](repeating: 0, count: (shape.checkedProduct ?? 0) * 4)))
}

/// input (N,8,8,3) -> conv 3x3 same, 4 filters -> bn -> relu -> gap -> dense 2 softmax
func smallCNN() -> Graph {
    var table = ParameterTable()
    table.add(parameter("conv/kernel", role: .kernel, shape: [3, 3, 3, 4]))
    table.add(parameter("conv/bias", role: .bias, shape: [4]))
    for role in [ParameterRole.gamma, .beta, .movingMean, .movingVariance] {
        table.add(parameter("bn/\(role.rawValue)", role: role, shape: [4], trainable: !role.isStatistic))
    }
    table.add(parameter("dense/kernel", role: .kernel, shape: [4, 2]))
    table.add(parameter("dense/bias", role: .bias, shape: [2]))
    let nodes = [
        Node(name: "conv", op: .conv(ConvAttributes(filters: 4, kernelSize: [3, 3], strides: [1, 1], dilations: [1, 1],
                                                     padding: .same, layout: .channelsLast)),
             inputs: ["image"], outputs: ["conv"], parameters: ["conv/kernel", "conv/bias"]),
        Node(name: "bn", op: .batchNormalization(BatchNormalizationAttributes(axis: -1, epsilon: 1e-3, momentum: 0.99,
                                                                            center: true, scale: true)),
             inputs: ["conv"], outputs: ["bn"],
             parameters: ["bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"]),
        Node(name: "relu", op: .activation(.plainRelu), inputs: ["bn"], outputs: ["relu"]),
        Node(name: "gap", op: .globalPool(GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsLast)),
             inputs: ["relu"], outputs: ["gap"]),
        Node(name: "dense", op: .dense(DenseAttributes(units: 2, activation: .softmax(axis: -1))),
             inputs: ["gap"], outputs: ["dense"], parameters: ["dense/kernel", "dense/bias"]),
    ]
    return Graph(name: "small", inputs: [ValueInfo(name: "image", shape: Shape([nil, 8, 8, 3]), dtype: .float32)],
                 outputs: ["dense"], nodes: nodes, parameters: table)
}

final class GraphTests: XCTestCase {
    func testVerifyInfersEveryShape() throws {
        var graph = smallCNN()
        try graph.verify()
        XCTAssertEqual(graph.values["conv"]?.shape, Shape([nil, 8, 8, 4]))
        XCTAssertEqual(graph.values["gap"]?.shape, Shape([nil, 4]))
        XCTAssertEqual(graph.values["dense"]?.shape, Shape([nil, 2]))
        XCTAssertEqual(graph.totalParameterCount, 108 + 4 + 16 + 8 + 2)
        XCTAssertEqual(graph.trainableParameterCount, 108 + 4 + 8 + 8 + 2)
    }

    func testTopologicalSortRestoresOrderOfShuffledNodes() throws {
        var graph = smallCNN()
        graph.nodes.reverse()
        try graph.sortTopologically()
        XCTAssertEqual(graph.nodes.map(\.name), ["conv", "bn", "relu", "gap", "dense"])
    }

    func testCycleIsRejectedNamingANode() {
        var graph = smallCNN()
        graph.nodes[0].inputs = ["relu"]
        XCTAssertThrowsError(try graph.verify()) { error in
            XCTAssertTrue(String(describing: error).contains("cycle"), "\(error)")
        }
    }

    func testValueProducedTwiceIsRejected() {
        var graph = smallCNN()
        graph.nodes[2].outputs = ["bn"]
        XCTAssertThrowsError(try graph.verify()) { error in
            XCTAssertTrue(String(describing: error).contains("already produced"), "\(error)")
        }
    }

    func testDanglingInputIsRejected() {
        var graph = smallCNN()
        graph.nodes[3].inputs = ["nowhere"]
        XCTAssertThrowsError(try graph.verify()) { error in
            XCTAssertEqual((error as? IRError)?.subject, "gap")
        }
    }

    func testMissingOutputIsRejected() {
        var graph = smallCNN()
        graph.outputs = ["logits"]
        XCTAssertThrowsError(try graph.verify())
    }

    func testKernelContradictingInputIsAParameterError() {
        var graph = smallCNN()
        graph.parameters["dense/kernel"] = parameter("dense/kernel", role: .kernel, shape: [5, 2])
        XCTAssertThrowsError(try graph.verify()) { error in
            let irError = error as? IRError
            XCTAssertEqual(irError?.kind, .parameter)
            XCTAssertEqual(irError?.subject, "dense")
            XCTAssertTrue(irError?.reason.contains("[5, 2]") == true, "\(error)")
        }
    }

    func testMissingWeightIsAParameterError() {
        var graph = smallCNN()
        graph.nodes[0].parameters = ["conv/bias"]
        XCTAssertThrowsError(try graph.verify()) { error in
            XCTAssertEqual((error as? IRError)?.kind, .parameter)
            XCTAssertTrue(String(describing: error).contains("kernel"))
        }
    }

    func testUnknownParameterNameIsRejected() {
        var graph = smallCNN()
        graph.nodes[4].parameters.append("ghost/kernel")
        XCTAssertThrowsError(try graph.verify())
    }

    func testOpaqueNodeGivesUnknownShapesDownstream() throws {
        var graph = smallCNN()
        graph.nodes[2].op = .opaque(OpaqueAttributes(domain: "keras", type: "MyActivation", configuration: "{}"))
        try graph.verify()
        XCTAssertNil(graph.values["relu"]?.shape)
        XCTAssertNil(graph.values["dense"]?.shape)
    }

    func testParameterTableKeepsInsertionOrderAndRefusesDuplicates() {
        var table = ParameterTable()
        XCTAssertTrue(table.add(parameter("b", role: .kernel, shape: [1])))
        XCTAssertTrue(table.add(parameter("a", role: .bias, shape: [1])))
        XCTAssertFalse(table.add(parameter("b", role: .kernel, shape: [2])))
        XCTAssertEqual(table.names, ["b", "a"])
        table["b"] = nil
        XCTAssertEqual(table.names, ["a"])
        XCTAssertNil(table["b"])
    }

    func testStorageReadsSourceOnceWhenKept() throws {
        final class CountingSource: TensorSource {
            let readCount = Mutex(0)
            var reads: Int { readCount.withLock { $0 } }
            let byteCount = 4
            let location = "test"
            func readBytes() throws -> [UInt8] { readCount.withLock { $0 += 1 }; return [1, 2, 3, 4] }
        }
        let source = CountingSource()
        let storage = TensorStorage(source: source)
        XCTAssertFalse(storage.isLoaded)
        XCTAssertEqual(storage.byteCount, 4)
        XCTAssertEqual(source.reads, 0)
        _ = try storage.bytes(keep: false)
        XCTAssertFalse(storage.isLoaded)
        _ = try storage.bytes()
        _ = try storage.bytes()
        XCTAssertEqual(source.reads, 2)
        XCTAssertTrue(storage.isLoaded)
    }

    func testShapeDescriptionUsesKerasNotation() {
        XCTAssertEqual(Shape([nil, 224, 224, 3]).description, "(None, 224, 224, 3)")
        XCTAssertEqual(Shape([nil]).description, "(None,)")
        XCTAssertNil(Shape([nil, 3]).elementCount)
        XCTAssertNil(Shape([Int.max, 2]).elementCount)
    }
}
