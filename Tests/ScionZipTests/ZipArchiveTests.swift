import Foundation
import ScionIR
import XCTest
@testable import ScionZip

final class ZipArchiveTests: XCTestCase {
    var directory = URL(fileURLWithPath: NSTemporaryDirectory())

    override func setUpWithError() throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ZipArchiveTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - Round trips

    func testRoundTripOfStoredAndDeflatedEntries() throws {
        let json = Array(String(repeating: #"{"class_name": "Dense", "units": 8}"#, count: 50).utf8)
        let weights = randomBytes(count: 100_000, seed: 1)
        let unicodeText = Array("poids de l’été".utf8)
        let path = try makeArchive([
            ("config.json", json, true),
            ("metadata.json", Array(#"{"keras_version": "3.3.3"}"#.utf8), false),
            ("model.weights.h5", weights, false),
            ("empty-stored", [], false),
            ("empty-deflated", [], true),
            ("données/été.txt", unicodeText, true),
        ])

        let archive = try ZipArchive(path: path)
        XCTAssertEqual(archive.entries.map(\.name),
                       ["config.json", "metadata.json", "model.weights.h5", "empty-stored", "empty-deflated", "données/été.txt"])
        let config = try XCTUnwrap(archive.entry(named: "config.json"))
        XCTAssertEqual(config.compressionMethod, 8)
        XCTAssertLessThan(config.compressedSize, config.uncompressedSize)
        XCTAssertEqual(try archive.contents(of: config, limit: 1 << 20), json)
        XCTAssertNil(try archive.storedBytes(of: config), "deflated entries have no zero-copy view")

        let stored = try XCTUnwrap(archive.entry(named: "model.weights.h5"))
        XCTAssertEqual(stored.compressionMethod, 0)
        XCTAssertEqual(stored.uncompressedSize, 100_000)
        XCTAssertEqual(try archive.contents(of: stored, limit: 1 << 20), weights)
        let view = try XCTUnwrap(try archive.storedBytes(of: stored))
        XCTAssertEqual(Array(view), weights)
        XCTAssertEqual(view.baseAddress, try archive.storedBytes(of: stored)?.baseAddress, "the view points into the mapping")

        for name in ["empty-stored", "empty-deflated"] {
            let entry = try XCTUnwrap(archive.entry(named: name))
            XCTAssertEqual(try archive.contents(of: entry, limit: 0), [])
        }
        XCTAssertEqual(try archive.contents(of: try XCTUnwrap(archive.entry(named: "données/été.txt")), limit: 100), unicodeText)
        XCTAssertNil(archive.entry(named: "missing.json"))
    }

    func testStreamedEntriesFromFileAndBody() throws {
        let source = directory.appendingPathComponent("weights.bin").path
        let large = randomBytes(count: 3 << 20, seed: 2)
        try Data(large).write(to: URL(fileURLWithPath: source))

        let path = directory.appendingPathComponent("streamed.zip").path
        let writer = try ZipWriter(path: path)
        try writer.addEntry(name: "stored.bin", contentsOfFile: source, compress: false)
        try writer.addEntry(name: "deflated.bin", contentsOfFile: source, compress: true)
        let chunk = Array(repeating: UInt8(ascii: "z"), count: 1000)
        try writer.addEntry(name: "chunks.txt", size: 10_000, compress: true) { stream in
            for _ in 0 ..< 10 { try stream.write(chunk) }
        }
        try writer.finish()

        let archive = try ZipArchive(path: path)
        let stored = try XCTUnwrap(archive.entry(named: "stored.bin"))
        XCTAssertEqual(try archive.storedBytes(of: stored).map(Array.init), large)
        XCTAssertEqual(try archive.contents(of: try XCTUnwrap(archive.entry(named: "deflated.bin")), limit: 4 << 20), large)
        XCTAssertEqual(try archive.contents(of: try XCTUnwrap(archive.entry(named: "chunks.txt")), limit: 10_000),
                       Array(repeating: UInt8(ascii: "z"), count: 10_000))
    }

    func testZip64RecordsRoundTrip() throws {
        let path = directory.appendingPathComponent("zip64.zip").path
        // A threshold of 0 puts every size, offset and count into ZIP64 records.
        let writer = try ZipWriter(path: path, modificationDate: ZipWriter.defaultModificationDate, zip64Threshold: 0)
        try writer.addEntry(name: "a.txt", bytes: Array("first".utf8), compress: false)
        try writer.addEntry(name: "b.txt", bytes: Array(String(repeating: "second ", count: 30).utf8), compress: true)
        try writer.finish()

        let bytes = try readFile(path)
        XCTAssertFalse(offsets(of: [0x50, 0x4b, 0x06, 0x07], in: bytes).isEmpty, "ZIP64 locator written")
        let archive = try ZipArchive(path: path)
        XCTAssertEqual(try archive.contents(of: try XCTUnwrap(archive.entry(named: "a.txt")), limit: 100), Array("first".utf8))
        XCTAssertEqual(try archive.contents(of: try XCTUnwrap(archive.entry(named: "b.txt")), limit: 1000),
                       Array(String(repeating: "second ", count: 30).utf8))
    }

    func testEmptyArchive() throws {
        let path = try makeArchive([])
        XCTAssertEqual(try readFile(path).count, 22, "just an end record")
        XCTAssertEqual(try ZipArchive(path: path).entries, [])
    }

    // MARK: - Interoperability with Python's zipfile

    func testReadsArchivesWrittenByPython() throws {
        let plain = try ZipArchive(path: try writeFixture(Self.pythonPlainArchive, name: "plain.zip"))
        XCTAssertEqual(plain.entries.map(\.name), ["metadata.json", "config.json", "données/été.bin"])
        XCTAssertEqual(try plain.contents(of: try XCTUnwrap(plain.entry(named: "metadata.json")), limit: 100),
                       Array(#"{"keras_version": "3.3.3"}"#.utf8))
        XCTAssertEqual(try plain.contents(of: try XCTUnwrap(plain.entry(named: "config.json")), limit: 1000),
                       Array(String(repeating: #"{"class_name": "Sequential", "config": {"layers": []}}"#, count: 4).utf8))
        XCTAssertEqual(try plain.storedBytes(of: try XCTUnwrap(plain.entry(named: "données/été.bin"))).map(Array.init),
                       Array(0 ..< 40))

        // Written to an unseekable stream: sizes follow the data in a data descriptor.
        let streamed = try ZipArchive(path: try writeFixture(Self.pythonDataDescriptorArchive, name: "descriptor.zip"))
        XCTAssertEqual(try streamed.contents(of: try XCTUnwrap(streamed.entry(named: "streamed.txt")), limit: 1000),
                       Array(String(repeating: "streamed through a pipe ", count: 10).utf8))

        // Written with zipfile's ZIP64 limits lowered to 0: ZIP64 extra fields and end records.
        let zip64 = try ZipArchive(path: try writeFixture(Self.pythonZip64Archive, name: "zip64.zip"))
        XCTAssertEqual(try zip64.contents(of: try XCTUnwrap(zip64.entry(named: "a.txt")), limit: 100), Array("zip64 entry a".utf8))
        XCTAssertEqual(try zip64.contents(of: try XCTUnwrap(zip64.entry(named: "b.txt")), limit: 1000),
                       Array(String(repeating: "zip64 entry b ", count: 8).utf8))
    }

    func testPythonReadsWhatWeWrite() throws {
        let entries: [(String, [UInt8], Bool)] = [
            ("config.json", Array(String(repeating: #"{"layers": []}"#, count: 20).utf8), true),
            ("metadata.json", Array(#"{"keras_version": "3.3.3"}"#.utf8), false),
            ("model.weights.h5", randomBytes(count: 700, seed: 3), false),
            ("empty", [], true),
            ("données/été.txt", Array("été".utf8), false),
        ]
        let expected = entries.map { "\($0.0)\t\($0.2 ? 8 : 0)\t\($0.1.count)\t\(hex($0.1))" }
        let plain = try makeArchive(entries, name: "plain.zip")
        XCTAssertEqual(try pythonListing(of: plain), expected)

        let zip64Path = directory.appendingPathComponent("zip64-for-python.zip").path
        let writer = try ZipWriter(path: zip64Path, modificationDate: Date(), zip64Threshold: 0)
        for (name, bytes, compress) in entries { try writer.addEntry(name: name, bytes: bytes, compress: compress) }
        try writer.finish()
        XCTAssertEqual(try pythonListing(of: zip64Path), expected)

        XCTAssertEqual(try pythonListing(of: try makeArchive([], name: "empty.zip")), [])
    }

    // MARK: - Files that are not zip archives

    func testFilesThatAreNotZipArchives() throws {
        assertZipError(.notAZipArchive, message: "empty") { _ = try ZipArchive(path: try writeFile([], name: "empty.keras")) }
        assertZipError(.notAZipArchive, message: "too short") { _ = try ZipArchive(path: try writeFile([0x50, 0x4b, 3, 4], name: "tiny")) }
        let hdf5 = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a] + [UInt8](repeating: 0, count: 100)
        assertZipError(.notAZipArchive, message: "HDF5") { _ = try ZipArchive(path: try writeFile(hdf5, name: "model.h5")) }
        assertZipError(.notAZipArchive, message: "regular file") { _ = try ZipArchive(path: self.directory.path) }
        assertZipError(.notAZipArchive, message: "cannot open") {
            _ = try ZipArchive(path: self.directory.appendingPathComponent("missing.keras").path)
        }
    }

    func testRandomBytesNeverCrash() throws {
        var generator = SplitMix64(seed: 42)
        for round in 0 ..< 300 {
            var bytes = (0 ..< Int.random(in: 0 ..< 600, using: &generator)).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
            if round % 3 != 0 {
                // Make the parser go further: a local header magic in front, an end record behind.
                bytes = [0x50, 0x4b, 0x03, 0x04] + bytes + [0x50, 0x4b, 0x05, 0x06]
                    + (0 ..< 16).map { _ in UInt8.random(in: 0 ... 255, using: &generator) } + [0, 0]
            }
            try readEverythingOrThrowZipError(try writeFile(bytes, name: "random-\(round)"))
        }
    }

    // MARK: - Error messages

    func testErrorsNameTheArchiveAndTheEntry() throws {
        let notZip = try writeFile(Array("hello, world: not a zip archive".utf8), name: "data.npz")
        XCTAssertThrowsError(try ZipArchive(path: notZip)) { error in
            XCTAssertEqual("\(error)", "\(notZip): not a zip archive (starts with bytes 68 65 6c 6c)")
        }
        let path = try makeArchive([("y.npy", [1, 2, 3, 4], false)], name: "x.npz")
        var bytes = try readFile(path)
        bytes.patch32(0xDEAD_BEEF, at: try centralHeaderOffset(of: "y.npy", in: bytes) + 16)
        let archive = try ZipArchive(path: try writeFile(bytes, name: "x.npz"))
        XCTAssertThrowsError(try archive.contents(of: try XCTUnwrap(archive.entry(named: "y.npy")), limit: 100)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path): entry 'y.npy': checksum mismatch"), "\(error)")
        }
    }

    // MARK: - Writer errors

    func testWriterRefusesInvalidRequests() throws {
        let writer = try ZipWriter(path: directory.appendingPathComponent("w.zip").path)
        try writer.addEntry(name: "a", bytes: [1, 2, 3] as [UInt8], compress: false)
        assertZipError(.writeFailed, message: "already has an entry") { try writer.addEntry(name: "a", bytes: [UInt8](), compress: false) }
        assertZipError(.writeFailed, message: "empty") { try writer.addEntry(name: "", bytes: [UInt8](), compress: false) }
        assertZipError(.writeFailed, message: "NUL") { try writer.addEntry(name: "a\0b", bytes: [UInt8](), compress: false) }
        try writer.finish()
        assertZipError(.writeFailed, message: "already finished") { try writer.addEntry(name: "b", bytes: [UInt8](), compress: false) }
        assertZipError(.writeFailed, message: "already finished") { try writer.finish() }

        let short = try ZipWriter(path: directory.appendingPathComponent("short.zip").path)
        assertZipError(.writeFailed, message: "3 bytes written but 10 declared") {
            try short.addEntry(name: "a", size: 10, compress: true) { try $0.write([1, 2, 3] as [UInt8]) }
        }
        assertZipError(.writeFailed, message: "earlier error") { try short.finish() }

        let long = try ZipWriter(path: directory.appendingPathComponent("long.zip").path)
        assertZipError(.writeFailed, message: "more bytes written than the 2 declared") {
            try long.addEntry(name: "a", size: 2, compress: false) { try $0.write([1, 2, 3] as [UInt8]) }
        }

        assertZipError(.writeFailed, message: "cannot create") {
            _ = try ZipWriter(path: self.directory.appendingPathComponent("no/such/dir.zip").path)
        }
        let missingSource = try ZipWriter(path: directory.appendingPathComponent("m.zip").path)
        assertZipError(.writeFailed, message: "cannot open") {
            try missingSource.addEntry(name: "x", contentsOfFile: self.directory.appendingPathComponent("absent").path, compress: false)
        }
    }
}
