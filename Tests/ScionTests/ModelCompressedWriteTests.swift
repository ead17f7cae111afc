import Foundation
import Scion
import ScionIR
import XCTest

/// `--compress` stores Keras weights with deflate: smaller files, the same weights read back.
final class ModelCompressedWriteTests: XCTestCase {
    func testCompressedKerasFilesHoldTheSameWeights() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scion-compress-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try Model.load(fixtures.appendingPathComponent("keras2/nested_transfer.h5").path)
        for suffix in ["keras", "h5"] {
            let plain = directory.appendingPathComponent("plain.\(suffix)").path
            let packed = directory.appendingPathComponent("packed.\(suffix)").path
            try source.write(to: plain)
            var options = Model.WriteOptions()
            options.compress = true
            try source.write(to: packed, options: options)
            let reread = try Model.load(packed)
            XCTAssertEqual(reread.graph.totalParameterCount, source.graph.totalParameterCount)
            // Nested scopes are inlined with new names; the order of the weights is kept.
            XCTAssertEqual(reread.graph.parameters.count, source.graph.parameters.count)
            for (original, written) in zip(source.graph.parameters.all, reread.graph.parameters.all) {
                XCTAssertEqual(try written.storage.bytes(), try original.storage.bytes(), "\(original.name) vs \(written.name)")
                XCTAssertEqual(written.trainable, original.trainable, original.name)
            }
            let plainSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: plain)[.size] as? Int)
            let packedSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: packed)[.size] as? Int)
            XCTAssertNotEqual(plainSize, packedSize, "the deflate filter changed nothing in .\(suffix)")
        }
    }
}
