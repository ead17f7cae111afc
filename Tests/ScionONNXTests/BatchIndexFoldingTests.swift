import XCTest
import ScionIR
@testable import ScionONNX

/// torch's dynamo exporter writes `torch.flatten` after an adaptive pool as `as_strided`: a Gather of
/// the flattened tensor at `Range(0, batch) * stride + offsets`. The reader keeps those positions as a
/// stride and offsets and reads the Gather as a Reshape (offsets in order) or a Reshape and a Gather of
/// the offsets along axis 1; torch's `head_dim ** -0.5` (a Pow of constants) folds to one number. The
/// whole exports (Swin, ConvNeXt) are compared with onnxruntime by Tests/Interop/check_torch.py.
final class BatchIndexFoldingTests: XCTestCase {
    private func int64s(_ name: String, _ values: [Int64], _ dimensions: [Int64]? = nil) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions ?? [Int64(values.count)], dataType: ONNXDataType.int64.rawValue,
                   data: .raw(values.withUnsafeBytes { [UInt8]($0) }))
    }

    private func floats(_ name: String, _ values: [Float], _ dimensions: [Int64]) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions, dataType: ONNXDataType.float.rawValue,
                   data: .raw(values.withUnsafeBytes { [UInt8]($0) }))
    }

    private func importGraph(_ nodes: [ONNXNode], initializers: [ONNXTensor], input dimensions: [Int64?], outputs: [String]) throws -> Graph {
        let x = ONNXValueInfo(name: "x", elementType: ONNXDataType.float.rawValue,
                              shape: dimensions.map { $0.map { .value($0) } ?? .parameter("batch") })
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers, inputs: [x],
                              outputs: outputs.map { ONNXValueInfo(name: $0, elementType: ONNXDataType.float.rawValue, shape: nil) })
        let model = ONNXModel(irVersion: 8, operatorSets: [ONNXOperatorSet(domain: "", version: 20)], graph: graph)
        return try ONNXImporter.importModel(model, file: "batch_index.onnx", folder: "/tmp")
    }

    /// dynamo's `as_strided` of x [batch, 4, 1, 1] at the given per-sample offsets (shape [1, 4, 1, 1]).
    private func asStrided(offsets: [Int64]) throws -> Graph {
        let nodes = [
            ONNXNode(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"], attributes: [.int("start", 0), .int("end", 1)]),
            ONNXNode(name: "sym_size", opType: "Squeeze", inputs: ["s"], outputs: ["n"]),
            ONNXNode(name: "flatten", opType: "Reshape", inputs: ["x", "minus_one"], outputs: ["flat"]),
            ONNXNode(name: "range", opType: "Range", inputs: ["zero", "n", "one"], outputs: ["samples"]),
            ONNXNode(name: "scale", opType: "Mul", inputs: ["samples", "stride"], outputs: ["starts"]),
            ONNXNode(name: "unsqueeze", opType: "Unsqueeze", inputs: ["starts", "axes"], outputs: ["starts4"]),
            ONNXNode(name: "add", opType: "Add", inputs: ["starts4", "offsets"], outputs: ["positions"]),
            ONNXNode(name: "as_strided", opType: "Gather", inputs: ["flat", "positions"], outputs: ["y"], attributes: [.int("axis", 0)]),
        ]
        let constants = [int64s("minus_one", [-1]), int64s("zero", [0], []), int64s("one", [1], []), int64s("stride", [4], []),
                         int64s("axes", [1, 2, 3]), int64s("offsets", offsets, [1, 4, 1, 1])]
        return try importGraph(nodes, initializers: constants, input: [nil, 4, 1, 1], outputs: ["y"])
    }

    func testDynamoFlattenAsStridedBecomesOneReshapeKeepingTheBatch() throws {
        let graph = try asStrided(offsets: [0, 1, 2, 3])
        XCTAssertEqual(graph.nodes.map(\.op), [.reshape(ReshapeAttributes(targetShape: [-1, 4, 1, 1], includesBatch: true))])
        XCTAssertEqual(graph.nodes.first?.inputs, ["x"], "reads the tensor before it was flattened")
        XCTAssertEqual(graph.values["y"]?.shape, Shape([nil, 4, 1, 1]))
    }

    func testOffsetsOutOfOrderPickEachSamplesElementsAlongAxisOne() throws {
        let graph = try asStrided(offsets: [3, 1, 2, 0])
        let ops = graph.nodes.filter { if case .onnx(.constant) = $0.op { false } else { true } }.map(\.op)
        XCTAssertEqual(ops, [.reshape(ReshapeAttributes(targetShape: [-1, 4], includesBatch: true)), .onnx(.gather(GatherAttributes(axis: 1)))])
        let indices = try XCTUnwrap(graph.nodes.first { if case .onnx(.constant) = $0.op { true } else { false } })
        let values = try XCTUnwrap(graph.parameter(of: indices, role: .value)).storage.bytes()
        XCTAssertEqual(values.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }, [3, 1, 2, 0])
        XCTAssertEqual(graph.values["y"]?.shape, Shape([nil, 4, 1, 1]), "the sample axis, then the offsets' shape")
    }

    func testAStrideOtherThanASamplesLengthIsLeftToRunTime() throws {
        // Positions 5 apart in a tensor of 4 per sample are not each sample's elements: not folded.
        let source = [
            ONNXNode(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"], attributes: [.int("start", 0), .int("end", 1)]),
            ONNXNode(name: "sym_size", opType: "Squeeze", inputs: ["s"], outputs: ["n"]),
            ONNXNode(name: "flatten", opType: "Reshape", inputs: ["x", "minus_one"], outputs: ["flat"]),
            ONNXNode(name: "range", opType: "Range", inputs: ["zero", "n", "one"], outputs: ["samples"]),
            ONNXNode(name: "scale", opType: "Mul", inputs: ["samples", "stride"], outputs: ["positions"]),
            ONNXNode(name: "as_strided", opType: "Gather", inputs: ["flat", "positions"], outputs: ["y"], attributes: [.int("axis", 0)]),
        ]
        let graph = try importGraph(source, initializers: [int64s("minus_one", [-1]), int64s("zero", [0], []), int64s("one", [1], []),
                                                           int64s("stride", [5], [])], input: [nil, 4], outputs: ["y"])
        let nodes = graph.nodes.map { graph.info.nodeTypes[$0.name] ?? "?" }
        XCTAssertTrue(nodes.contains("Range"), "\(nodes)")
        XCTAssertTrue(nodes.contains("Gather"), "\(nodes)")
    }

    func testPowOfConstantsFoldsToOneNumber() throws {
        let nodes = [
            ONNXNode(name: "pow", opType: "Pow", inputs: ["width", "minus_half"], outputs: ["scale"]),
            ONNXNode(name: "mul", opType: "Mul", inputs: ["x", "scale"], outputs: ["y"]),
        ]
        // Constants made by Constant nodes (not initializers, which stay weights).
        let constantNodes = [
            ONNXNode(name: "width_node", opType: "Constant", inputs: [], outputs: ["width"],
                     attributes: [ONNXAttribute(name: "value", value: .tensor(floats("w", [8], [])))]),
            ONNXNode(name: "half_node", opType: "Constant", inputs: [], outputs: ["minus_half"],
                     attributes: [ONNXAttribute(name: "value", value: .tensor(floats("h", [-0.5], [])))]),
        ]
        let folded = try importGraph(constantNodes + nodes, initializers: [], input: [nil, 8], outputs: ["y"])
        XCTAssertFalse(folded.nodes.contains { folded.info.nodeTypes[$0.name] == "Pow" }, "\(folded.nodes.map(\.name))")
        let scale = try XCTUnwrap(folded.nodes.first { $0.outputs == ["scale"] })
        let bytes = try XCTUnwrap(folded.parameter(of: scale, role: .value)).storage.bytes()
        XCTAssertEqual(bytes.withUnsafeBytes { $0.load(as: Float.self) }, powf(8, -0.5))
    }
}
