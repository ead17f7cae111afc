import Foundation
import XCTest
@testable import ScionZip

/// Damaged and hostile archives: each is refused with a `ZipError` naming what is wrong, before
/// anything is allocated or read out of bounds.
extension ZipArchiveTests {
    // MARK: - Damaged archives

    func testEveryTruncationIsRejected() throws {
        let bytes = try readFile(try sampleArchive())
        for length in stride(from: 0, to: bytes.count, by: 7) {
            let path = try writeFile(Array(bytes[0 ..< length]), name: "truncated-\(length)")
            XCTAssertThrowsError(try ZipArchive(path: path), "truncated to \(length) bytes") { error in
                XCTAssertTrue(error is ZipError, "\(error)")
            }
        }
    }

    func testFlippedBytesNeverCrashAndDamagedDataIsDetected() throws {
        let zip64 = try readFile(try writeFixture(Self.pythonZip64Archive, name: "zip64.zip"))
        for original in [try readFile(try sampleArchive()), zip64] {
            try checkFlippedBytes(of: original)
        }
    }

    func checkFlippedBytes(of original: [UInt8]) throws {
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
                let everythingRead = try readEverythingOrThrowZipError(path)
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
        assertZipError(.damaged, message: "outside the file") { _ = try ZipArchive(path: try self.writeFile(bytes, name: "a")) }

        bytes = try readFile(try sampleArchive())
        bytes.patch16(0xFFFE, at: end + 8)
        bytes.patch16(0xFFFE, at: end + 10)
        assertZipError(.damaged, message: "cannot hold") { _ = try ZipArchive(path: try self.writeFile(bytes, name: "b")) }
    }

    func testDeclaredHugeEntryIsRefusedBeforeAllocating() throws {
        var bytes = try readFile(try sampleArchive())
        let central = try centralHeaderOffset(of: "config.json", in: bytes)
        bytes.patch32(1 << 30, at: central + 24)
        let archive = try ZipArchive(path: try writeFile(bytes, name: "liar.zip"))
        let entry = try XCTUnwrap(archive.entry(named: "config.json"))
        assertZipError(.damaged, message: "declares 1073741824 bytes uncompressed, more than the 67108864-byte limit") {
            _ = try archive.contents(of: entry, limit: 64 << 20)
        }
        // Even with no limit, a few deflated bytes cannot honestly expand to 4 GiB.
        bytes.patch32(0xFFFF_FFFF, at: central + 24)
        let worse = try ZipArchive(path: try writeFile(bytes, name: "liar2.zip"))
        assertZipError(.damaged, message: "can expand to") {
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
        assertZipError(.damaged, message: "more than the 67108864-byte limit") {
            _ = try honest.contents(of: try XCTUnwrap(honest.entry(named: "bomb")), limit: 64 << 20)
        }

        // Declares 1 MiB but expands to 100 MiB: inflation must stop at 1 MiB.
        let central = try centralHeaderOffset(of: "bomb", in: bytes)
        bytes.patch32(1 << 20, at: central + 24)
        let lying = try ZipArchive(path: try writeFile(bytes, name: "lying-bomb.zip"))
        assertZipError(.damaged, message: "expands beyond the declared 1048576 bytes") {
            _ = try lying.contents(of: try XCTUnwrap(lying.entry(named: "bomb")), limit: 64 << 20)
        }
    }

    func testDeflateStreamShorterThanDeclaredIsRejected() throws {
        var bytes = try readFile(try sampleArchive())
        let central = try centralHeaderOffset(of: "config.json", in: bytes)
        let declared = bytes.read32(at: central + 24)
        bytes.patch32(declared + 1, at: central + 24)
        let archive = try ZipArchive(path: try writeFile(bytes, name: "short.zip"))
        assertZipError(.damaged, message: "produced \(declared) bytes") {
            _ = try archive.contents(of: try XCTUnwrap(archive.entry(named: "config.json")), limit: 1 << 20)
        }
    }

    func testCorruptDeflateDataIsRejected() throws {
        var bytes = try readFile(try sampleArchive())
        let reference = try ZipArchive(path: try writeFile(bytes, name: "reference.zip"))
        let entry = try XCTUnwrap(reference.entry(named: "config.json"))
        for index in Int(entry.dataOffset) ..< Int(entry.dataOffset + entry.compressedSize) { bytes[index] = 0xFF }
        let archive = try ZipArchive(path: try writeFile(bytes, name: "corrupt.zip"))
        assertZipError(.damaged, message: "deflate stream") {
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
        assertZipError(.damaged, message: "checksum mismatch") { _ = try archive.contents(of: damaged, limit: 1 << 20) }
        assertZipError(.damaged, message: "checksum mismatch") { _ = try archive.storedBytes(of: damaged) }
        XCTAssertEqual(try archive.storedBytes(of: damaged, verifyingChecksum: false)?.count, Int(damaged.uncompressedSize))
    }

    func testDuplicateNamesAreRejected() throws {
        // Two names of equal length, so renaming one to the other keeps every header consistent.
        var bytes = try readFile(try makeArchive([("first.json", [1], false), ("other.json", [2], false)]))
        for offset in offsets(of: Array("other.json".utf8), in: bytes) { bytes.replace(at: offset, with: Array("first.json".utf8)) }
        assertZipError(.damaged, message: "more than one entry with this name") {
            _ = try ZipArchive(path: try self.writeFile(bytes, name: "duplicate.zip"))
        }
    }

    func testHostileDirectoryEntriesAreRejected() throws {
        let sample = try readFile(try sampleArchive())
        func rejected(_ message: String, _ damage: (inout [UInt8]) throws -> Void) throws {
            var bytes = sample
            try damage(&bytes)
            let path = try writeFile(bytes, name: "hostile.zip")
            assertZipError(.damaged, message: message) { _ = try ZipArchive(path: path) }
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
        assertZipError(.damaged, message: "compression method 12 is not supported") { _ = try archive.contents(of: entry, limit: 1 << 20) }
        assertZipError(.damaged, message: "compression method 12") { _ = try archive.storedBytes(of: entry) }
    }

    func testLimitAndForeignEntries() throws {
        let archive = try ZipArchive(path: try sampleArchive())
        let stored = try XCTUnwrap(archive.entry(named: "model.weights.h5"))
        assertZipError(.damaged, message: "more than the 100-byte limit") { _ = try archive.contents(of: stored, limit: 100) }
        var forged = stored
        forged.dataOffset = 0
        assertZipError(.damaged, message: "does not belong") { _ = try archive.contents(of: forged, limit: 1 << 20) }
        forged = stored
        forged.compressedSize = 1 << 40
        forged.uncompressedSize = 1 << 40
        assertZipError(.damaged, message: "does not belong") { _ = try archive.storedBytes(of: forged) }
    }
}
