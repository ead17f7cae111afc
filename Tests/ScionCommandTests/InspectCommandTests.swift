import Foundation
import XCTest

/// `scion inspect` end to end: the table, the JSON keys, and what Keras counted.
final class InspectCommandTests: XCTestCase {
    func json(_ arguments: [String]) throws -> [String: Any] {
        let result = try runScion(arguments)
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertEqual(result.standardError, "")
        let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8))
        return try XCTUnwrap(object as? [String: Any])
    }

    func testTableShowsNestedBaseFrozenAndKerasTotals() throws {
        let result = try runScion(["inspect", Repository.fixture("keras2/nested_transfer.h5")])
        XCTAssertEqual(result.status, 0, result.standardError)
        let text = result.standardOutput
        XCTAssertTrue(text.contains("base (Functional)"), text)
        XCTAssertTrue(text.contains("  base_conv1 (Conv2D)"), "nested layers are indented under their model")
        XCTAssertTrue(text.contains("Total params: 1,211"), text)
        XCTAssertTrue(text.contains("Trainable params: 39 "), text)
        XCTAssertTrue(text.contains("Non-trainable params: 1,172"), text)
    }

    func testJSONHasTheDocumentedKeys() throws {
        let object = try json(["inspect", "--json", Repository.fixture("keras3/multi_io.keras")])
        for key in ["format", "name", "inputs", "outputs", "layers", "totalParams", "trainableParams",
                    "nonTrainableParams", "sizeBytes"] {
            XCTAssertNotNil(object[key], "missing key \(key)")
        }
        let inputs = try XCTUnwrap(object["inputs"] as? [[String: Any]])
        XCTAssertEqual(inputs.count, 2)
        XCTAssertEqual(Set(inputs.flatMap { $0.keys }), ["name", "shape", "dtype", "dimensionNames"])
        let outputs = try XCTUnwrap(object["outputs"] as? [[String: Any]])
        XCTAssertEqual(outputs.count, 2)
        let layers = try XCTUnwrap(object["layers"] as? [[String: Any]])
        for layer in layers {
            for key in ["name", "type", "inputs", "outputShape", "params", "trainable"] {
                XCTAssertTrue(layer.keys.contains(key), "layer \(layer["name"] ?? "?") lacks \(key)")
            }
        }
        XCTAssertEqual(object["totalParams"] as? Int, 353)
        XCTAssertEqual(object["sizeBytes"] as? Int, 353 * 4)
    }

    /// The model-level keys, compared with what `onnx.load` reports for the same files; every key is
    /// present for every format, null where the format has no such thing.
    func testJSONHasModelFactsForONNXAndKeras() throws {
        let tf2onnx = try json(["inspect", "--json", Repository.fixture("tf2onnx/conv2d_zoo.onnx")])
        XCTAssertEqual(tf2onnx["irVersion"] as? Int, 8)
        XCTAssertEqual(tf2onnx["producer"] as? [String: String], ["name": "tf2onnx", "version": "1.17.0 None"])
        let opsets = try XCTUnwrap(tf2onnx["opsets"] as? [[String: Any]])
        XCTAssertEqual(opsets.map { "\($0["domain"] ?? "?")=\($0["version"] ?? "?")" }, ["=17", "ai.onnx.ml=2"])
        XCTAssertEqual(tf2onnx["metadata"] as? [String: String], [:])
        for key in ["docString", "kerasVersion", "backend"] { XCTAssertTrue(tf2onnx[key] is NSNull, key) }
        let input = try XCTUnwrap((tf2onnx["inputs"] as? [[String: Any]])?.first)
        XCTAssertEqual((input["dimensionNames"] as? [Any])?.map { "\($0)" }, ["unk__277", "<null>", "<null>", "<null>"])

        let keras = try json(["inspect", "--json", Repository.fixture("keras2/nested_transfer.h5")])
        XCTAssertEqual(keras["producer"] as? [String: String], ["name": "Keras", "version": "2.21.0"])
        XCTAssertEqual(keras["backend"] as? String, "tensorflow")
        for key in ["irVersion", "opsets", "metadata", "docString"] { XCTAssertTrue(keras[key] is NSNull, key) }
        XCTAssertTrue((keras["inputs"] as? [[String: Any]])?.first?["dimensionNames"] is NSNull)
    }

    /// Scion's own ONNX carries metadata_props (`onnx.load` lists the same four): inspect shows them all.
    func testMetadataPropsOfAConvertedModelAreListed() throws {
        let directory = try temporaryDirectory(self)
        let onnx = directory.appendingPathComponent("nested.onnx").path
        XCTAssertEqual(try runScion(["convert", Repository.fixture("keras2/nested_transfer.h5"), onnx]).status, 0)
        let object = try json(["inspect", "--json", onnx])
        let metadata = try XCTUnwrap(object["metadata"] as? [String: String])
        XCTAssertEqual(metadata.keys.sorted(), ["scion.frozen_parameters", "scion.source.format", "scion.source.keras.class_name",
                                                "scion.source.keras_version"])
        XCTAssertEqual(metadata["scion.source.keras_version"], "2.21.0")
        XCTAssertEqual(object["producer"] as? [String: String], ["name": "scion", "version": "0.1.0"])
        let table = try runScion(["inspect", onnx]).standardOutput
        XCTAssertTrue(table.contains("\n           scion.source.keras_version = 2.21.0\n"), table)
    }

    /// The interface comes first, then the layers; ONNX nodes by their op types, inputs by producing node.
    func testTableShowsInterfaceThenLayersOfAnONNXFile() throws {
        let result = try runScion(["inspect", Repository.fixture("torch/tiny_vgg.onnx")])
        XCTAssertEqual(result.status, 0, result.standardError)
        let text = result.standardOutput
        let interface = try XCTUnwrap(text.range(of: "\nInput   image   float32  (batch, 3, 16, 16)\nOutput  output  float32  (batch, 5)\n"), text)
        let layers = try XCTUnwrap(text.range(of: "\nLayer (type) "), text)
        XCTAssertLessThan(interface.lowerBound, layers.lowerBound)
        XCTAssertTrue(text.contains("Producer:  pytorch 2.13.0\n"), text)
        XCTAssertFalse(text.contains("Conv2D"), "Keras names for ONNX nodes: \(text)")
        XCTAssertFalse(text.contains("_output_0"), "value names in the Inputs column: \(text)")
        XCTAssertLessThanOrEqual(text.split(separator: "\n").map(\.count).max() ?? 0, 120)
    }

    func testJSONCountsEqualKerasForEveryFixture() throws {
        var checked = 0
        for folder in ["keras2", "keras3"] {
            let directory = Repository.fixtures.appendingPathComponent(folder)
            for file in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
            where file.hasSuffix(".keras") || (file.hasSuffix(".h5") && !file.hasSuffix(".weights.h5")) {
                let base = file.hasSuffix(".keras") ? String(file.dropLast(6)) : String(file.dropLast(3))
                let referenceURL = directory.appendingPathComponent(base + ".json")
                guard let data = try? Data(contentsOf: referenceURL),
                      let reference = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
                let object = try json(["inspect", "--json", directory.appendingPathComponent(file).path])
                XCTAssertEqual(object["totalParams"] as? Int, reference["totalParams"] as? Int, file)
                if let trainable = reference["trainableParams"] as? Int {
                    XCTAssertEqual(object["trainableParams"] as? Int, trainable, "\(folder)/\(file)")
                    XCTAssertEqual(object["nonTrainableParams"] as? Int, reference["nonTrainableParams"] as? Int, file)
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 40)
    }

    func testWeightsListsEveryTensorWithChecksum() throws {
        let object = try json(["inspect", "--json", "--weights", Repository.fixture("keras2/conv2d_zoo.h5")])
        let weights = try XCTUnwrap(object["weights"] as? [[String: Any]])
        let reference = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: Repository.fixtures.appendingPathComponent("keras2/conv2d_zoo.json"))) as? [String: Any])
        XCTAssertEqual(weights.count, (reference["weights"] as? [Any])?.count)
        for weight in weights {
            let crc = try XCTUnwrap(weight["crc32"] as? String)
            XCTAssertEqual(crc.count, 8)
            XCTAssertNotNil(weight["bytes"] as? Int)
            XCTAssertNotNil(weight["trainable"] as? Bool)
        }
        let table = try runScion(["inspect", "--weights", Repository.fixture("keras2/conv2d_zoo.h5")])
        XCTAssertTrue(table.standardOutput.contains("CRC-32"))
    }

    /// Keras 3 saved each fixture both as `.h5` and as `.keras`: the two readers must give every
    /// weight the same name, shape, trainability and bytes.
    func testH5AndArchiveOfOneModelHaveIdenticalWeights() throws {
        for name in ["nested_transfer", "conv2d_zoo", "shared_layer", "efficientnet_blocks", "convnext_blocks", "inception_resnet_block", "misc_zoo"] {
            let fromH5 = try json(["inspect", "--json", "--weights", Repository.fixture("keras3/\(name).h5")])
            let fromArchive = try json(["inspect", "--json", "--weights", Repository.fixture("keras3/\(name).keras")])
            func rows(_ object: [String: Any]) -> [String] {
                ((object["weights"] as? [[String: Any]]) ?? []).map { weight in
                    "\(weight["name"] ?? "") \(weight["shape"] ?? "") \(weight["trainable"] ?? "") \(weight["crc32"] ?? "")"
                }
            }
            XCTAssertFalse(rows(fromH5).isEmpty, name)
            XCTAssertEqual(rows(fromH5), rows(fromArchive), name)
        }
    }

    func testWeightsOnlyFileListsTensorsAndSaysSo() throws {
        let result = try runScion(["inspect", Repository.fixture("keras2/weights_only.h5")])
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertTrue(result.standardOutput.contains("Weights only"), result.standardOutput)
        XCTAssertTrue(result.standardOutput.contains("Total params: 4,794"), result.standardOutput)
        let object = try json(["inspect", "--json", Repository.fixture("keras2/weights_only.h5")])
        XCTAssertEqual(object["weightsOnly"] as? Bool, true)
        XCTAssertTrue(object["trainableParams"] is NSNull)
    }

    func testHelpDescribesInspect() throws {
        let result = try runScion(["inspect", "--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.standardOutput.contains("Show a model's layers, shapes, parameter counts and trainability."))
        XCTAssertTrue(result.standardOutput.contains("--json"))
        XCTAssertTrue(result.standardOutput.contains("--weights"))
    }
}
