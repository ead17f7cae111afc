import Foundation
import XCTest

/// `scion inspect` and `scion convert` on ONNX files, end to end.
final class ONNXCommandTests: XCTestCase {
    func convertFixture(_ fixture: String, into directory: URL) throws -> URL {
        let output = directory.appendingPathComponent((fixture as NSString).lastPathComponent + ".onnx")
        let result = try runScion(["convert", Repository.fixture(fixture), output.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        return output
    }

    func summary(_ path: String) throws -> [String: Any] {
        let result = try runScion(["inspect", "--json", path])
        XCTAssertEqual(result.status, 0, result.standardError)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
    }

    /// Frozen-ness survives the conversion: the ONNX says which parameters are frozen, and inspect
    /// counts what Keras counted.
    func testInspectOfConvertedModelCountsWhatKerasCounted() throws {
        let directory = try temporaryDirectory(self)
        for (fixture, total, trainable) in [("keras2/nested_transfer.h5", 1211, 39), ("keras3/partly_frozen.keras", 877, 252),
                                            ("keras2/mobilenet_v2.h5", 255_173, 244_517)] {
            let object = try summary(try convertFixture(fixture, into: directory).path)
            XCTAssertEqual(object["format"] as? String, "onnx")
            XCTAssertEqual(object["totalParams"] as? Int, total, fixture)
            XCTAssertEqual(object["trainableParams"] as? Int, trainable, fixture)
            let inputs = try XCTUnwrap(object["inputs"] as? [[String: Any]])
            XCTAssertEqual(inputs.first?["dtype"] as? String, "float32")
        }
    }

    func testConvertingOntoItselfIsSafe() throws {
        let directory = try temporaryDirectory(self)
        let model = try convertFixture("keras3/conv2d_zoo.keras", into: directory)
        let before = try summary(model.path)
        let result = try runScion(["convert", model.path, model.path, "--force", "--opset", "19"])
        XCTAssertEqual(result.status, 0, result.standardError)
        let after = try summary(model.path)
        XCTAssertEqual(after["totalParams"] as? Int, before["totalParams"] as? Int)
        XCTAssertEqual(after["trainableParams"] as? Int, before["trainableParams"] as? Int)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [model.lastPathComponent])
    }

    func testBrokenONNXFilesFailWithOneLine() throws {
        let directory = try temporaryDirectory(self)
        let good = try Data(contentsOf: try convertFixture("keras2/nested_transfer.h5", into: directory))
        var generator = SystemRandomNumberGenerator()
        let cases: [(String, Data)] = [
            ("empty.onnx", Data()),
            ("text.onnx", Data("this is not a model\n".utf8)),
            ("random.onnx", Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })),
            ("half.onnx", good.prefix(good.count / 2)),
            ("head.onnx", good.prefix(40)),
        ]
        for (name, data) in cases {
            let url = directory.appendingPathComponent(name)
            try data.write(to: url)
            for command in [["inspect", url.path], ["convert", url.path, directory.appendingPathComponent("out-\(name)").path]] {
                let result = try runScion(command, timeout: 30)
                XCTAssertEqual(result.status, 1, "\(command): \(result.standardError)")
                XCTAssertEqual(result.standardError.split(separator: "\n").count, 1, result.standardError)
                XCTAssertTrue(result.standardError.hasPrefix("error: \(url.path)"), result.standardError)
            }
        }
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: directory.path).contains { $0.hasPrefix("out-") },
                       "nothing written for a broken input")
    }
}
