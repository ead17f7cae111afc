import Foundation
import XCTest

/// `scion graph` end to end: the file written, the dialect (--force, --json, errors naming the
/// file), the diff picture of a cut-and-grafted model. The picture itself is checked in ScionTests
/// (GraphPictureTests).
final class GraphCommandTests: XCTestCase {
    func testWritesEachFormatAndFollowsTheDialect() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras3/nested_transfer.keras")
        let svg = directory.appendingPathComponent("m.svg").path
        let written = try runScion(["graph", model, "-o", svg, "--fold-repeats", "--rankdir", "LR"])
        XCTAssertEqual(written.status, 0, written.standardError)
        XCTAssertTrue(written.standardOutput.hasPrefix("wrote \(svg) ("), written.standardOutput)
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).contains("<title>base/base_conv1</title>"))
        let again = try runScion(["graph", model, "-o", svg])
        XCTAssertEqual(again.status, 1)
        XCTAssertEqual(again.standardError, "error: \(svg): already exists; pass --force to replace it\n")
        let dot = directory.appendingPathComponent("m.dot").path
        let json = try runScion(["graph", model, "-o", dot, "--json"])
        XCTAssertEqual(json.status, 0, json.standardError)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
        XCTAssertEqual(object["format"] as? String, "dot")
        XCTAssertTrue(try String(contentsOfFile: dot, encoding: .utf8).hasPrefix("digraph \"nested_transfer\" {"))
        let wrongExtension = try runScion(["graph", model, "-o", directory.appendingPathComponent("m.jpg").path])
        XCTAssertEqual(wrongExtension.status, 1)
        XCTAssertTrue(wrongExtension.standardError.contains("m.jpg: '.jpg' is not an extension Scion writes for a picture"), wrongExtension.standardError)
        let badLayer = try runScion(["graph", model, "-o", directory.appendingPathComponent("p.svg").path, "--from", "nope"])
        XCTAssertEqual(badLayer.status, 1)
        XCTAssertEqual(badLayer.standardError, "error: \(model): --from nope: no such layer\n")
        XCTAssertEqual(try runScion(["graph", model, "-o", svg, "--force", "--rankdir", "up"]).status, 2)
    }

    /// The surgery of `scion cut` + `scion graft` drawn against the model it started from.
    func testDiffPictureOfACutAndGraftedModel() throws {
        let directory = try temporaryDirectory(self)
        let model = Repository.fixture("keras3/nested_transfer.keras")
        let cut = directory.appendingPathComponent("cut.keras").path
        let grafted = directory.appendingPathComponent("grafted.keras").path
        XCTAssertEqual(try runScion(["cut", model, "--after", "gap", "-o", cut]).status, 0)
        XCTAssertEqual(try runScion(["graft", cut, "--head", "dropout:0.2,dense:5:softmax", "--seed", "1", "-o", grafted]).status, 0)
        let picture = directory.appendingPathComponent("diff.svg").path
        let result = try runScion(["graph", model, "--diff", grafted, "-o", picture])
        XCTAssertEqual(result.status, 0, result.standardError)
        let svg = try String(contentsOfFile: picture, encoding: .utf8)
        XCTAssertTrue(svg.contains("class=\"node layer removed\""), "the old head struck through")
        XCTAssertTrue(svg.contains("<title>removed:head</title>"))
        XCTAssertEqual(svg.components(separatedBy: " added\"").count - 1, 2, "dropout and the new dense")
    }
}
