import Foundation
import ScionZip
import XCTest

@testable import ScionKeras

/// Zip-level damage in a `.keras` file reaches the user as a `KerasError` of the matching kind that
/// names the file and the entry, as it did when the zip code lived in this target.
final class KerasArchiveErrorTests: XCTestCase {
    private var directory = URL(fileURLWithPath: NSTemporaryDirectory())

    override func setUpWithError() throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("KerasArchiveErrorTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testDamagedEntryIsAnInvalidArchiveNamingTheEntry() throws {
        let path = directory.appendingPathComponent("model.keras").path
        let writer = try ZipWriter(path: path)
        try writer.addEntry(name: "config.json", bytes: Array("{}".utf8), compress: false)
        try writer.finish()
        // The stored bytes follow the 30-byte local header and the 11-byte name.
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[30 + 11] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        XCTAssertThrowsError(try KerasModelReader.readArchive(at: path)) { error in
            guard let error = error as? KerasError else { return XCTFail("not a KerasError: \(error)") }
            XCTAssertEqual(error.kind, .invalidArchive)
            XCTAssertEqual(error.file, path)
            XCTAssertEqual(error.subject, "config.json")
            XCTAssertTrue(error.reason.hasPrefix("checksum mismatch"), error.reason)
        }
    }

    func testFileThatIsNotAZipIsNotAKerasFile() throws {
        let path = directory.appendingPathComponent("model.keras").path
        try Data(String(repeating: "not a zip archive ", count: 4).utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try KerasModelReader.readArchive(at: path)) { error in
            guard let error = error as? KerasError else { return XCTFail("not a KerasError: \(error)") }
            XCTAssertEqual(error.kind, .notAKerasFile)
            XCTAssertEqual(error.description, "\(path): not a zip archive (starts with bytes 6e 6f 74 20)")
        }
    }
}
