import Foundation
import XCTest

/// `scion convert MODEL.onnx OUT.keras|OUT.h5`, end to end. Keras itself loads and runs these
/// files in Tests/Interop/check_onnx_keras.py; here: exit status, counts, refusals.
final class ONNXToKerasCommandTests: XCTestCase {
    func summary(_ path: String) throws -> [String: Any] {
        let result = try runScion(["inspect", "--json", path])
        XCTAssertEqual(result.status, 0, result.standardError)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
    }

    func layerTypes(_ object: [String: Any]) -> [String] {
        (object["layers"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
    }

    /// tf2onnx's MobileNet: every Conv/Clip/Pad/GlobalAveragePool becomes a Keras layer, no Permute left (the
    /// model keeps tf2onnx's NHWC interface), the same parameter count.
    func testTf2onnxModelBecomesKerasLayers() throws {
        let directory = try temporaryDirectory(self)
        let source = Repository.fixture("tf2onnx/mobilenet.onnx")
        let onnx = try summary(source)
        for suffix in ["keras", "h5"] {
            let output = directory.appendingPathComponent("mobilenet.\(suffix)").path
            let result = try runScion(["convert", source, output])
            XCTAssertEqual(result.status, 0, result.standardError)
            let keras = try summary(output)
            XCTAssertEqual(keras["format"] as? String, suffix == "h5" ? "keras-h5" : "keras")
            XCTAssertEqual(keras["totalParams"] as? Int, onnx["totalParams"] as? Int)
            let types = layerTypes(keras)
            XCTAssertFalse(types.contains("Permute"), "\(types)")
            XCTAssertTrue(types.contains("DepthwiseConv2D") && types.contains("ZeroPadding2D") && types.contains("GlobalAveragePooling2D"), "\(types)")
        }
    }

    /// torch's exports (fixtures/torch): Scion reads back what it wrote, with the same counts. A
    /// ResNet's branches make Keras's layer order differ from the graph's, which the config follows.
    func testTorchExportsReadBackWithTheSameCounts() throws {
        let directory = try temporaryDirectory(self)
        for name in ["tiny_resnet", "tiny_vgg", "tiny_mobilenet"] {
            let source = Repository.fixture("torch/\(name).onnx")
            let total = try summary(source)["totalParams"] as? Int
            for suffix in ["keras", "h5"] {
                let output = directory.appendingPathComponent("\(name).\(suffix)").path
                let result = try runScion(["convert", source, output])
                XCTAssertEqual(result.status, 0, result.standardError)
                XCTAssertEqual(try summary(output)["totalParams"] as? Int, total, "\(name).\(suffix)")
            }
        }
    }

    /// Keras 2 .h5 → ONNX → .keras: frozen layers stay frozen all the way.
    func testFrozenBaseSurvivesTheRoundTripThroughONNX() throws {
        let directory = try temporaryDirectory(self)
        let onnx = directory.appendingPathComponent("nested.onnx").path
        let keras = directory.appendingPathComponent("nested.keras").path
        XCTAssertEqual(try runScion(["convert", Repository.fixture("keras2/nested_transfer.h5"), onnx]).status, 0)
        let result = try runScion(["convert", onnx, keras])
        XCTAssertEqual(result.status, 0, result.standardError)
        let object = try summary(keras)
        XCTAssertEqual(object["totalParams"] as? Int, 1211)
        XCTAssertEqual(object["trainableParams"] as? Int, 39)
    }

    func testChannelsLastInputChangesTheInputShape() throws {
        let directory = try temporaryDirectory(self)
        // Scion's own ONNX of a Keras model takes NHWC; a torch-style NCHW input is made by hand below.
        let onnx = directory.appendingPathComponent("conv.onnx").path
        XCTAssertEqual(try runScion(["convert", Repository.fixture("keras2/conv2d_zoo.h5"), onnx]).status, 0)
        let plain = directory.appendingPathComponent("plain.keras").path
        let nhwc = directory.appendingPathComponent("nhwc.keras").path
        XCTAssertEqual(try runScion(["convert", onnx, plain]).status, 0)
        let result = try runScion(["convert", onnx, nhwc, "--channels-last-input"])
        XCTAssertEqual(result.status, 0, result.standardError)
        // The input is NHWC already (a Transpose to NCHW follows it in the ONNX): both agree.
        let inputs = { (path: String) in try (self.summary(path)["inputs"] as? [[String: Any]])?.first?["shape"] as? [Any] }
        XCTAssertEqual(try inputs(plain)?.count, 4)
        XCTAssertEqual(try inputs(plain).map { "\($0)" }, try inputs(nhwc).map { "\($0)" })
    }

    /// A node with no Keras layer: exit 1, one line naming the file, the node and its op; nothing written.
    func testUnmappableNodeIsRefusedAndNothingIsWritten() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("zoo.keras")
        let source = Repository.fixture("tf2onnx/misc_zoo.onnx")
        let result = try runScion(["convert", source, output.path])
        XCTAssertEqual(result.status, 1)
        let lines = result.standardError.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.standardError)
        XCTAssertTrue(result.standardError.contains(source), result.standardError)
        // The symbolic folding names the Shape by the length it reports (`Shape:0#length0`).
        XCTAssertTrue(result.standardError.contains("node 'misc_zoo/layer_norm/Shape"), result.standardError)
        XCTAssertTrue(result.standardError.contains("Shape has no Keras layer"), result.standardError)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }
}
