import Foundation
import ScionIR
import XCTest

@testable import ScionKeras

/// An elementwise op with a constant tensor operand (Swin's relative position bias and window mask) is
/// written as one keras.ops call holding the numbers as a numpy array, and read back as a frozen
/// constant. Keras 3 loads and runs such files on torch's Swin exports (Tests/Interop/check_torch.py).
final class KerasNumpyOperandTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-numpy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    let bias: [Float] = [0.5, -1.25, 3, 0.1, 1e-7, -100]

    func graph() -> Graph {
        var parameters = ParameterTable()
        parameters.add(Parameter(name: "bias", role: .value, shape: [1, 2, 3], dtype: .float32, trainable: true,
                                 storage: TensorStorage(bytes: bias.withUnsafeBytes { [UInt8]($0) })))
        let nodes = [
            Node(name: "bias", op: .onnx(.constant(ConstantAttributes(dtype: .float32))), inputs: [], outputs: ["bias"], parameters: ["bias"]),
            Node(name: "shifted", op: .elementwise(.add), inputs: ["x", "bias"], outputs: ["shifted"]),
            Node(name: "flipped", op: .elementwise(.subtract), inputs: ["bias", "shifted"], outputs: ["flipped"]),
        ]
        var graph = Graph(name: "numpy", inputs: [ValueInfo(name: "x", shape: Shape([nil, 2, 3]), dtype: .float32)],
                          outputs: ["flipped"], nodes: nodes, parameters: parameters)
        graph.layout = .channelsLast
        try? graph.inferShapes()
        return graph
    }

    func testConstantTensorOperandIsANumpyArrayInTheCall() throws {
        let plan = try KerasModelPlan(graph: graph(), file: "numpy.keras")
        XCTAssertNil(plan.layers.first { $0.name == "bias" }, "the constant is written into its readers' calls")
        let array = JSON.object(["class_name": "__numpy__", "config": .object([
            "value": .array([.array([.array([0.5, -1.25, 3]), .array([.number(Double(Float(0.1))), .number(Double(Float(1e-7))), -100])])]),
            "dtype": "float32"])])
        let shifted = try XCTUnwrap(plan.layers.first { $0.name == "shifted" })
        XCTAssertEqual(shifted.specification.className, "Add")
        XCTAssertEqual(shifted.specification.arguments, [.tensor, .constant(array)])
        XCTAssertEqual(shifted.calls, [["x"]])
        let flipped = try XCTUnwrap(plan.layers.first { $0.name == "flipped" })
        XCTAssertEqual(flipped.specification.className, "Subtract")
        XCTAssertEqual(flipped.specification.arguments, [.constant(array), .tensor], "the constant stays the first operand")
    }

    func testNumpyArrayIsReadBackAsAFrozenConstantWithItsNumbers() throws {
        let path = directory.appendingPathComponent("numpy.keras").path
        try KerasModelWriter.writeArchive(graph(), to: path, file: path)
        let read = try KerasModelReader.readArchive(at: path)
        let constants = read.nodes.filter { if case .onnx(.constant) = $0.op { true } else { false } }
        XCTAssertEqual(constants.map(\.name), ["shifted/array", "flipped/array"])
        for constant in constants {
            let parameter = try XCTUnwrap(read.parameter(of: constant, role: .value))
            XCTAssertFalse(parameter.trainable, "Keras holds no variable for a numpy array: frozen")
            XCTAssertEqual(parameter.shape, [1, 2, 3])
            XCTAssertEqual(try parameter.storage.bytes().withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, bias, "exact float32")
        }
        XCTAssertEqual(read.node(named: "shifted")?.op, .elementwise(.add))
        XCTAssertEqual(read.node(named: "shifted")?.inputs, ["x", "shifted/array"])
        XCTAssertEqual(read.node(named: "flipped")?.inputs, ["flipped/array", "shifted"])
    }

    func testOnlyRectangularNumpyArraysAreFlattened() throws {
        XCTAssertNil(KerasGraphBuilder.flattened(try JSON.parse(Data("[[1, 2], [3]]".utf8))))
        XCTAssertEqual(KerasGraphBuilder.flattened(try JSON.parse(Data("[[1, 2], [3, 4]]".utf8)))?.shape, [2, 2])
    }
}
