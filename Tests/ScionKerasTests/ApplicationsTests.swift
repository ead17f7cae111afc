import Foundation
import XCTest

@testable import ScionKeras

/// The full-size keras.applications models (random weights), made by
/// `fixtures/make_applications.py` into fixtures/applications/ (about 4 GB, not committed). Skipped
/// when they have not been made: `make -C fixtures applications` makes them, then
/// `swift test --filter ApplicationsTests`.
final class ApplicationsTests: XCTestCase {
    func testFullSizeApplicationsCountsMatchKeras() throws {
        let root = Repository.fixtures.appendingPathComponent("applications")
        guard FileManager.default.fileExists(atPath: root.path) else {
            throw XCTSkip("fixtures/applications not made; run fixtures/make_applications.py")
        }
        var checked = 0
        for version in ["keras2", "keras3"] {
            let folder = root.appendingPathComponent(version)
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { continue }
            for file in files.sorted() where file.hasSuffix(".json") {
                let base = String(file.dropLast(5))
                let reference = try JSONDecoder().decode(KerasReference.self, from: Data(contentsOf: folder.appendingPathComponent(file)))
                for suffix in [".h5", ".keras"] where files.contains(base + suffix) {
                    let graph = try readKeras(folder.appendingPathComponent(base + suffix))
                    XCTAssertEqual(graph.totalParameterCount, reference.totalParams, "\(version)/\(base)\(suffix)")
                    XCTAssertEqual(graph.trainableParameterCount, reference.trainableParams, "\(version)/\(base)\(suffix)")
                    XCTAssertFalse(graph.nodes.contains { if case .opaque = $0.op { true } else { false } },
                                   "\(version)/\(base)\(suffix) has layers Scion does not interpret")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }
}
