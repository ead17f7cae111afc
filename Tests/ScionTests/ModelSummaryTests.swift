import Foundation
@testable import Scion
import ScionIR
import ScionONNX
import XCTest

/// What `scion inspect` shows for ONNX and Keras files: the model-level facts compared with what
/// `onnx.load` reports for the same files, producing layers in the Inputs column, each format's own
/// type names, and a table that fits 120 columns on every fixture.
final class ModelSummaryTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func summary(_ fixture: String, weights: Bool = false) throws -> ModelSummary {
        let model = try Model.load(fixtures.appendingPathComponent(fixture).path)
        return try ModelSummary(graph: model.graph, format: model.format.rawValue, includeWeights: weights, checksums: false)
    }

    func layer(_ name: String, in summary: ModelSummary) throws -> ModelSummary.Layer {
        try XCTUnwrap(summary.layers.first { $0.name == name }, "no layer \(name)")
    }

    /// Expected values are what onnx 1.x's `onnx.load` reports for these files (ir_version,
    /// producer_name, producer_version, opset_import, metadata_props, doc_string).
    func testONNXModelFactsMatchOnnxLoad() throws {
        let tf2onnx = try summary("tf2onnx/conv2d_zoo.onnx")
        XCTAssertEqual(tf2onnx.irVersion, 8)
        XCTAssertEqual(tf2onnx.producer, ModelSummary.Producer(name: "tf2onnx", version: "1.17.0 None"))
        XCTAssertEqual(tf2onnx.opsets, [ModelSummary.OperatorSet(domain: "", version: 17),
                                        ModelSummary.OperatorSet(domain: "ai.onnx.ml", version: 2)])
        XCTAssertEqual(tf2onnx.metadata, [])
        XCTAssertNil(tf2onnx.docString)
        XCTAssertNil(tf2onnx.kerasVersion)

        let torch = try summary("torch/tiny_resnet.onnx")
        XCTAssertEqual(torch.irVersion, 8)
        XCTAssertEqual(torch.producer, ModelSummary.Producer(name: "pytorch", version: "2.13.0"))
        XCTAssertEqual(torch.opsets, [ModelSummary.OperatorSet(domain: "", version: 17)])
        let table = torch.table()
        XCTAssertTrue(table.contains("\nFormat:    onnx, IR version 8\n"), table)
        XCTAssertTrue(table.contains("\nProducer:  pytorch 2.13.0\n"), table)
        XCTAssertTrue(table.contains("\nOpsets:    ai.onnx 17\n"), table)
    }

    /// ONNX shape and index constants (torch's Gather indices, tf2onnx's Reshape shapes and axes) are
    /// not parameters: counts leave them out, rows show 0, a line and the JSON say how many there are.
    /// Floating-point initializers (tf2onnx's Add biases) still count.
    func testShapeAndIndexConstantsAreNotCounted() throws {
        let torch = try summary("torch/tiny_recurrent.onnx")
        XCTAssertEqual(torch.totalParams, 466, "LSTM 320 + GRU 117 + RNN 21 + Gemm 8")
        XCTAssertEqual(torch.trainableParams, 466)
        XCTAssertEqual(torch.constants, 2)
        XCTAssertEqual(try layer("/Constant_output_0", in: torch).params, 0)
        XCTAssertTrue(torch.table().hasSuffix("\nConstants: 2 (shape, index and literal values, not counted)"), torch.table())
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(torch)) as? [String: Any])
        XCTAssertEqual(json["constants"] as? Int, 2)
        let tf2onnx = try summary("tf2onnx/misc_zoo.onnx")
        // tf2onnx's 168 float weights. The float scalar its LayerNormalization computes from Shape
        // (ReduceProd, Cast), which symbolic folding makes a constant, is a literal, not a weight; 4 of
        // its 5 integer constants folded into the Reshapes they fed.
        XCTAssertEqual(tf2onnx.totalParams, 168, "176 with its 5 integer constants before folding")
        XCTAssertEqual(tf2onnx.constants, 2)
        let keras = try summary("keras3/misc_zoo.keras")
        XCTAssertEqual(keras.totalParams, 150)
        XCTAssertEqual(keras.constants, 0)
        XCTAssertFalse(keras.table().contains("Constants:"))
    }

    /// metadata_props and doc_string, which none of the exporters' fixtures carry, from a file
    /// written here; a symbolic batch dimension keeps its name.
    func testMetadataPropsDocStringAndDimensionNamesAreShown() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("notes.onnx").path
        let input = ONNXValueInfo(name: "x", elementType: ONNXDataType.float.rawValue, shape: [.parameter("N"), .value(4)])
        let output = ONNXValueInfo(name: "y", elementType: ONNXDataType.float.rawValue, shape: [.parameter("N"), .value(4)])
        let graph = ONNXGraph(name: "notes", nodes: [ONNXNode(name: "act", opType: "Relu", inputs: ["x"], outputs: ["y"])],
                              inputs: [input], outputs: [output])
        let model = ONNXModel(irVersion: 7, operatorSets: [ONNXOperatorSet(domain: "", version: 13), ONNXOperatorSet(domain: "com.example", version: 1)],
                              producerName: "handmade", producerVersion: "", documentation: "A tiny model.\nIt has two lines.",
                              graph: graph, metadata: [("author", "Scion tests"), ("license", "MIT\u{1B}[31m")])
        try ONNXProtoCodec.write(model, to: path, file: path)

        let loaded = try Model.load(path)
        let summary = try ModelSummary(graph: loaded.graph, format: loaded.format.rawValue, includeWeights: false, checksums: false)
        XCTAssertEqual(summary.producer, ModelSummary.Producer(name: "handmade", version: nil))
        XCTAssertEqual(summary.metadata, [ModelInfo.Property(key: "author", value: "Scion tests"),
                                          ModelInfo.Property(key: "license", value: "MIT\u{1B}[31m")])
        XCTAssertEqual(summary.docString, "A tiny model.\nIt has two lines.")
        XCTAssertEqual(summary.inputs.first?.dimensionNames, ["N", nil])
        let table = summary.table()
        XCTAssertTrue(table.contains("\nOpsets:    ai.onnx 13, com.example 1\n"), table)
        XCTAssertTrue(table.contains("\nMetadata:  author = Scion tests\n           license = MIT\u{FFFD}[31m\n"),
                      "each entry a line, a terminal escape made visible: \(table)")
        XCTAssertTrue(table.contains("\nDoc:       A tiny model. (+1 lines)\n"), table)
        XCTAssertTrue(table.contains("\nInput   x  float32  (N, 4)\nOutput  y  float32  (N, 4)\n"), table)
    }

    func testKerasFilesShowVersionAndBackendInTheSameHeader() throws {
        let keras2 = try summary("keras2/nested_transfer.h5")
        XCTAssertEqual(keras2.producer, ModelSummary.Producer(name: "Keras", version: "2.21.0"))
        XCTAssertEqual(keras2.backend, "tensorflow")
        XCTAssertNil(keras2.irVersion)
        XCTAssertNil(keras2.opsets)
        XCTAssertNil(keras2.metadata)
        XCTAssertTrue(keras2.table().hasPrefix("Model: \"nested_transfer\"\nFormat:    keras-h5\nProducer:  Keras 2.21.0, backend tensorflow\n"),
                      keras2.table())
        XCTAssertEqual(try summary("keras3/nested_transfer.h5").backend, "jax")
        XCTAssertEqual(try summary("keras3/nested_transfer.keras").producer?.version, "3.15.1")
    }

    /// tf2onnx folds BatchNormalization into the Conv but keeps naming the Conv's output after the
    /// BatchNormalization: the Inputs column must name the Conv node, not that value.
    func testInputsNameTheProducingLayers() throws {
        let tf2onnx = try summary("tf2onnx/nested_transfer.onnx")
        XCTAssertEqual(try layer("nested_transfer/base/base_relu1/Relu", in: tf2onnx).inputs, ["nested_transfer/base/base_conv1/Conv2D"])
        XCTAssertEqual(try layer("nested_transfer/base/base_conv1/Conv2D__2719", in: tf2onnx).inputs, ["image"])
        let torch = try summary("torch/tiny_resnet.onnx")
        XCTAssertEqual(try layer("/layer1/Add", in: torch).inputs, ["/layer1/conv2/Conv", "/stem/stem.3/MaxPool"])
        XCTAssertTrue(torch.table().contains("/layer1/Add (Add)                        (?, 8, 4, 4)        0        yes        /layer1/conv2/Conv, /…/stem.3/MaxPool\n"),
                      torch.table())
        // Keras values are named after their layers already: nothing changes there.
        let keras = try summary("keras3/multi_io.keras")
        XCTAssertEqual(try layer("joint", in: keras).inputs, ["img_gap", "vec_dense"])
    }

    /// The op types `onnx.load` lists for the file's nodes, in order (torch's export has nothing to
    /// fold); Keras files keep Keras class names.
    func testEachFormatShowsItsOwnTypeNames() throws {
        let torch = try summary("torch/tiny_resnet.onnx")
        XCTAssertEqual(torch.layers.map(\.type), ["Input", "Conv", "Relu", "MaxPool", "Conv", "Relu", "Conv", "Add", "Relu", "Conv", "Conv",
                                                  "Relu", "Conv", "Add", "Relu", "GlobalAveragePool", "Flatten", "Gemm"])
        let tf2onnx = try summary("tf2onnx/nested_transfer.onnx")
        XCTAssertEqual(tf2onnx.layers.map(\.type), ["Input", "Transpose", "Conv", "Relu", "MaxPool", "Conv", "Relu", "GlobalAveragePool",
                                                    "Squeeze", "MatMul", "Initializer", "Add", "Softmax"])
        XCTAssertTrue(try summary("tf2onnx/mobilenet_v2.onnx").layers.contains { $0.type == "Clip" }, "ReLU6 is a Clip in the file")
        let keras = try summary("keras2/nested_transfer.h5")
        XCTAssertEqual(keras.layers.map(\.type), ["InputLayer", "Functional", "GlobalAveragePooling2D", "Dense"])
        XCTAssertEqual(keras.layers[1].layers?.map(\.type).first, "Conv2D")
    }

    /// A Keras layer's type is the class its file names, as Keras's own summary shows it: the
    /// reference JSON holds `layer.__class__.__name__` for every layer (an `Activation("relu")` is an
    /// Activation, not the ReLU Scion reads it as).
    func testKerasLayerTypesAreTheClassesKerasNames() throws {
        for fixture in ["keras2/activation_zoo", "keras3/activation_zoo", "keras2/merge_zoo", "keras3/misc_zoo", "keras2/mobilenet_v2"] {
            let reference = try XCTUnwrap(JSONSerialization.jsonObject(
                with: Data(contentsOf: fixtures.appendingPathComponent(fixture + ".json"))) as? [String: Any])
            let expected = try XCTUnwrap(reference["layers"] as? [[String: Any]]).compactMap { $0["className"] as? String }
            let file = fixture + (FileManager.default.fileExists(atPath: fixtures.appendingPathComponent(fixture + ".h5").path) ? ".h5" : ".keras")
            XCTAssertEqual(try summary(file).layers.map(\.type), expected, fixture)
        }
    }

    func testUnknownDimensionsReadAsEachFormatWritesThem() throws {
        XCTAssertTrue(try summary("torch/tiny_resnet.onnx").table().contains("\nInput   image   float32  (batch, 3, 16, 16)\n"))
        // tf2onnx's `unk__N` only says "unknown"; the JSON keeps the name.
        let tf2onnx = try summary("tf2onnx/conv2d_zoo.onnx")
        XCTAssertEqual(tf2onnx.inputs.first?.dimensionNames, ["unk__277", nil, nil, nil])
        XCTAssertTrue(tf2onnx.table().contains("\nInput   image  float32  (?, 16, 16, 3)\n"), tf2onnx.table())
        let keras = try summary("keras2/nested_transfer.h5")
        XCTAssertNil(keras.inputs.first?.dimensionNames)
        XCTAssertTrue(keras.table().contains("\nInput   image  float32  (None, 16, 16, 3)\n"), keras.table())
    }

    /// Every fixture, with and without the weight list: the longest names are tf2onnx's
    /// (`mobilenetv3small/expanded_conv_3/squeeze_excite/...`) and many_layers' 3,000-character one.
    func testEveryFixtureFitsIn120Columns() throws {
        var checked = 0
        for folder in ["keras2", "keras3", "tf2onnx", "torch"] {
            let directory = fixtures.appendingPathComponent(folder)
            for file in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
            where [".h5", ".keras", ".onnx"].contains(where: file.hasSuffix) {
                for weights in [false, true] {
                    let table = try summary("\(folder)/\(file)", weights: weights).table()
                    let widest = table.split(separator: "\n").map(\.count).max() ?? 0
                    XCTAssertLessThanOrEqual(widest, 120, "\(folder)/\(file)\(weights ? " --weights" : "")")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 80)
    }

    func testNamesLoseTheirMiddleNotTheirEnds() {
        XCTAssertEqual(TextFitting.elide("StatefulPartitionedCall/model/block_16_project/Conv2D", to: 30), "…/block_16_project/Conv2D")
        XCTAssertEqual(TextFitting.elide("/layer2/downsample/downsample.0/Conv", to: 24), "/…/downsample.0/Conv")
        XCTAssertEqual(TextFitting.elide("identity_0020_with_a_very_long_name", to: 16), "ident…_long_name")
        XCTAssertEqual(TextFitting.elide("a/b", to: 10), "a/b")
        let list = Cell(["first_input_layer", "second_input_layer", "third_input_layer", "fourth_input_layer"])
        XCTAssertEqual(list.fitted(to: 41), "first_input_layer, second_input_layer, +2")
        XCTAssertEqual(list.fitted(to: 40), "first_input_layer, secon…input_layer, +2")
        XCTAssertEqual(list.fitted(to: 200), "first_input_layer, second_input_layer, third_input_layer, fourth_input_layer")
        let row = Cell(lead: "    ", ["a_rather_long_layer_name_indeed"], trail: " (Conv2D)")
        XCTAssertEqual(row.fitted(to: 30), "    a_rat…name_indeed (Conv2D)")
    }
}
