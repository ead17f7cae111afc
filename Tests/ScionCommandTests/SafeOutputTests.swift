import Foundation
import XCTest

/// Outputs are written to a temporary file in the target folder and renamed into place: converting a
/// file onto itself works (its weights are read before the rename), and a failed run leaves an
/// existing output as it was and no partial file beside it.
final class SafeOutputTests: XCTestCase {
    func testConvertingAFileOntoItselfKeepsItsWeights() throws {
        let directory = try temporaryDirectory(self)
        for original in [Repository.digits("digits_cnn.keras"), Repository.fixture("digits/digits_cnn.h5")] {
            let name = (original as NSString).lastPathComponent
            let copy = directory.appendingPathComponent(name).path
            try FileManager.default.copyItem(atPath: original, toPath: copy)
            let converted = try runScion(["convert", copy, copy, "--force"])
            XCTAssertEqual(converted.status, 0, converted.standardError)
            let diff = try runScion(["diff", original, copy, "--json"])
            XCTAssertEqual(diff.status, 0, diff.standardError)
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(diff.standardOutput.utf8)) as? [String: Any])
            XCTAssertEqual((report["weightsChanged"] as? [Any])?.count, 0, "\(name): \(diff.standardOutput)")
            XCTAssertEqual(report["weightsUnchanged"] as? Int, 20, name)
        }
        let onnx = directory.appendingPathComponent("digits.onnx").path
        XCTAssertEqual(try runScion(["convert", Repository.digits("digits_cnn.keras"), onnx]).status, 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: onnx))
        XCTAssertEqual(try runScion(["convert", onnx, onnx, "--force"]).status, 0)
        let diff = try runScion(["diff", onnx, Repository.digits("digits_cnn.keras")])
        XCTAssertEqual(diff.status, 0, diff.standardError)
        XCTAssertFalse(try Data(contentsOf: URL(fileURLWithPath: onnx)).isEmpty)
        XCTAssertNotEqual(before.count, 0)
    }

    func testAFailedRunLeavesTheExistingOutputAlone() throws {
        let directory = try temporaryDirectory(self)
        let output = directory.appendingPathComponent("out.keras").path
        try Data("precious".utf8).write(to: URL(fileURLWithPath: output))
        let hostile = Repository.root.appendingPathComponent("Tests/Hostile/declared_huge.onnx").path
        let result = try runScion(["convert", hostile, output, "--force"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(try String(contentsOfFile: output, encoding: .utf8), "precious")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["out.keras"], "no temporary file left")
        let refused = try runScion(["convert", Repository.digits("digits_cnn.keras"), output])
        XCTAssertEqual(refused.status, 1, "an existing file is never overwritten without --force")
        XCTAssertEqual(try String(contentsOfFile: output, encoding: .utf8), "precious")
    }
}
