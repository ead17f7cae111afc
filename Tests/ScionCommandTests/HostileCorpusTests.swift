import Foundation
import XCTest

/// Tests/Hostile: files a stranger could hand Scion (truncated, bit-flipped, random, empty, declared
/// huge, negative dimensions, escaping external data, links, cycles, dangling edges, configs that are
/// not JSON or nest without end, zip bombs, files libhdf5 itself crashes or loops on, bad training
/// data). Each must end in exit status 1 with one line `error: FILE: ...` naming what is wrong, and
/// write nothing. Made by Tests/Hostile/make_corpus.py; corpus.json says how each is run. runScion's
/// time limit catches a hang.
final class HostileCorpusTests: XCTestCase {
    struct Case: Decodable {
        var file: String
        var args: [String]
        var expect: String
    }

    func testEveryHostileFileIsOneCleanError() throws {
        let folder = Repository.root.appendingPathComponent("Tests/Hostile")
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: folder.appendingPathComponent("corpus.json")))
        XCTAssertGreaterThanOrEqual(cases.count, 30)
        let output = try temporaryDirectory(self)
        for item in cases {
            let path = folder.appendingPathComponent(item.file).path
            let destination = output.appendingPathComponent(item.file).path
            let arguments = item.args.map { argument in
                argument.hasPrefix("fixtures/") ? Repository.root.appendingPathComponent(argument).path
                    : argument.replacingOccurrences(of: "{file}", with: path).replacingOccurrences(of: "{output}", with: destination)
            }
            let result = try runScion(arguments)
            XCTAssertEqual(result.status, 1, "\(item.file): \(result.standardError)")
            let lines = result.standardError.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(item.file): \(result.standardError)")
            XCTAssertTrue(result.standardError.hasPrefix("error: \(path)"), "\(item.file): \(result.standardError)")
            XCTAssertTrue(result.standardError.contains(item.expect), "\(item.file): expected '\(item.expect)' in \(result.standardError)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output.path), [], "nothing written, not even in part")
    }
}
