import Foundation
import Scion
import ScionRuntime
import XCTest

/// docs/onnx-coverage.md is this test's output: one row per ONNX operator of opsets 7 to 23
/// (fixtures/onnx_operators.json, listed by scripts/list_onnx_ops.py), each cell what `ONNXCoverage`
/// found doing that path on the onnx wheel's backend node test cases holding the operator. The
/// cases are generated from the wheel into .build/onnx-node-cases by scripts/make_onnx_node_cases.py
/// (`make onnx-node-cases`, which `make unit-test` runs first). The page cannot drift: a change in what
/// Scion does changes the computed page and fails this test until it is regenerated with
/// `SCION_UPDATE_COVERAGE=1 swift test --filter ONNXCoverageTests`.
final class ONNXCoverageTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let page = root.appendingPathComponent("docs/onnx-coverage.md")
    static let generator = "scripts/make_onnx_node_cases.py"

    static var casesFolder: URL {
        ProcessInfo.processInfo.environment["SCION_ONNX_NODE_CASES"].map { URL(fileURLWithPath: $0) }
            ?? root.appendingPathComponent(".build/onnx-node-cases")
    }

    func testCoveragePageMatchesWhatScionDoes() throws {
        let listingData = try Data(contentsOf: Self.root.appendingPathComponent("fixtures/onnx_operators.json"))
        let listing = try XCTUnwrap(try JSONSerialization.jsonObject(with: listingData) as? [String: Any])
        let operators = try XCTUnwrap(listing["operators"] as? [String: [String: Any]]).mapValues {
            ONNXCoverage.Listing(sinceVersions: $0["sinceVersions"] as? [Int] ?? [], deprecated: $0["deprecated"] as? Int)
        }
        let index = Self.casesFolder.appendingPathComponent("cases.json")
        guard FileManager.default.fileExists(atPath: index.path) else {
            throw XCTSkip("no node cases in \(Self.casesFolder.path): run `make onnx-node-cases` (\(Self.generator))")
        }
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: index)) as? [String: Any])
        XCTAssertEqual(object["onnxVersion"] as? String, listing["onnxVersion"] as? String,
                       "the node cases and the operator list come from different onnx wheels")
        let entries = try XCTUnwrap(object["cases"] as? [String: [String: Any]])
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("scion-onnx-coverage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: scratch) }
        var coverage = ONNXCoverage()
        for (name, entry) in entries.sorted(by: { $0.key < $1.key }) {
            let folder = Self.casesFolder.appendingPathComponent(name)
            let unfed = entry["skipped"] as? String
            var inputs: [RuntimeTensor]?, expected: [RuntimeTensor]?
            if unfed == nil {
                inputs = try Self.arrays(folder, "input")
                expected = try Self.arrays(folder, "output")
            }
            // Operands as initializers (weights, shapes, axes), as exported models hold them, when written.
            let constant = folder.appendingPathComponent("constant_operands.onnx")
            let model = FileManager.default.fileExists(atPath: constant.path) ? constant : folder.appendingPathComponent("model.onnx")
            let base = name.replacingOccurrences(of: "_expanded(_ver[0-9]+)?$", with: "", options: .regularExpression)
            coverage.examine(ONNXCoverage.Case(name: name, path: model.path, operators: entry["ops"] as? [String] ?? [],
                                               subjects: base != name ? entries[base]?["ops"] as? [String] : nil,
                                               inputs: inputs, expected: expected, unfed: unfed), scratch: scratch)
        }
        let computed = coverage.page(operators: operators, onnxVersion: listing["onnxVersion"] as? String ?? "?",
                                     caseCount: entries.count, generator: Self.generator)
        if ProcessInfo.processInfo.environment["SCION_UPDATE_COVERAGE"] != nil {
            try computed.write(to: Self.page, atomically: true, encoding: .utf8)
        }
        let written = (try? String(contentsOf: Self.page, encoding: .utf8)) ?? ""
        XCTAssertEqual(written, computed, "docs/onnx-coverage.md is stale: regenerate it with SCION_UPDATE_COVERAGE=1 swift test --filter ONNXCoverageTests")
    }

    /// `input_0.npy`, `input_1.npy`... in order.
    static func arrays(_ folder: URL, _ kind: String) throws -> [RuntimeTensor] {
        var result: [RuntimeTensor] = []
        while true {
            let path = folder.appendingPathComponent("\(kind)_\(result.count).npy").path
            guard FileManager.default.fileExists(atPath: path) else { return result }
            result.append(try NumpyFile.read(path))
        }
    }
}
