import XCTest
import ScionIR
@testable import ScionONNX

/// torch's TorchScript exporter builds a causal mask and an attention scale from literals:
/// `Trilu(Expand(-inf, [n, n]), k=1)` and `Sqrt(Cast(length))`. With the lengths known they fold
/// into single constants (ops Keras cannot hold otherwise); a weight's math stays a node.
final class ConstantMaskFoldingTests: XCTestCase {
    private func tensor(_ name: String, _ type: ONNXDataType, _ bytes: [UInt8], _ dimensions: [Int64]) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions, dataType: type.rawValue, data: .raw(bytes))
    }

    private func floats(_ name: String, _ values: [Float], _ dimensions: [Int64]) -> ONNXTensor {
        tensor(name, .float, values.withUnsafeBytes { [UInt8]($0) }, dimensions)
    }

    private func int64s(_ name: String, _ values: [Int64], _ dimensions: [Int64]) -> ONNXTensor {
        tensor(name, .int64, values.withUnsafeBytes { [UInt8]($0) }, dimensions)
    }

    private func value(_ name: String, _ dimensions: [Int64]) -> ONNXValueInfo {
        ONNXValueInfo(name: name, elementType: ONNXDataType.float.rawValue, shape: dimensions.map { .value($0) })
    }

    private func floats(of parameter: Parameter) throws -> [Float] {
        try parameter.storage.bytes(keep: true).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testCausalMaskAndScaleFoldAndAWeightsSquareRootStays() throws {
        let nodes = [
            ONNXNode(name: "fill", opType: "Constant", inputs: [], outputs: ["minus_inf"],
                     attributes: [ONNXAttribute(name: "value", value: .tensor(floats("v", [-.infinity], [])))]),
            ONNXNode(name: "square", opType: "Expand", inputs: ["minus_inf", "size"], outputs: ["full"]),
            ONNXNode(name: "triangle", opType: "Trilu", inputs: ["full", "one"], outputs: ["mask"], attributes: [ONNXAttribute(name: "upper", value: .int(1))]),
            ONNXNode(name: "masked", opType: "Add", inputs: ["x", "mask"], outputs: ["scores"]),
            ONNXNode(name: "length", opType: "Cast", inputs: ["four"], outputs: ["length_float"], attributes: [ONNXAttribute(name: "to", value: .int(1))]),
            ONNXNode(name: "root", opType: "Sqrt", inputs: ["length_float"], outputs: ["scale"]),
            ONNXNode(name: "scaled", opType: "Div", inputs: ["scores", "scale"], outputs: ["divided"]),
            ONNXNode(name: "weight_root", opType: "Sqrt", inputs: ["w"], outputs: ["root_w"]),
            ONNXNode(name: "out", opType: "Mul", inputs: ["divided", "root_w"], outputs: ["y"]),
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes,
                              initializers: [int64s("size", [3, 3], [2]), int64s("one", [1], []), int64s("four", [4], []),
                                             floats("w", [4, 9, 16], [3])],
                              inputs: [value("x", [2, 3, 3])], outputs: [value("y", [2, 3, 3])])
        let model = ONNXModel(irVersion: 8, operatorSets: [ONNXOperatorSet(domain: "", version: 17)], graph: graph)
        let imported = try ONNXImporter.importModel(model, file: "mask.onnx", folder: "/tmp")
        let types = imported.nodes.map(\.op.typeName)
        XCTAssertFalse(types.contains("Expand") || types.contains("Trilu") || types.contains("Cast"), "\(types)")
        XCTAssertEqual(types.filter { $0 == "Sqrt" }.count, 1, "only the weight's square root stays a node: \(types)")
        let mask = try XCTUnwrap(imported.nodes.first { $0.outputs == ["mask"] }?.parameters.first.flatMap { imported.parameters[$0] })
        XCTAssertEqual(mask.shape, [3, 3])
        let minus = -Float.infinity
        XCTAssertEqual(try floats(of: mask), [0, minus, minus, 0, 0, minus, 0, 0, 0])
        XCTAssertFalse(mask.trainable, "a literal is not a weight")
        let weight = try XCTUnwrap(imported.parameters["w"])
        XCTAssertTrue(weight.trainable)
    }
}
