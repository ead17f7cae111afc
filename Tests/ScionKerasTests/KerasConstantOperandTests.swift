import Foundation
import ScionIR
import XCTest

@testable import ScionKeras

/// ONNX ops Keras has no layer for, written as keras.ops calls: Split as one Split whose outputs are
/// told apart by tensor index, Gather of constant indices as Take with the indices in the call (its
/// constant node not written), Expand to a constant shape as BroadcastTo. Keras itself runs them in
/// Tests/Interop/check_onnx_keras.py (onnx's GLU cases) and on torch's exports (docs/onnx-to-keras.md).
final class KerasConstantOperandTests: XCTestCase {
    func integers(_ name: String, _ values: [Int64], shape: [Int]) -> Parameter {
        Parameter(name: name, role: .value, shape: shape, dtype: .int64, trainable: false,
                  storage: TensorStorage(bytes: values.withUnsafeBytes { [UInt8]($0) }))
    }

    func graph() -> Graph {
        var parameters = ParameterTable()
        parameters.add(integers("first", [0], shape: []))
        parameters.add(integers("pick", [2, -1, 0, 1], shape: [2, 2]))
        parameters.add(integers("target", [2, 3, 4], shape: [3]))
        let constant = Op.onnx(.constant(ConstantAttributes(dtype: .int64)))
        let nodes = [
            Node(name: "first", op: constant, inputs: [], outputs: ["first"], parameters: ["first"]),
            Node(name: "pick", op: constant, inputs: [], outputs: ["pick"], parameters: ["pick"]),
            Node(name: "target", op: constant, inputs: [], outputs: ["target"], parameters: ["target"]),
            Node(name: "select", op: .onnx(.gather(GatherAttributes(axis: 1))), inputs: ["x", "first"], outputs: ["select"]),
            Node(name: "take", op: .onnx(.gather(GatherAttributes(axis: -1))), inputs: ["x", "pick"], outputs: ["take"]),
            Node(name: "split", op: .onnx(.split(SplitAttributes(axis: 2, sizes: [1, 3]))), inputs: ["x"], outputs: ["left", "right"]),
            Node(name: "halves", op: .onnx(.split(SplitAttributes(axis: 2, sizes: [2, 2]))), inputs: ["x"], outputs: ["a", "b"]),
            Node(name: "expand", op: .onnx(.expand), inputs: ["row", "target"], outputs: ["expand"]),
        ]
        var graph = Graph(name: "ops", inputs: [ValueInfo(name: "x", shape: Shape([2, 3, 4]), dtype: .float32),
                                                 ValueInfo(name: "row", shape: Shape([2, 1, 4]), dtype: .float32)],
                          outputs: ["select", "take", "left", "right", "a", "b", "expand"], nodes: nodes, parameters: parameters)
        graph.layout = .channelsLast
        try? graph.inferShapes()
        return graph
    }

    func testConstantOperandsAreWrittenIntoTheirCalls() throws {
        let plan = try KerasModelPlan(graph: graph(), file: "ops.keras")
        let layers = Dictionary(plan.layers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        XCTAssertNil(layers["first"], "a constant read only as indices is not a layer")
        XCTAssertNil(layers["pick"])
        XCTAssertNil(layers["target"])

        let select = try XCTUnwrap(layers["select"])
        XCTAssertEqual(select.specification.className, "Take")
        XCTAssertEqual(select.specification.config["axis"], .number(1))
        XCTAssertEqual(select.specification.arguments, [.tensor, .constant(.number(0))])
        XCTAssertEqual(select.calls, [["x"]])

        // Axis -1 is the last; index -1 of a length-4 axis is 3.
        let take = try XCTUnwrap(layers["take"])
        XCTAssertEqual(take.specification.config["axis"], .number(2))
        XCTAssertEqual(take.specification.arguments, [.tensor, .constant(.array([.array([2, 3]), .array([0, 1])]))])

        let expand = try XCTUnwrap(layers["expand"])
        XCTAssertEqual(expand.specification.className, "BroadcastTo")
        XCTAssertEqual(expand.specification.config["shape"], .array([2, 3, 4]))
        XCTAssertEqual(expand.calls, [["row"]])
    }

    func testSplitIsOneCallWithATensorIndexPerOutput() throws {
        let plan = try KerasModelPlan(graph: graph(), file: "ops.keras")
        let split = try XCTUnwrap(plan.layers.first { $0.name == "split" })
        XCTAssertEqual(split.specification.className, "Split")
        XCTAssertEqual(split.specification.config["indices_or_sections"], .array([1]), "unequal parts: where the second starts")
        XCTAssertEqual(split.specification.config["axis"], .number(2))
        let halves = try XCTUnwrap(plan.layers.first { $0.name == "halves" })
        XCTAssertEqual(halves.specification.config["indices_or_sections"], .number(2), "equal parts: how many")
        XCTAssertEqual(plan.tensorIndices["right"], 1)
        XCTAssertEqual(plan.tensorIndices["b"], 1)
        XCTAssertNil(plan.tensorIndices["left"])
    }

    func testExpandKeepingALengthNotKnownIsRefusedNamingTheNode() throws {
        var source = graph()
        // Broadcasting an unknown batch to 2 gives 2; keeping it (a target of 1) needs its length.
        source.inputs[1] = ValueInfo(name: "row", shape: Shape([nil, 1, 4]), dtype: .float32)
        source.parameters["target"] = integers("target", [1, 3, 4], shape: [3])
        try source.inferShapes()
        XCTAssertThrowsError(try KerasModelPlan(graph: source, file: "ops.keras")) { error in
            XCTAssertTrue("\(error)".contains("expand"), "\(error)")
            XCTAssertTrue("\(error)".contains("not known before run time"), "\(error)")
        }
    }
}
