import XCTest
import ScionIR
@testable import ScionONNX

/// The ONNX reader on hand-built models: folding, IR-3 initializers listed as inputs, opset 6's
/// broadcast, opaque round trips and errors. (Numbers are checked against onnxruntime by
/// Tests/Interop/check_onnx_roundtrip.py.)
final class ONNXImporterTests: XCTestCase {
    private func floats(_ name: String, _ values: [Float], _ dimensions: [Int64]) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions, dataType: ONNXDataType.float.rawValue,
                   data: .raw(values.withUnsafeBytes { [UInt8]($0) }))
    }

    private func int64s(_ name: String, _ values: [Int64], _ dimensions: [Int64]? = nil) -> ONNXTensor {
        ONNXTensor(name: name, dimensions: dimensions ?? [Int64(values.count)], dataType: ONNXDataType.int64.rawValue,
                   data: .raw(values.withUnsafeBytes { [UInt8]($0) }))
    }

    private func input(_ name: String, _ dimensions: [Int64?]) -> ONNXValueInfo {
        ONNXValueInfo(name: name, elementType: ONNXDataType.float.rawValue,
                      shape: dimensions.map { $0.map { .value($0) } ?? .parameter("batch") })
    }

    private func model(_ graph: ONNXGraph, opset: Int64 = 13, irVersion: Int64 = 7,
                       metadata: [(key: String, value: String)] = []) -> ONNXModel {
        ONNXModel(irVersion: irVersion, operatorSets: [ONNXOperatorSet(domain: "", version: opset)], graph: graph, metadata: metadata)
    }

    func testShapeSubgraphFoldsIntoStaticReshape() throws {
        let nodes = [
            ONNXNode(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
            ONNXNode(name: "gather", opType: "Gather", inputs: ["s", "zero"], outputs: ["n"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "unsqueeze", opType: "Unsqueeze", inputs: ["n", "axes"], outputs: ["n1"]),
            ONNXNode(name: "concat", opType: "Concat", inputs: ["n1", "minus_one"], outputs: ["target"], attributes: [.int("axis", 0)]),
            ONNXNode(name: "reshape", opType: "Reshape", inputs: ["x", "target"], outputs: ["y"]),
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes,
                              initializers: [int64s("zero", [0], []), int64s("axes", [0]), int64s("minus_one", [-1])],
                              inputs: [input("x", [1, 2, 3, 4])], outputs: [input("y", [1, 24])])
        let imported = try ONNXImporter.importModel(model(graph), file: "fold.onnx", folder: "/tmp")
        XCTAssertEqual(imported.nodes.count, 1)
        XCTAssertEqual(imported.nodes.first?.op, .reshape(ReshapeAttributes(targetShape: [1, -1], includesBatch: true)))
        XCTAssertEqual(imported.values["y"]?.shape, Shape([1, 24]))
        XCTAssertTrue(imported.parameters.all.isEmpty)
    }

    func testInitializersListedAsInputsAreWeights() throws {
        let weights = floats("W", Array(repeating: 0.5, count: 4 * 3 * 9), [4, 3, 3, 3])
        let conv = ONNXNode(name: "conv", opType: "Conv", inputs: ["x", "W"], outputs: ["y"],
                            attributes: [.ints("kernel_shape", [3, 3]), .ints("pads", [1, 1, 1, 1])])
        let graph = ONNXGraph(name: "g", nodes: [conv], initializers: [weights],
                              inputs: [input("x", [nil, 3, 8, 8]), input("W", [4, 3, 3, 3])], outputs: [input("y", [nil, 4, 8, 8])])
        let imported = try ONNXImporter.importModel(model(graph, opset: 8, irVersion: 3), file: "ir3.onnx", folder: "/tmp")
        XCTAssertEqual(imported.inputs.map(\.name), ["x"])
        XCTAssertEqual(imported.parameters["W"]?.role, .kernel)
        XCTAssertEqual(imported.parameters["W"]?.trainable, true)
        XCTAssertEqual(imported.values["y"]?.shape, Shape([nil, 4, 8, 8]))
        XCTAssertEqual(imported.metadata["format"], "onnx")
        XCTAssertEqual(imported.layout, .channelsFirst)
        XCTAssertEqual(imported.metadata["onnx.opset"], "8")
    }

    func testOpset6BroadcastAlignsTheSecondOperandAtItsAxis() throws {
        let add = ONNXNode(name: "add", opType: "Add", inputs: ["x", "b"], outputs: ["y"],
                           attributes: [.int("broadcast", 1), .int("axis", 1)])
        let graph = ONNXGraph(name: "g", nodes: [add], initializers: [floats("b", [1, 2, 3], [3])],
                              inputs: [input("x", [2, 3, 4, 5])], outputs: [input("y", [2, 3, 4, 5])])
        let imported = try ONNXImporter.importModel(model(graph, opset: 6, irVersion: 3), file: "b.onnx", folder: "/tmp")
        let constant = try XCTUnwrap(imported.parameters.all.first)
        XCTAssertEqual(constant.shape, [3, 1, 1])
        XCTAssertEqual(constant.role, .value)
        XCTAssertEqual(imported.values["y"]?.shape, Shape([2, 3, 4, 5]))
    }

    func testUnknownOpRoundTripsUnchanged() throws {
        let custom = ONNXNode(name: "custom", opType: "Frobnicate", domain: "com.example", inputs: ["x"], outputs: ["y"],
                              attributes: [.int("level", 3), .string("mode", "fast"), ONNXAttribute(name: "weights", value: .floats([0.25, 0.5]))])
        let relu = ONNXNode(name: "relu", opType: "Relu", inputs: ["y"], outputs: ["z"])
        var source = model(ONNXGraph(name: "g", nodes: [custom, relu], inputs: [input("x", [nil, 4])], outputs: [input("z", [nil, 4])]))
        source.operatorSets.append(ONNXOperatorSet(domain: "com.example", version: 2))
        let imported = try ONNXImporter.importModel(source, file: "custom.onnx", folder: "/tmp")
        guard case .opaque(let attributes)? = imported.node(named: "custom")?.op else { return XCTFail("not opaque") }
        XCTAssertEqual(attributes.domain, "com.example")
        let written = try ONNXExporter.makeModel(from: imported, file: "out.onnx")
        let node = try XCTUnwrap(written.graph.nodes.first { $0.opType == "Frobnicate" })
        XCTAssertEqual(node.domain, "com.example")
        XCTAssertEqual(node.inputs, ["x"])
        XCTAssertEqual(node.outputs, ["y"])
        XCTAssertEqual(node.attributes.map(\.name), ["level", "mode", "weights"])
        if case .floats(let values)? = node.attribute("weights") { XCTAssertEqual(values, [0.25, 0.5]) } else { XCTFail("weights lost") }
        XCTAssertTrue(written.operatorSets.contains(ONNXOperatorSet(domain: "com.example", version: 2)))
    }

    func testFrozenParametersComeFromOurMetadata() throws {
        let gemm = ONNXNode(name: "dense", opType: "Gemm", inputs: ["x", "W", "B"], outputs: ["y"])
        let graph = ONNXGraph(name: "g", nodes: [gemm], initializers: [floats("W", [1, 2, 3, 4], [2, 2]), floats("B", [0, 0], [2])],
                              inputs: [input("x", [nil, 2])], outputs: [input("y", [nil, 2])])
        let imported = try ONNXImporter.importModel(model(graph, metadata: [("scion.frozen_parameters", "[\"W\"]")]),
                                                    file: "frozen.onnx", folder: "/tmp")
        XCTAssertEqual(imported.parameters["W"]?.trainable, false)
        XCTAssertEqual(imported.parameters["B"]?.trainable, true)
        XCTAssertEqual(imported.parameters["B"]?.role, .bias)
    }

    func testDanglingInputIsReportedWithTheNode() {
        let relu = ONNXNode(name: "relu", opType: "Relu", inputs: ["missing"], outputs: ["y"])
        let graph = ONNXGraph(name: "g", nodes: [relu], inputs: [input("x", [1])], outputs: [input("y", [1])])
        XCTAssertThrowsError(try ONNXImporter.importModel(model(graph), file: "bad.onnx", folder: "/tmp")) { error in
            let description = "\(error)"
            XCTAssertTrue(description.contains("bad.onnx") && description.contains("relu") && description.contains("missing"), description)
        }
    }

    func testCycleAndDuplicateOutputAreRefused() {
        let cycle = ONNXGraph(name: "g", nodes: [
            ONNXNode(name: "a", opType: "Relu", inputs: ["b_out"], outputs: ["a_out"]),
            ONNXNode(name: "b", opType: "Relu", inputs: ["a_out"], outputs: ["b_out"]),
        ], inputs: [input("x", [1])], outputs: [input("a_out", [1])])
        XCTAssertThrowsError(try ONNXImporter.importModel(model(cycle), file: "cycle.onnx", folder: "/tmp")) { error in
            XCTAssertTrue("\(error)".contains("cycle"), "\(error)")
        }
        let duplicate = ONNXGraph(name: "g", nodes: [
            ONNXNode(name: "a", opType: "Relu", inputs: ["x"], outputs: ["y"]),
            ONNXNode(name: "b", opType: "Sigmoid", inputs: ["x"], outputs: ["y"]),
        ], inputs: [input("x", [1])], outputs: [input("y", [1])])
        XCTAssertThrowsError(try ONNXImporter.importModel(model(duplicate), file: "dup.onnx", folder: "/tmp")) { error in
            XCTAssertTrue("\(error)".contains("produced twice"), "\(error)")
        }
    }

    /// Written without an opset, a model read from ONNX gets the lowest that expresses it: 13 when
    /// its ops have forms there, its file's opset when it keeps an opaque node (written unchanged, so
    /// its meaning is that opset's), 20 for a Gelu read from any opset.
    func testLowestOpsetKeepsOpaqueNodesInTheirFilesOpset() throws {
        func lowest(_ opType: String, opset: Int64) throws -> Int64 {
            let graph = ONNXGraph(name: "g", nodes: [ONNXNode(name: "n", opType: opType, inputs: ["x"], outputs: ["y"])],
                                  inputs: [input("x", [1, 4])], outputs: [input("y", [1, 4])])
            let imported = try ONNXImporter.importModel(model(graph, opset: opset), file: "\(opType).onnx", folder: "/tmp")
            let chosen = try ONNXExporter.lowestOpset(for: imported, file: "out.onnx")
            XCTAssertEqual(try ONNXExporter.makeModel(from: imported, file: "out.onnx").defaultOpset, chosen)
            return chosen
        }
        XCTAssertEqual(try lowest("Relu", opset: 20), 13)
        XCTAssertEqual(try lowest("Hardmax", opset: 20), 20, "Hardmax stays opaque")
        XCTAssertEqual(try lowest("Hardmax", opset: 9), 13, "opaque nodes of older opsets are written into 13")
        XCTAssertEqual(try lowest("Gelu", opset: 20), 20)
        // torch's dynamo sets allowzero on every Reshape; without a 0 in the target it means nothing.
        let reshape = ONNXGraph(name: "g", nodes: [ONNXNode(name: "r", opType: "Reshape", inputs: ["x", "shape"], outputs: ["y"],
                                                            attributes: [.int("allowzero", 1)])],
                                initializers: [int64s("shape", [1, 2, 2])], inputs: [input("x", [1, 4])], outputs: [input("y", [1, 2, 2])])
        let imported = try ONNXImporter.importModel(model(reshape, opset: 20), file: "reshape.onnx", folder: "/tmp")
        let written = try ONNXExporter.makeModel(from: imported, file: "out.onnx")
        XCTAssertEqual(written.defaultOpset, 13)
        XCTAssertEqual(written.graph.nodes.first { $0.opType == "Reshape" }?.attributes.count, 0)
    }

    func testUnsupportedOpsetIsRefused() throws {
        let graph = ONNXGraph(name: "g", inputs: [input("x", [1])], outputs: [input("x", [1])])
        // Opsets 22 and 23 changed no op the reader maps (element types and new ops only).
        XCTAssertEqual(try ONNXImporter.importModel(model(graph, opset: 23), file: "23.onnx", folder: "/tmp").metadata["onnx.opset"], "23")
        XCTAssertThrowsError(try ONNXImporter.importModel(model(graph, opset: 24), file: "new.onnx", folder: "/tmp")) { error in
            XCTAssertTrue("\(error)".contains("opset 24 of the default domain is not supported (Scion reads 6 to 23)"), "\(error)")
        }
    }
}
