import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// Integer Div truncates toward zero, as ONNX and onnxruntime do: torch's dynamo exporter writes a
/// dynamic shape's `//` as an int64 Div of lengths (values are held as floats, so a plain division
/// gave a length of 16.5 and the Reshape reading it refused it).
final class IntegerDivisionTests: XCTestCase {
    func testInt64DivisionTruncatesAndFloatDivisionDoesNot() throws {
        for (dtype, want) in [(DType.int64, [Float(3), 2, -2]), (.float32, [3.5, 2.5, -2.5])] {
            var parameters = ParameterTable()
            let operands: [[Float]] = [[7, 5, -5], [2, 2, 2]]
            var nodes: [Node] = []
            for (index, values) in operands.enumerated() {
                let bytes: [UInt8] = dtype == .int64 ? values.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) }
                                                      : values.withUnsafeBytes { Array($0) }
                parameters.add(Parameter(name: "c\(index)/value", role: .value, shape: [3], dtype: dtype, trainable: false,
                                         storage: TensorStorage(bytes: bytes)))
                nodes.append(Node(name: "c\(index)", op: .onnx(.constant(ConstantAttributes(dtype: dtype))), inputs: [], outputs: ["c\(index)"],
                                  parameters: ["c\(index)/value"]))
            }
            nodes.append(Node(name: "quotient", op: .elementwise(.divide), inputs: ["c0", "c1"], outputs: ["quotient"]))
            // An input the graph does not read (a graph needs one).
            let graph = Graph(name: "division", inputs: [ValueInfo(name: "x", shape: Shape([1]), dtype: .float32)], outputs: ["quotient"],
                              nodes: nodes, parameters: parameters)
            let result = try XCTUnwrap(Executor(graph: graph).run(["x": RuntimeTensor(shape: [1], data: [0])])["quotient"])
            XCTAssertEqual(result.data, want, "\(dtype)")
        }
    }
}
