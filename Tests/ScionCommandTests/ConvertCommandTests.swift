import Foundation
import XCTest

/// `scion convert` end to end. The ONNX files written here are also checked by the real tools:
/// with SCION_INTEROP_DIR set (make test sets it), they are copied there and `make interop` runs
/// onnx's checker and onnxruntime on every one.
final class ConvertCommandTests: XCTestCase {
    /// Keeps a written ONNX file for the interop check.
    func keepForInterop(_ url: URL, as name: String) throws {
        guard let folder = ProcessInfo.processInfo.environment["SCION_INTEROP_DIR"] else { return }
        let directory = URL(fileURLWithPath: folder).appendingPathComponent("convert-command")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let target = directory.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: target)
        try FileManager.default.copyItem(at: url, to: target)
    }

    func testEveryFixtureConvertsToONNX() throws {
        let directory = try temporaryDirectory(self)
        var converted = 0
        for folder in ["keras2", "keras3"] {
            let source = Repository.fixtures.appendingPathComponent(folder)
            for file in try FileManager.default.contentsOfDirectory(atPath: source.path).sorted()
            where (file.hasSuffix(".h5") && !file.hasSuffix(".weights.h5") && file != "weights_only.h5") || file.hasSuffix(".keras") {
                let output = directory.appendingPathComponent("\(folder)_\(file).onnx")
                let result = try runScion(["convert", source.appendingPathComponent(file).path, output.path])
                if file.hasPrefix("activation_zoo") && folder == "keras3" {
                    // Keras 3's sparsemax has no ONNX pattern yet: a clean, named refusal.
                    XCTAssertEqual(result.status, 1)
                    XCTAssertTrue(result.standardError.contains("sparsemax"), result.standardError)
                    XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "nothing half-written")
                    continue
                }
                if let layer = ["custom_layer": "base_scale: no ONNX for it: 'ScaleBy' is a custom layer class (scion_fixtures>ScaleBy)",
                                "lambda_layer": "affine: no ONNX for it: a Lambda layer's computation is Python bytecode",
                                // ONNX Resize has no Lanczos kernel.
                                "resizing_kernels": "down_lanczos3: Resizing with lanczos3"]
                    .first(where: { file.hasPrefix($0.key + ".") })?.value {
                    // What ONNX cannot express (a user's class or a Lambda: Python code; Lanczos): refused by name.
                    XCTAssertEqual(result.status, 1)
                    XCTAssertTrue(result.standardError.contains(layer), result.standardError)
                    XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "nothing half-written")
                    continue
                }
                XCTAssertEqual(result.status, 0, "\(folder)/\(file): \(result.standardError)")
                XCTAssertTrue(FileManager.default.fileExists(atPath: output.path))
                try keepForInterop(output, as: "\(folder)_\(file).onnx")
                converted += 1
            }
        }
        XCTAssertGreaterThan(converted, 40)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], "temporary files left behind")
    }

    func testExistingOutputIsKeptWithoutForce() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("model.onnx")
        try Data("precious".utf8).write(to: output)
        let result = try runScion(["convert", Repository.fixture("keras2/nested_transfer.h5"), output.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("--force"), result.standardError)
        XCTAssertEqual(try String(contentsOf: output, encoding: .utf8), "precious")
        let forced = try runScion(["convert", Repository.fixture("keras2/nested_transfer.h5"), output.path, "--force"])
        XCTAssertEqual(forced.status, 0, forced.standardError)
        XCTAssertNotEqual(try Data(contentsOf: output), Data("precious".utf8))
    }

    func testFailedConversionLeavesExistingFileAndNoTemporary() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("zoo.onnx")
        try Data("precious".utf8).write(to: output)
        let result = try runScion(["convert", Repository.fixture("keras3/activation_zoo.keras"), output.path, "--force"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(try String(contentsOf: output, encoding: .utf8), "precious")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["zoo.onnx"])
    }

    func testUnknownOutputExtensionAndOpsetAreRefused() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras2/nested_transfer.h5")
        let pt = try runScion(["convert", model, directory.appendingPathComponent("m.pt").path])
        XCTAssertEqual(pt.status, 1)
        XCTAssertTrue(pt.standardError.contains(".pt"), pt.standardError)
        let opset = try runScion(["convert", model, directory.appendingPathComponent("m.onnx").path, "--opset", "9"])
        XCTAssertEqual(opset.status, 2, "a value out of range is a usage error")
        XCTAssertTrue(opset.standardError.contains("opset 9"), opset.standardError)
    }

    func testWeightsOnlyFileCannotBeConverted() throws {
        let directory = try temporaryDirectory(self)
        let result = try runScion(["convert", Repository.fixture("keras2/weights_only.h5"), directory.appendingPathComponent("w.onnx").path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("weights only"), result.standardError)
    }

    /// Above 2 GB the weights must leave the protobuf; `--external-data` forces it on a small model.
    func testExternalDataIsWrittenBesideTheModel() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("convnext.onnx")
        let result = try runScion(["convert", Repository.fixture("keras3/convnext_blocks.keras"), output.path, "--external-data"])
        XCTAssertEqual(result.status, 0, result.standardError)
        let data = directory.appendingPathComponent("convnext.onnx.data")
        let modelSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: output.path)[.size] as? Int)
        let dataSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: data.path)[.size] as? Int)
        XCTAssertGreaterThan(dataSize, 1952 * 4, "every weight is in the data file")
        XCTAssertLessThan(modelSize, 16_000, "the model file holds the graph only")
        let again = try runScion(["convert", Repository.fixture("keras3/convnext_blocks.keras"), output.path, "--external-data"])
        XCTAssertEqual(again.status, 1, "an existing model is not replaced without --force")
        guard let folder = ProcessInfo.processInfo.environment["SCION_INTEROP_DIR"] else { return }
        let target = URL(fileURLWithPath: folder).appendingPathComponent("external-data")
        try? FileManager.default.removeItem(at: target)
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: output, to: target.appendingPathComponent("convnext.onnx"))
        try FileManager.default.copyItem(at: data, to: target.appendingPathComponent("convnext.onnx.data"))
    }

    /// Without --opset, the lowest opset that writes every layer in its own ONNX form: 13 for a CNN,
    /// 14 for HardSwish, 17 for LayerNormalization, 18 for an antialiased Resize, 20 for Gelu, 21 for
    /// GroupNormalization.
    /// With --opset, that opset, where it can express the model at all.
    func testDefaultOpsetIsTheLowestThatExpressesTheModel() throws {
        let directory = try temporaryDirectory(self)
        for (fixture, lowest) in [("keras3/conv2d_zoo.keras", 13), ("keras3/mobilenet_v3_small.keras", 14),
                                  ("keras3/misc_zoo.keras", 17), ("keras3/resizing_antialias.keras", 18),
                                  ("keras3/convnext_blocks.keras", 20), ("keras3/group_norm.keras", 21)] {
            let output = directory.appendingPathComponent("lowest.onnx")
            let result = try runScion(["convert", Repository.fixture(fixture), output.path, "--force"])
            XCTAssertEqual(result.status, 0, "\(fixture): \(result.standardError)")
            let summary = try runScion(["inspect", "--json", output.path])
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(summary.standardOutput.utf8)) as? [String: Any])
            let opsets = try XCTUnwrap(object["opsets"] as? [[String: Any]])
            XCTAssertEqual(opsets.first?["version"] as? Int, lowest, fixture)
        }
        let refused = try runScion(["convert", Repository.fixture("keras3/resizing_antialias.keras"),
                                    directory.appendingPathComponent("a.onnx").path, "--opset", "17"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.standardError.contains("antialias needs ONNX Resize's antialias (opset 18"), refused.standardError)
    }

    func testEveryOpsetFrom13To23Writes() throws {
        let directory = try temporaryDirectory(self)
        for opset in 13...23 {
            let output = directory.appendingPathComponent("convnext-\(opset).onnx")
            let result = try runScion(["convert", Repository.fixture("keras3/convnext_blocks.keras"), output.path, "--opset", "\(opset)"])
            XCTAssertEqual(result.status, 0, "opset \(opset): \(result.standardError)")
            try keepForInterop(output, as: "convnext-opset\(opset).onnx")
        }
    }
}
