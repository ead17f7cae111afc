import Foundation
import HDF5
import ScionIR
import XCTest

@testable import ScionKeras

/// Keras's merge layers (Add, Multiply...) line the batch up first and refuse different batch
/// sizes, where the IR's elementwise ops broadcast as numpy does (KerasMergeShapes). torch's dynamo
/// export of `nn.RNN` adds a `(1, B, H)` state to a `(B, H)` projection: written as a Keras Add layer,
/// `keras.models.load_model` failed with "Cannot merge tensors with different batch sizes", and
/// Scion's own reader ran that file by broadcasting. Keras 3 runs the written calls against
/// onnxruntime in Tests/Interop/check_onnx_keras.py --runtime-ops (runtime_broadcast_merges.onnx).
final class KerasMergeBroadcastTests: XCTestCase {
    /// One merge node of `operation` over inputs of these shapes, channels-last as the writers take it.
    func mergeGraph(_ operation: ElementwiseOperation, _ shapes: [[Int?]]) throws -> Graph {
        let names = shapes.indices.map { "in\($0)" }
        var graph = Graph(name: "merge", inputs: zip(names, shapes).map { ValueInfo(name: $0, shape: Shape($1), dtype: .float32) },
                          outputs: ["merged"], nodes: [Node(name: "merged", op: .elementwise(operation), inputs: names, outputs: ["merged"])])
        graph.layout = .channelsLast
        try graph.inferShapes()
        return graph
    }

    func writtenLayers(_ operation: ElementwiseOperation, _ shapes: [[Int?]]) throws -> [KerasModelPlan.PlannedLayer] {
        try KerasModelPlan(graph: mergeGraph(operation, shapes), file: "merge.keras").layers.filter { !$0.isInput }
    }

    func testBatchBroadcastIsWrittenAsAKerasOpsCall() throws {
        // dynamo's fixed batch of 2, then a symbolic batch: the state's leading 1 is not the batch.
        for shapes: [[Int?]] in [[[1, 2, 6], [2, 6]], [[1, nil, 6], [nil, 6]], [[2, 6], [1, 2, 6]]] {
            let layers = try writtenLayers(.add, shapes)
            XCTAssertEqual(layers.count, 1, "\(shapes)")
            let add = try XCTUnwrap(layers.first)
            XCTAssertEqual(add.specification.className, "Add")
            XCTAssertEqual(add.specification.module, "keras.src.ops.numpy", "keras.ops.add broadcasts as numpy; the Add layer refuses \(shapes)")
            XCTAssertEqual(add.specification.arguments, [.tensor, .tensor])
            XCTAssertEqual(add.calls, [["in0", "in1"]])
        }
    }

    func testMergesKerasComputesAsNumpyStayMergeLayers() throws {
        for shapes: [[Int?]] in [[[nil, 7, 6], [nil, 7, 6]], [[nil, 1, 6], [nil, 7, 6]], [[2, 7, 6], [2, 7, 1]], [[nil, 6], [2, 6]]] {
            let layers = try writtenLayers(.add, shapes)
            let add = try XCTUnwrap(layers.first)
            XCTAssertEqual(layers.count, 1)
            XCTAssertEqual(add.specification.module, "keras.layers", "\(shapes) is one batch: keras.layers.Add")
            XCTAssertFalse(add.specification.isOperation)
        }
        // A batch of 1 beside an unknown one may broadcast the batch itself.
        XCTAssertTrue(try XCTUnwrap(try writtenLayers(.multiply, [[1, 7, 6], [nil, 7, 6]]).first).specification.isOperation)
        // Different ranks: Keras would expand the lower one at axis 1, numpy lines the axes up from the end.
        XCTAssertTrue(try XCTUnwrap(try writtenLayers(.maximum, [[nil, 5, 3], [3]]).first).specification.isOperation)
    }

    func testAverageAndSumOfSeveralBroadcastInputsAreChainedCalls() throws {
        let layers = try writtenLayers(.average, [[1, 2, 6], [2, 6], [2, 6]])
        XCTAssertEqual(layers.map(\.specification.className), ["Add", "Add", "TrueDivide"])
        XCTAssertEqual(layers.map(\.calls), [[["in0", "in1"]], [["merged#step0", "in2"]], [["merged#step1"]]])
        XCTAssertEqual(layers[2].specification.arguments, [.tensor, .constant(.number(3))], "Keras's Average: the sum over the count")
    }

