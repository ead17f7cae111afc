import Foundation
import Scion
import ScionRuntime
import XCTest

/// A broken `.npz` is reported about the `.npz` (file, entry, what is wrong), never as a Keras
/// problem: the zip reader is shared with `.keras` models but its errors are not theirs.
final class NumpyArchiveTests: XCTestCase {
    private func temporaryNpz() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scion-\(UUID().uuidString).npz").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testCorruptEntryNamesTheNpzAndTheEntryNotKeras() throws {
        let path = temporaryNpz()
        try NumpyArchive.write([("x", RuntimeTensor(shape: [2], data: [1, 2]))], to: path)
        // Inside x.npy's magic (after the 30-byte local header and the 5-byte name): the CRC-32 no
        // longer matches, which the zip layer finds before NumPy decoding starts.
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[30 + 5 + 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        XCTAssertThrowsError(try NumpyArchive.read(path)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path): entry 'x.npy': checksum mismatch"), "\(error)")
            XCTAssertFalse("\(error)".lowercased().contains("keras"), "\(error)")
            XCTAssertFalse("\(type(of: error))".contains("Keras"), "a \(type(of: error)) for a NumPy archive")
        }
    }

    func testFileThatIsNotAZipSaysItIsNoNpz() throws {
        let path = temporaryNpz()
        try Data(String(repeating: "not a zip archive ", count: 4).utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NumpyArchive.read(path)) { error in
            XCTAssertEqual("\(error)", "\(path): is not a NumPy .npz archive: not a zip archive (starts with bytes 6e 6f 74 20)")
            XCTAssertFalse("\(type(of: error))".contains("Keras"), "a \(type(of: error)) for a NumPy archive")
        }
    }
}
