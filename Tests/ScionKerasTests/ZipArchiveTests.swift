import Foundation
import ScionIR
import XCTest
@testable import ScionKeras

final class ZipArchiveTests: XCTestCase {
    private var directory = URL(fileURLWithPath: NSTemporaryDirectory())

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
        assertKerasError(.notAKerasFile, message: "empty") { _ = try ZipArchive(path: try writeFile([], name: "empty.keras")) }
        assertKerasError(.notAKerasFile, message: "too short") { _ = try ZipArchive(path: try writeFile([0x50, 0x4b, 3, 4], name: "tiny")) }
        let hdf5 = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a] + [UInt8](repeating: 0, count: 100)
        assertKerasError(.notAKerasFile, message: "HDF5") { _ = try ZipArchive(path: try writeFile(hdf5, name: "model.h5")) }
        assertKerasError(.notAKerasFile, message: "regular file") { _ = try ZipArchive(path: self.directory.path) }
        assertKerasError(.notAKerasFile, message: "cannot open") {
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
            try readEverythingOrThrowKerasError(try writeFile(bytes, name: "random-\(round)"))
        }
    }

    // MARK: - Damaged archives

    func testEveryTruncationIsRejected() throws {
        let bytes = try readFile(try sampleArchive())
        for length in stride(from: 0, to: bytes.count, by: 7) {
            let path = try writeFile(Array(bytes[0 ..< length]), name: "truncated-\(length)")
            XCTAssertThrowsError(try ZipArchive(path: path), "truncated to \(length) bytes") { error in
                XCTAssertTrue(error is KerasError, "\(error)")
            }
        }
    }

    func testFlippedBytesNeverCrashAndDamagedDataIsDetected() throws {
        let zip64 = try readFile(try writeFixture(Self.pythonZip64Archive, name: "zip64.zip"))
        for original in [try readFile(try sampleArchive()), zip64] {
            try checkFlippedBytes(of: original)
        }
    }

    private func checkFlippedBytes(of original: [UInt8]) throws {
        let reference = try ZipArchive(path: try writeFile(original, name: "reference.zip"))
        // Any change to entry data must be caught (by the CRC or by inflate), except in the last
        // byte of a deflate stream, whose high bits can be padding after the end-of-block code.
        let dataRanges = reference.entries.map { entry in
            Int(entry.dataOffset) ..< Int(entry.dataOffset + entry.compressedSize) - (entry.compressionMethod == 8 ? 1 : 0)
        }
        for offset in original.indices {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var bytes = original
                bytes[offset] ^= mask
                let path = try writeFile(bytes, name: "flipped")
                let everythingRead = try readEverythingOrThrowKerasError(path)
                if dataRanges.contains(where: { $0.contains(offset) }) {
                    XCTAssertFalse(everythingRead, "damage at offset \(offset) went unnoticed")
                }
            }
        }
    }

    func testCentralDirectoryOutsideTheFileIsRejected() throws {
        var bytes = try readFile(try sampleArchive())
        let end = try XCTUnwrap(offsets(of: Self.endSignature, in: bytes).last)
        bytes.patch32(0x7FFF_FFF0, at: end + 16)
        assertKerasError(.invalidArchive, message: "outside the file") { _ = try ZipArchive(path: try self.writeFile(bytes, name: "a")) }

        bytes = try readFile(try sampleArchive())
        bytes.patch16(0xFFFE, at: end + 8)
        bytes.patch16(0xFFFE, at: end + 10)
        assertKerasError(.invalidArchive, message: "cannot hold") { _ = try ZipArchive(path: try self.writeFile(bytes, name: "b")) }
    }

    func testDeclaredHugeEntryIsRefusedBeforeAllocating() throws {
        var bytes = try readFile(try sampleArchive())
        let central = try centralHeaderOffset(of: "config.json", in: bytes)
        bytes.patch32(1 << 30, at: central + 24)
        let archive = try ZipArchive(path: try writeFile(bytes, name: "liar.zip"))
        let entry = try XCTUnwrap(archive.entry(named: "config.json"))
        assertKerasError(.invalidArchive, message: "declares 1073741824 bytes uncompressed, more than the 67108864-byte limit") {
            _ = try archive.contents(of: entry, limit: 64 << 20)
        }
        // Even with no limit, a few deflated bytes cannot honestly expand to 4 GiB.
        bytes.patch32(0xFFFF_FFFF, at: central + 24)
        let worse = try ZipArchive(path: try writeFile(bytes, name: "liar2.zip"))
        assertKerasError(.invalidArchive, message: "can expand to") {
            _ = try worse.contents(of: try XCTUnwrap(worse.entry(named: "config.json")), limit: Int.max)
        }
    }

    func testZipBombIsRefusedAndStopsAtTheDeclaredSize() throws {
        let path = directory.appendingPathComponent("bomb.zip").path
        let writer = try ZipWriter(path: path)
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        try writer.addEntry(name: "bomb", size: 100 << 20, compress: true) { stream in
            for _ in 0 ..< 100 { try stream.write(zeros) }
        }
        try writer.finish()
        var bytes = try readFile(path)
        XCTAssertLessThan(bytes.count, 200_000)

        let honest = try ZipArchive(path: path)
        assertKerasError(.invalidArchive, message: "more than the 67108864-byte limit") {
            _ = try honest.contents(of: try XCTUnwrap(honest.entry(named: "bomb")), limit: 64 << 20)
        }

        // Declares 1 MiB but expands to 100 MiB: inflation must stop at 1 MiB.
        let central = try centralHeaderOffset(of: "bomb", in: bytes)
        bytes.patch32(1 << 20, at: central + 24)
        let lying = try ZipArchive(path: try writeFile(bytes, name: "lying-bomb.zip"))
        assertKerasError(.invalidArchive, message: "expands beyond the declared 1048576 bytes") {
            _ = try lying.contents(of: try XCTUnwrap(lying.entry(named: "bomb")), limit: 64 << 20)
        }
    }

    func testDeflateStreamShorterThanDeclaredIsRejected() throws {
        var bytes = try readFile(try sampleArchive())
        let central = try centralHeaderOffset(of: "config.json", in: bytes)
        let declared = bytes.read32(at: central + 24)
        bytes.patch32(declared + 1, at: central + 24)
        let archive = try ZipArchive(path: try writeFile(bytes, name: "short.zip"))
        assertKerasError(.invalidArchive, message: "produced \(declared) bytes") {
            _ = try archive.contents(of: try XCTUnwrap(archive.entry(named: "config.json")), limit: 1 << 20)
        }
    }

    func testCorruptDeflateDataIsRejected() throws {
        var bytes = try readFile(try sampleArchive())
        let reference = try ZipArchive(path: try writeFile(bytes, name: "reference.zip"))
        let entry = try XCTUnwrap(reference.entry(named: "config.json"))
        for index in Int(entry.dataOffset) ..< Int(entry.dataOffset + entry.compressedSize) { bytes[index] = 0xFF }
        let archive = try ZipArchive(path: try writeFile(bytes, name: "corrupt.zip"))
        assertKerasError(.invalidArchive, message: "deflate stream") {
            _ = try archive.contents(of: try XCTUnwrap(archive.entry(named: "config.json")), limit: 1 << 20)
        }
    }

    func testChecksumMismatchIsDetected() throws {
        var bytes = try readFile(try sampleArchive())
        let reference = try ZipArchive(path: try writeFile(bytes, name: "reference.zip"))
        let entry = try XCTUnwrap(reference.entry(named: "model.weights.h5"))
        bytes[Int(entry.dataOffset) + 10] ^= 0x40
        let archive = try ZipArchive(path: try writeFile(bytes, name: "crc.zip"))
        let damaged = try XCTUnwrap(archive.entry(named: "model.weights.h5"))
        assertKerasError(.invalidArchive, message: "checksum mismatch") { _ = try archive.contents(of: damaged, limit: 1 << 20) }
        assertKerasError(.invalidArchive, message: "checksum mismatch") { _ = try archive.storedBytes(of: damaged) }
        XCTAssertEqual(try archive.storedBytes(of: damaged, verifyingChecksum: false)?.count, Int(damaged.uncompressedSize))
    }

    func testDuplicateNamesAreRejected() throws {
        // Two names of equal length, so renaming one to the other keeps every header consistent.
        var bytes = try readFile(try makeArchive([("first.json", [1], false), ("other.json", [2], false)]))
        for offset in offsets(of: Array("other.json".utf8), in: bytes) { bytes.replace(at: offset, with: Array("first.json".utf8)) }
        assertKerasError(.invalidArchive, message: "more than one entry with this name") {
            _ = try ZipArchive(path: try self.writeFile(bytes, name: "duplicate.zip"))
        }
    }

    func testHostileDirectoryEntriesAreRejected() throws {
        let sample = try readFile(try sampleArchive())
        func rejected(_ message: String, _ damage: (inout [UInt8]) throws -> Void) throws {
            var bytes = sample
            try damage(&bytes)
            let path = try writeFile(bytes, name: "hostile.zip")
            assertKerasError(.invalidArchive, message: message) { _ = try ZipArchive(path: path) }
        }
        try rejected("encrypted") { bytes in
            let central = try centralHeaderOffset(of: "metadata.json", in: bytes)
            bytes[central + 8] |= 1
        }
        try rejected("not valid UTF-8") { bytes in
            for offset in offsets(of: Array("metadata.json".utf8), in: bytes) { bytes[offset] = 0xFF }
        }
        try rejected("different file") { bytes in
            let local = try XCTUnwrap(offsets(of: Array("metadata.json".utf8), in: bytes).first)
            bytes[local] = UInt8(ascii: "M")
        }
        try rejected("overlaps") { bytes in
            let central = try centralHeaderOffset(of: "config.json", in: bytes)
            bytes.patch32(bytes.read32(at: central + 20) + 8, at: central + 20)
        }
        try rejected("runs past the start of the central directory") { bytes in
            let central = try centralHeaderOffset(of: "model.weights.h5", in: bytes)
            bytes.patch32(0xFFFF_FFF0, at: central + 20)
            bytes.patch32(0xFFFF_FFF0, at: central + 24)
        }
        try rejected("local header") { bytes in
            let central = try centralHeaderOffset(of: "metadata.json", in: bytes)
            bytes.patch32(bytes.read32(at: central + 42) + 1, at: central + 42)
        }
    }

    func testUnsupportedCompressionMethodIsRejectedWhenRead() throws {
        var bytes = try readFile(try sampleArchive())
        bytes[try centralHeaderOffset(of: "config.json", in: bytes) + 10] = 12 // bzip2
        let archive = try ZipArchive(path: try writeFile(bytes, name: "bzip2.zip"))
        let entry = try XCTUnwrap(archive.entry(named: "config.json"))
        XCTAssertEqual(entry.compressionMethod, 12)
        assertKerasError(.invalidArchive, message: "compression method 12 is not supported") { _ = try archive.contents(of: entry, limit: 1 << 20) }
        assertKerasError(.invalidArchive, message: "compression method 12") { _ = try archive.storedBytes(of: entry) }
    }

    func testLimitAndForeignEntries() throws {
        let archive = try ZipArchive(path: try sampleArchive())
        let stored = try XCTUnwrap(archive.entry(named: "model.weights.h5"))
        assertKerasError(.invalidArchive, message: "more than the 100-byte limit") { _ = try archive.contents(of: stored, limit: 100) }
        var forged = stored
        forged.dataOffset = 0
        assertKerasError(.invalidArchive, message: "does not belong") { _ = try archive.contents(of: forged, limit: 1 << 20) }
        forged = stored
        forged.compressedSize = 1 << 40
        forged.uncompressedSize = 1 << 40
        assertKerasError(.invalidArchive, message: "does not belong") { _ = try archive.storedBytes(of: forged) }
    }

    // MARK: - Writer errors

    func testWriterRefusesInvalidRequests() throws {
        let writer = try ZipWriter(path: directory.appendingPathComponent("w.zip").path)
        try writer.addEntry(name: "a", bytes: [1, 2, 3] as [UInt8], compress: false)
        assertKerasError(.writeFailed, message: "already has an entry") { try writer.addEntry(name: "a", bytes: [UInt8](), compress: false) }
        assertKerasError(.writeFailed, message: "empty") { try writer.addEntry(name: "", bytes: [UInt8](), compress: false) }
        assertKerasError(.writeFailed, message: "NUL") { try writer.addEntry(name: "a\0b", bytes: [UInt8](), compress: false) }
        try writer.finish()
        assertKerasError(.writeFailed, message: "already finished") { try writer.addEntry(name: "b", bytes: [UInt8](), compress: false) }
        assertKerasError(.writeFailed, message: "already finished") { try writer.finish() }

        let short = try ZipWriter(path: directory.appendingPathComponent("short.zip").path)
        assertKerasError(.writeFailed, message: "3 bytes written but 10 declared") {
            try short.addEntry(name: "a", size: 10, compress: true) { try $0.write([1, 2, 3] as [UInt8]) }
        }
        assertKerasError(.writeFailed, message: "earlier error") { try short.finish() }

        let long = try ZipWriter(path: directory.appendingPathComponent("long.zip").path)
        assertKerasError(.writeFailed, message: "more bytes written than the 2 declared") {
            try long.addEntry(name: "a", size: 2, compress: false) { try $0.write([1, 2, 3] as [UInt8]) }
        }

        assertKerasError(.writeFailed, message: "cannot create") {
            _ = try ZipWriter(path: self.directory.appendingPathComponent("no/such/dir.zip").path)
        }
        let missingSource = try ZipWriter(path: directory.appendingPathComponent("m.zip").path)
        assertKerasError(.writeFailed, message: "cannot open") {
            try missingSource.addEntry(name: "x", contentsOfFile: self.directory.appendingPathComponent("absent").path, compress: false)
        }
    }

    // MARK: - Helpers

    /// Three entries like a `.keras` file: deflated config, stored metadata and weights.
    private func sampleArchive() throws -> String {
        try makeArchive([
            ("config.json", Array(String(repeating: #"{"name": "dense"}"#, count: 10).utf8), true),
            ("metadata.json", Array(#"{"keras_version": "3.3.3"}"#.utf8), false),
            ("model.weights.h5", randomBytes(count: 200, seed: 9), false),
        ], name: "sample-\(UUID().uuidString).zip")
    }

    private func makeArchive(_ entries: [(String, [UInt8], Bool)], name: String = "archive.zip") throws -> String {
        let path = directory.appendingPathComponent(name).path
        let writer = try ZipWriter(path: path)
        for (entryName, bytes, compress) in entries { try writer.addEntry(name: entryName, bytes: bytes, compress: compress) }
        try writer.finish()
        return path
    }

    /// Opens the archive and reads every entry both ways. Returns true if everything succeeded,
    /// false if a `KerasError` was thrown; any other error fails the test.
    @discardableResult
    private func readEverythingOrThrowKerasError(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> Bool {
        do {
            let archive = try ZipArchive(path: path)
            var succeeded = true
            for entry in archive.entries {
                do {
                    _ = try archive.contents(of: entry, limit: 1 << 20)
                    _ = try archive.storedBytes(of: entry)
                } catch is KerasError {
                    succeeded = false
                }
            }
            return succeeded
        } catch is KerasError {
            return false
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
            return false
        }
    }

    private func assertKerasError(
        _ kind: KerasError.Kind, message: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
    ) {
        do {
            try body()
            XCTFail("expected a \(kind) error containing \"\(message)\"", file: file, line: line)
        } catch let error as KerasError {
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            XCTAssertTrue(error.reason.contains(message), "\"\(error.reason)\" lacks \"\(message)\"", file: file, line: line)
            XCTAssertFalse(error.reason.contains("\n"), file: file, line: line)
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
    }

    private func writeFile(_ bytes: [UInt8], name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    private func writeFixture(_ base64: String, name: String) throws -> String {
        let data = try XCTUnwrap(Data(base64Encoded: base64, options: .ignoreUnknownCharacters))
        return try writeFile(Array(data), name: name)
    }

    private func readFile(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    private static let endSignature: [UInt8] = [0x50, 0x4b, 0x05, 0x06]
    private static let centralSignature: [UInt8] = [0x50, 0x4b, 0x01, 0x02]

    private func offsets(of needle: [UInt8], in bytes: [UInt8]) -> [Int] {
        guard bytes.count >= needle.count, !needle.isEmpty else { return [] }
        return (0 ... bytes.count - needle.count).filter { bytes[$0 ..< $0 + needle.count].elementsEqual(needle) }
    }

    /// Offset of the central directory header whose name is `name`.
    private func centralHeaderOffset(of name: String, in bytes: [UInt8]) throws -> Int {
        let nameBytes = Array(name.utf8)
        let match = offsets(of: Self.centralSignature, in: bytes).first { header in
            header + 46 + nameBytes.count <= bytes.count && bytes[header + 46 ..< header + 46 + nameBytes.count].elementsEqual(nameBytes)
        }
        return try XCTUnwrap(match, "no central header for \(name)")
    }

    private func randomBytes(count: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
    }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Lists the archive with Python's zipfile (after `testzip()`), one "name, method, size, hex" line per entry.
    private func pythonListing(of path: String) throws -> [String] {
        let script = """
        import sys, zipfile
        sys.stdout.reconfigure(encoding="utf-8")
        with zipfile.ZipFile(sys.argv[1]) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                sys.exit("damaged entry: " + damaged)
            for info in archive.infolist():
                print(info.filename, info.compress_type, info.file_size, archive.read(info).hex(), sep="\\t")
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, path]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch { throw XCTSkip("cannot run /usr/bin/env: \(error)") }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 127 { throw XCTSkip("python3 is not installed") }
        XCTAssertEqual(process.terminationStatus, 0, "python3 zipfile failed: \(errorText)")
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    // MARK: - Fixtures made by Python 3.11's zipfile (see the generating code in each comment)

    /// ZipFile(buf, "w"): writestr of metadata.json (stored), config.json (deflated),
    /// "données/été.bin" (stored, bytes 0..<40, UTF-8 flag).
    private static let pythonPlainArchive = """
    UEsDBBQAAAAAAABgoVjmvJ+zGgAAABoAAAANAAAAbWV0YWRhdGEuanNvbnsia2VyYXNfdmVyc2lvbiI6ICIzLjMuMyJ9UEsDBBQA
    AAAIAABgoVjhE4GHOQAAANgAAAALAAAAY29uZmlnLmpzb26rVkrOSSwujs9LzE1VslJQCk4tLE3NK8lMzFHSUVBKzs9Ly0wHilcr
    5SRWphYVA5nRsbW11YNeFwBQSwMEFAAACAAAAGChWDwupg0oAAAAKAAAABIAAABkb25uw6llcy/DqXTDqS5iaW4AAQIDBAUGBwgJ
    CgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnUEsBAhQDFAAAAAAAAGChWOa8n7MaAAAAGgAAAA0AAAAAAAAAAAAAAIABAAAA
    AG1ldGFkYXRhLmpzb25QSwECFAMUAAAACAAAYKFY4ROBhzkAAADYAAAACwAAAAAAAAAAAAAAgAFFAAAAY29uZmlnLmpzb25QSwEC
    FAMUAAAIAAAAYKFYPC6mDSgAAAAoAAAAEgAAAAAAAAAAAAAAgAGnAAAAZG9ubsOpZXMvw6l0w6kuYmluUEsFBgAAAAADAAMAtAAA
    AP8AAAAAAA==
    """

    /// ZipFile on an object with only write/flush (unseekable), ZipFile.open("streamed.txt", "w")
    /// deflated: local header sizes are zero and a data descriptor follows the data.
    private static let pythonDataDescriptorArchive = """
    UEsDBBQACAAIAABgoVgAAAAAAAAAAAAAAAAMAAAAc3RyZWFtZWQudHh0Ky4pSk3MTU1RKMkoyi9Nz1BIVCjILEhVKB6m4gBQSwcI
    k9LFlh0AAADwAAAAUEsBAhQDFAAIAAgAAGChWJPSxZYdAAAA8AAAAAwAAAAAAAAAAAAAAIABAAAAAHN0cmVhbWVkLnR4dFBLBQYA
    AAAAAQABADoAAABXAAAAAAA=
    """

    /// zipfile.ZIP64_LIMIT = zipfile.ZIP_FILECOUNT_LIMIT = 0, then a.txt (stored) and b.txt
    /// (deflated): ZIP64 extra fields, ZIP64 end record and locator.
    private static let pythonZip64Archive = """
    UEsDBC0AAAAAAABgoVh+XEX5//////////8FABQAYS50eHQBABAADQAAAAAAAAANAAAAAAAAAHppcDY0IGVudHJ5IGFQSwMELQAA
    AAgAAGChWNN3VSD//////////wUAFABiLnR4dAEAEABwAAAAAAAAABMAAAAAAAAAq8osMDNRSM0rKapUSFKoojkPAFBLAQItAy0A
    AAAAAABgoVh+XEX5//////////8FABQAAAAAAAAAAACAAQAAAABhLnR4dAEAEAANAAAAAAAAAA0AAAAAAAAAUEsBAi0DLQAAAAgA
    AGChWNN3VSD//////////wUAHAAAAAAAAAAAAIAB/////2IudHh0AQAYAHAAAAAAAAAAEwAAAAAAAABEAAAAAAAAAFBLBgYsAAAA
    AAAAAC0ALQAAAAAAAAAAAAIAAAAAAAAAAgAAAAAAAACWAAAAAAAAAI4AAAAAAAAAUEsGBwAAAAAkAQAAAAAAAAEAAABQSwUGAAAA
    AAIAAgCWAAAAjgAAAAAA
    """
}

private extension Array where Element == UInt8 {
    mutating func patch16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(value & 0xFF)
        self[offset + 1] = UInt8(value >> 8)
    }

    mutating func patch32(_ value: UInt32, at offset: Int) {
        for index in 0 ..< 4 { self[offset + index] = UInt8((value >> (8 * UInt32(index))) & 0xFF) }
    }

    func read32(at offset: Int) -> UInt32 {
        (0 ..< 4).reduce(UInt32(0)) { $0 | UInt32(self[offset + $1]) << (8 * UInt32($1)) }
    }

    mutating func replace(at offset: Int, with replacement: [UInt8]) {
        self.replaceSubrange(offset ..< offset + replacement.count, with: replacement)
    }
}