    func testShapesThatDoNotBroadcastAreRefusedNamingTheNode() throws {
        var graph = try mergeGraph(.add, [[2, 6], [2, 6]])
        graph.inputs[1] = ValueInfo(name: "in1", shape: Shape([1, 3, 6]), dtype: .float32)
        graph.values["in1"] = graph.inputs[1]
        XCTAssertThrowsError(try KerasModelPlan(graph: graph, file: "merge.keras")) { error in
            XCTAssertTrue("\(error)".contains("merge.keras: merged: Add of shapes (2, 6) and (1, 3, 6) does not broadcast"), "\(error)")
        }
    }

    // MARK: Reading merge layers as Keras runs them

    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A Keras 3 `.h5` of inputs `a` and `b` of these batch shapes merged by a `keras.layers.Add`.
    func addLayerFile(_ first: String, _ second: String) throws -> String {
        func input(_ name: String, _ shape: String) -> String {
            #"{"class_name": "InputLayer", "name": "\#(name)", "config": {"name": "\#(name)", "batch_shape": \#(shape)}, "inbound_nodes": []}"#
        }
        func tensor(_ name: String, _ shape: String) -> String {
            #"{"class_name": "__keras_tensor__", "config": {"shape": \#(shape), "dtype": "float32", "keras_history": ["\#(name)", 0, 0]}}"#
        }
        let add = #"{"module": "keras.layers", "class_name": "Add", "name": "state_add", "config": {"name": "state_add"}, "#
            + #""inbound_nodes": [{"args": [[\#(tensor("a", first)), \#(tensor("b", second))]], "kwargs": {}}]}"#
        let config = #"{"class_name": "Functional", "config": {"name": "m", "layers": [\#(input("a", first)), \#(input("b", second)), \#(add)], "#
            + #""input_layers": [["a", 0, 0], ["b", 0, 0]], "output_layers": [["state_add", 0, 0]]}}"#
        let path = directory.appendingPathComponent("\(UUID().uuidString).h5").path
        let file = try HDF5File(creating: path)
        try file.root.setStringAttribute("model_config", config)
        try file.root.setStringAttribute("keras_version", "3.15.1")
        let weights = try file.root.createGroup("model_weights")
        try weights.setStringArrayAttribute("layer_names", [])
        try file.flush()
        return path
    }

    func testAddLayerOfDifferentBatchSizesIsRefusedAsKerasRefusesIt() throws {
        // What Scion wrote for dynamo's RNN before: Keras's load_model refuses it, and so does Scion.
        let path = try addLayerFile("[1, 2, 6]", "[2, 6]")
        XCTAssertThrowsError(try KerasModelReader.readHDF5(at: path)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("state_add: Add cannot merge tensors with different batch sizes (1, 2, 6) and (2, 6)"), message)
            XCTAssertFalse(message.contains("\n"))
        }
    }

    func testAddLayerOfALowerRankInputExpandsItAtAxisOneAsKerasDoes() throws {
        // Keras: (N, 3) becomes (N, 1, 3) and broadcasts over the 5; numpy would line the 3s up and
        // broadcast (N, 3) against (5, 3), a different sum.
        let graph = try KerasModelReader.readHDF5(at: addLayerFile("[null, 5, 3]", "[null, 3]"))
        let add = try XCTUnwrap(graph.node(named: "state_add"))
        let expand = try XCTUnwrap(graph.nodes.first { $0.outputs == [add.inputs[1]] })
        XCTAssertEqual(expand.op, .onnx(.unsqueeze(AxesAttributes(axes: [1]))))
        XCTAssertEqual(expand.inputs, ["b"])
        XCTAssertEqual(graph.values[add.inputs[1]]?.shape, Shape([nil, 1, 3]))
        XCTAssertEqual(graph.values["state_add"]?.shape, Shape([nil, 5, 3]))
    }
}
