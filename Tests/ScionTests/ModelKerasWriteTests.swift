import Foundation
import Scion
import ScionIR
import XCTest

/// `model.write(to:)` with a Keras extension: the Keras 2 file Keras 3 refuses (`groups: 1` on
/// DepthwiseConv2D) comes out as a Keras 3 `.keras` and `.h5` that read back with the same weights.
final class ModelKerasWriteTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func testKerasTwoMobileNetIsWrittenAsKerasThree() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try Model.load(fixtures.appendingPathComponent("keras2/mobilenet.h5").path)
        for name in ["mobilenet.keras", "mobilenet.h5"] {
            let path = directory.appendingPathComponent(name).path
            try source.write(to: path)
            let written = try Model.load(path)
            XCTAssertEqual(written.graph.totalParameterCount, source.graph.totalParameterCount, name)
            XCTAssertEqual(written.graph.trainableParameterCount, source.graph.trainableParameterCount, name)
            XCTAssertEqual(written.graph.nodes.map(\.op), source.graph.nodes.map(\.op), name)
            XCTAssertThrowsError(try source.write(to: path), "\(name) exists: needs force")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }, [],
                           "no temporary files left behind")
        }
    }
}
