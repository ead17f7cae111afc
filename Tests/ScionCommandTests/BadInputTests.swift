import Foundation
import XCTest

/// Broken and hostile files end in exit status 1 with one line on stderr naming the file; no crash,
/// no hang, nothing from libhdf5's own error printing.
final class BadInputTests: XCTestCase {
    func assertCleanFailure(_ path: String, mentions expected: [String] = [], file: StaticString = #filePath,
                            line: UInt = #line) throws {
        let result = try runScion(["inspect", path], timeout: 30)
        XCTAssertEqual(result.status, 1, "\(path): \(result.standardError)", file: file, line: line)
        XCTAssertEqual(result.standardOutput, "", file: file, line: line)
        let lines = result.standardError.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 2, "one line and its newline: \(result.standardError)", file: file, line: line)
        XCTAssertTrue(result.standardError.hasPrefix("error: "), result.standardError, file: file, line: line)
        XCTAssertTrue(result.standardError.contains(path), "names the file: \(result.standardError)", file: file, line: line)
        for word in expected {
            XCTAssertTrue(result.standardError.contains(word), "mentions \(word): \(result.standardError)", file: file, line: line)
        }
    }

    func testMissingFile() throws {
        try assertCleanFailure("/nonexistent/model.h5", mentions: ["no such file"])
    }

    func testEmptyNonHDF5TruncatedAndRandomFiles() throws {
        let directory = try temporaryDirectory(self)
        let good = try Data(contentsOf: Repository.fixtures.appendingPathComponent("keras2/conv2d_zoo.h5"))
        var generator = SystemRandomNumberGenerator()
        let cases: [(String, Data)] = [
            ("empty.h5", Data()),
            ("text.h5", Data("this is not a model\n".utf8)),
            ("truncated.h5", good.prefix(good.count / 2)),
            ("header-only.h5", good.prefix(600)),
            ("random.h5", Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })),
            ("random.keras", Data([0x50, 0x4B, 0x03, 0x04] + (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })),
            ("text.keras", Data("{}".utf8)),
        ]
        for (name, data) in cases {
            let url = directory.appendingPathComponent(name)
            try data.write(to: url)
            try assertCleanFailure(url.path)
        }
    }

    func testTruncatedArchiveAtManyLengths() throws {
        let directory = try temporaryDirectory(self)
        let good = try Data(contentsOf: Repository.fixtures.appendingPathComponent("keras3/conv1d_zoo.keras"))
        for fraction in [0.1, 0.5, 0.9, 0.99] {
            let url = directory.appendingPathComponent("cut-\(fraction).keras")
            try good.prefix(Int(Double(good.count) * fraction)).write(to: url)
            try assertCleanFailure(url.path)
        }
    }

    /// Bit flips in a `.keras` archive's zip structure (its first local header and its central
    /// directory). Flips inside HDF5 data are not tested here: libhdf5 1.10 itself can crash on
    /// damaged files (see docs/keras-formats.md, "Damaged HDF5 files").
    func testBitFlippedArchiveStructureNeverCrashes() throws {
        let directory = try temporaryDirectory(self)
        let good = [UInt8](try Data(contentsOf: Repository.fixtures.appendingPathComponent("keras3/nested_transfer.keras")))
        var generator = SystemRandomNumberGenerator()
        let regions = [0..<64, (good.count - 150)..<good.count]
        for round in 0..<40 {
            var bytes = good
            for _ in 0..<3 {
                let region = regions[round % 2]
                let position = Int.random(in: region, using: &generator)
                bytes[position] ^= UInt8(1 << Int.random(in: 0..<8, using: &generator))
            }
            let url = directory.appendingPathComponent("flip-\(round).keras")
            try Data(bytes).write(to: url)
            let result = try runScion(["inspect", url.path], timeout: 30)
            // A flip in a field nobody checks (a date, say) leaves a readable model; anything else
            // must fail cleanly.
            XCTAssertTrue(result.status == 0 || result.status == 1, "\(url.lastPathComponent): status \(result.status)")
            if result.status == 1 {
                XCTAssertEqual(result.standardError.split(separator: "\n").count, 1, result.standardError)
                XCTAssertTrue(result.standardError.hasPrefix("error: "))
            }
        }
    }

    /// The broken files in fixtures/bad, each with what its message must say.
    func testBadFixtures() throws {
        let directory = Repository.fixtures.appendingPathComponent("bad")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".h5") || $0.hasSuffix(".keras") }.sorted()
        XCTAssertGreaterThan(files.count, 8)
        let expectations: [String: [String]] = [
            "config_not_json.h5": ["model_config", "JSON"],
            "config_not_json.keras": ["config.json", "JSON"],
            "weight_shape_mismatch.h5": ["kernel", "shape"],
            "missing_weight.h5": ["trunk", "kernel:0", "missing"],
            "missing_layer_group.h5": ["trunk", "layer_names"],
            "weight_shape_mismatch.keras": ["trunk", "kernel", "[7, 8]"],
            "missing_config.h5": ["not a Keras model"],
        ]
        // An unknown layer class is not an error: it reads as an opaque layer with its weights.
        for file in files where file != "unknown_layer_class.h5" {
            try assertCleanFailure(directory.appendingPathComponent(file).path, mentions: expectations[file] ?? [])
        }
    }
}

final class UnknownLayerTests: XCTestCase {
    /// A layer class Scion does not know still reads: listed with its type, its weights kept.
    func testUnknownLayerReadsAsOpaqueWithWeights() throws {
        let result = try runScion(["inspect", "--json", Repository.fixture("bad/unknown_layer_class.h5")])
        XCTAssertEqual(result.status, 0, result.standardError)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any])
        let layers = try XCTUnwrap(object["layers"] as? [[String: Any]])
        let trunk = try XCTUnwrap(layers.first { $0["name"] as? String == "trunk" })
        XCTAssertEqual(trunk["type"] as? String, "NoSuchLayer")
        XCTAssertEqual(trunk["params"] as? Int, 12 * 8 + 8)
    }
}
