import XCTest
import ScionIR
@testable import ScionONNX

/// torch's dynamo exporter keeps one initializer for equal weights: ConvNeXt's and swin's zero
/// LayerNorm betas and Linear biases are one `features.0.1.bias`, read by LayerNormalization as its
/// B and by `Add(MatMul(x, W), b)`. Read back, the LayerNorm's bias keeps the name and the Add reads
/// a constant node whose output has that name too; written as they were, `features.0.1.bias` was
/// both an initializer and a node's output, and onnxruntime refused the file ("Duplicate definition
/// of name"). (onnxruntime runs the survey's round trips: docs/onnx-to-keras.md.)
final class ONNXSharedInitializerTests: XCTestCase {
    private func floats(_ name: String, _ values: [Float], _ dimensions: [Int64]) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions, dataType: ONNXDataType.float.rawValue,
                   data: .raw(values.withUnsafeBytes { [UInt8]($0) }))
    }

    private func value(_ name: String, _ dimensions: [Int64]) -> ONNXValueInfo {
        ONNXValueInfo(name: name, elementType: ONNXDataType.float.rawValue, shape: dimensions.map { .value($0) })
    }

    func dynamoSpelling() -> ONNXModel {
        let nodes = [
            ONNXNode(name: "node_layer_norm", opType: "LayerNormalization", inputs: ["x", "ln.weight", "shared.bias"],
                     outputs: ["layer_norm"], attributes: [.int("axis", -1)]),
            ONNXNode(name: "node_matmul", opType: "MatMul", inputs: ["layer_norm", "W"], outputs: ["val_7"]),
            ONNXNode(name: "node_linear", opType: "Add", inputs: ["val_7", "shared.bias"], outputs: ["y"]),
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes,
                              initializers: [floats("ln.weight", [1, 2, 3, 4], [4]), floats("shared.bias", [0, 0, 0, 0], [4]),
                                             floats("W", (0..<16).map { Float($0) / 8 }, [4, 4])],
                              inputs: [value("x", [2, 3, 4])], outputs: [value("y", [2, 3, 4])])
        return ONNXModel(irVersion: 10, operatorSets: [ONNXOperatorSet(domain: "", version: 20)], graph: graph)
    }

    /// Every name ONNX defines: graph inputs, initializers and node outputs.
    func definitions(_ model: ONNXModel) -> [String] {
        model.graph.inputs.map(\.name) + model.graph.initializers.map(\.name) + model.graph.nodes.flatMap(\.outputs)
    }

    func testASharedInitializerIsDefinedOnceWhenWrittenBack() throws {
        let imported = try ONNXImporter.importModel(dynamoSpelling(), file: "dyn.onnx", folder: "/tmp")
        let written = try ONNXExporter.makeModel(from: imported, file: "rt.onnx")
        let names = definitions(written)
        XCTAssertEqual(names.count, Set(names).count, "defined twice: \(Dictionary(grouping: names, by: { $0 }).filter { $1.count > 1 }.keys)")
        // What the Add reads still holds the shared values, and the LayerNorm still reads its bias.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scion-shared-\(UUID().uuidString).onnx").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ONNXProtoStreamWriter(file: path).write(written, to: path)
        let reread = try ONNXImporter.importModel(try ONNXProtoCodec.decode(contentsOf: path), file: "rt.onnx", folder: "/tmp")
        XCTAssertEqual(reread.nodes.map(\.op.typeName), imported.nodes.map(\.op.typeName))
        XCTAssertEqual(reread.parameters.all.map(\.shape), imported.parameters.all.map(\.shape))
        XCTAssertEqual(try reread.parameters.all.map { try $0.storage.bytes() }, try imported.parameters.all.map { try $0.storage.bytes() })
    }
}
