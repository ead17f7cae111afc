import Foundation
import ScionIR
import XCTest

@testable import ScionKeras

/// Keras's TimeDistributed, read as the inner op per step (KerasTimeDistributed) and written back as
/// the wrapper (KerasTimeDistributedGroup). Numbers against Keras are in FixtureRunTests,
/// check_keras.py and check_onnx.py; these tests pin the structure and the refusals.
final class TimeDistributedTests: XCTestCase {
    /// Both fixtures in every format: a Conv2D, a pooling and a Flatten fold the frames into the batch;
    /// a Dense or Dropout reads the sequence directly; the inner weights take the inner roles.
    func testFixturesExpandIntoOneGroupPerWrapper() throws {
        for file in ["keras3/time_distributed_frames.keras", "keras3/time_distributed_frames.h5", "keras2/time_distributed_frames.h5"] {
            let graph = try readKeras(Repository.fixtures.appendingPathComponent(file))
            let conv = graph.nodes.filter { $0.layer == "frame_conv" }
            XCTAssertEqual(conv.map(\.name), ["frame_conv_fold", "frame_conv_step", "frame_conv"], file)
            XCTAssertEqual(conv.first?.op, .reshape(ReshapeAttributes(targetShape: [-1, 16, 16, 3], includesBatch: true)), file)
            XCTAssertEqual(conv.last?.op, .reshape(ReshapeAttributes(targetShape: [-1, 4, 14, 14, 4], includesBatch: true)), file)
            XCTAssertEqual(graph.parameters(of: conv[1]).map(\.role), [.kernel, .bias], file)
            let dense = graph.nodes.filter { $0.layer == "frame_dense" }
            XCTAssertEqual(dense.count, 1, file)
            if case .dense = dense.first?.op {} else { XCTFail("\(file): frame_dense is \(String(describing: dense.first?.op))") }
            XCTAssertEqual(graph.values["frame_flatten"]?.shape, Shape([nil, 4, 196]), file)
            let groups = KerasTimeDistributedGroup.groups(in: graph)
            XCTAssertEqual(groups.values.map(\.members.count).sorted(), [1, 3, 3, 3], file)
        }
    }

    /// A graph with one TimeDistributed layer as the builder leaves it (opaque, weights bound).
    func wrapped(_ inner: String, input: [Int?]) -> Graph {
        let config = #"{"name": "td", "layer": \#(inner)}"#
        var graph = Graph(name: "m", inputs: [ValueInfo(name: "x", shape: Shape(input), dtype: .float32)], outputs: ["td"],
                          layout: .channelsLast)
        graph.nodes = [Node(name: "td", op: .opaque(OpaqueAttributes(domain: "keras", type: "TimeDistributed", configuration: config)),
                            inputs: ["x"], outputs: ["td"])]
        graph.info.nodeTypes["td"] = "TimeDistributed"
        return graph
    }

    func reason(_ graph: Graph) -> String? {
        guard case .opaque(let a) = graph.nodes.first?.op else { return nil }
        return a.unreadReason
    }

    /// What Scion cannot run per step stays as read, with a reason `run` and ONNX give by name.
    func testWhatCannotRunPerStepStaysAsReadWithItsReason() throws {
        let table = KerasLayerTable(kerasMajorVersion: 3)
        // Keras 3 normalises each step's batch on its own while training.
        var graph = wrapped(#"{"class_name": "BatchNormalization", "config": {"name": "bn"}}"#, input: [nil, 4, 6])
        try KerasTimeDistributed.expand(&graph, table: table)
        XCTAssertEqual(reason(graph), "TimeDistributed: the inner layer BatchNormalization is not run per step by Scion")
        graph = wrapped(#"{"class_name": "Sequential", "config": {"name": "cnn", "layers": []}}"#, input: [nil, 4, 6])
        try KerasTimeDistributed.expand(&graph, table: table)
        XCTAssertEqual(reason(graph), "TimeDistributed: a nested Sequential model as the inner layer is not read yet")
        graph = wrapped(#"{"class_name": "MyLayer", "config": {"name": "mine"}}"#, input: [nil, 4, 6])
        try KerasTimeDistributed.expand(&graph, table: table)
        XCTAssertEqual(reason(graph), "TimeDistributed: the inner layer MyLayer is not run per step by Scion")
        // A pooling over steps of unknown length: no Reshape can fold them.
        let pool = #"{"class_name": "MaxPooling1D", "config": {"name": "p", "pool_size": 2}}"#
        graph = wrapped(pool, input: [nil, 4, nil, 3])
        try KerasTimeDistributed.expand(&graph, table: table)
        XCTAssertEqual(reason(graph), "TimeDistributed: a step's shape (None, 3) is not fully known")
        graph = wrapped(pool, input: [nil, nil, 8, 3])
        try KerasTimeDistributed.expand(&graph, table: table)
        XCTAssertEqual(reason(graph), "TimeDistributed: both the batch and the number of steps are unknown")
    }

    /// A known batch unfolds an unknown number of steps; a Dense needs no Reshape at all.
    func testUnknownStepsUnfoldByTheBatchOrNeedNoReshape() throws {
        let table = KerasLayerTable(kerasMajorVersion: 3)
        var graph = wrapped(#"{"class_name": "MaxPooling1D", "config": {"name": "p", "pool_size": 2}}"#, input: [2, nil, 8, 3])
        try KerasTimeDistributed.expand(&graph, table: table)
        XCTAssertEqual(graph.nodes.map(\.op.typeName), ["Reshape", "MaxPooling1D", "Reshape"])
        XCTAssertEqual(graph.nodes.last?.op, .reshape(ReshapeAttributes(targetShape: [2, -1, 4, 3], includesBatch: true)))
        try graph.inferShapes()
        XCTAssertEqual(graph.values["td"]?.shape, Shape([2, nil, 4, 3]))
        graph = wrapped(#"{"class_name": "Activation", "config": {"name": "a", "activation": "tanh"}}"#, input: [nil, nil, 5])
        try KerasTimeDistributed.expand(&graph, table: table)
        XCTAssertEqual(graph.nodes.map(\.op), [.activation(.tanh)])
    }
}
