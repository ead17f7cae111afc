import Foundation
import ScionIR
import XCTest
@testable import ScionZip

/// What the zip tests share: archives to start from, byte surgery, Python as the reference reader.
extension ZipArchiveTests {
    // MARK: - Helpers

    /// Three entries like a `.keras` file: deflated config, stored metadata and weights.
    func sampleArchive() throws -> String {
        try makeArchive([
            ("config.json", Array(String(repeating: #"{"name": "dense"}"#, count: 10).utf8), true),
            ("metadata.json", Array(#"{"keras_version": "3.3.3"}"#.utf8), false),
            ("model.weights.h5", randomBytes(count: 200, seed: 9), false),
        ], name: "sample-\(UUID().uuidString).zip")
    }

    func makeArchive(_ entries: [(String, [UInt8], Bool)], name: String = "archive.zip") throws -> String {
        let path = directory.appendingPathComponent(name).path
        let writer = try ZipWriter(path: path)
        for (entryName, bytes, compress) in entries { try writer.addEntry(name: entryName, bytes: bytes, compress: compress) }
        try writer.finish()
        return path
    }

    /// Opens the archive and reads every entry both ways. Returns true if everything succeeded,
    /// false if a `ZipError` was thrown; any other error fails the test.
    @discardableResult
    func readEverythingOrThrowZipError(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> Bool {
        do {
            let archive = try ZipArchive(path: path)
            var succeeded = true
            for entry in archive.entries {
                do {
                    _ = try archive.contents(of: entry, limit: 1 << 20)
                    _ = try archive.storedBytes(of: entry)
                } catch is ZipError {
                    succeeded = false
                }
            }
            return succeeded
        } catch is ZipError {
            return false
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
            return false
        }
    }

    func assertZipError(
        _ kind: ZipError.Kind, message: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
    ) {
        do {
            try body()
            XCTFail("expected a \(kind) error containing \"\(message)\"", file: file, line: line)
        } catch let error as ZipError {
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            XCTAssertTrue(error.reason.contains(message), "\"\(error.reason)\" lacks \"\(message)\"", file: file, line: line)
            XCTAssertFalse(error.reason.contains("\n"), file: file, line: line)
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
    }

    func writeFile(_ bytes: [UInt8], name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func writeFixture(_ base64: String, name: String) throws -> String {
        let data = try XCTUnwrap(Data(base64Encoded: base64, options: .ignoreUnknownCharacters))
        return try writeFile(Array(data), name: name)
    }

    func readFile(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static let endSignature: [UInt8] = [0x50, 0x4b, 0x05, 0x06]
    static let centralSignature: [UInt8] = [0x50, 0x4b, 0x01, 0x02]

    func offsets(of needle: [UInt8], in bytes: [UInt8]) -> [Int] {
        guard bytes.count >= needle.count, !needle.isEmpty else { return [] }
        return (0 ... bytes.count - needle.count).filter { bytes[$0 ..< $0 + needle.count].elementsEqual(needle) }
    }

    /// Offset of the central directory header whose name is `name`.
    func centralHeaderOffset(of name: String, in bytes: [UInt8]) throws -> Int {
        let nameBytes = Array(name.utf8)
        let match = offsets(of: Self.centralSignature, in: bytes).first { header in
            header + 46 + nameBytes.count <= bytes.count && bytes[header + 46 ..< header + 46 + nameBytes.count].elementsEqual(nameBytes)
        }
        return try XCTUnwrap(match, "no central header for \(name)")
    }

    func randomBytes(count: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
    }

    func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Lists the archive with Python's zipfile (after `testzip()`), one "name, method, size, hex" line per entry.
    func pythonListing(of path: String) throws -> [String] {
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
    static let pythonPlainArchive = """
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
    static let pythonDataDescriptorArchive = """
    UEsDBBQACAAIAABgoVgAAAAAAAAAAAAAAAAMAAAAc3RyZWFtZWQudHh0Ky4pSk3MTU1RKMkoyi9Nz1BIVCjILEhVKB6m4gBQSwcI
    k9LFlh0AAADwAAAAUEsBAhQDFAAIAAgAAGChWJPSxZYdAAAA8AAAAAwAAAAAAAAAAAAAAIABAAAAAHN0cmVhbWVkLnR4dFBLBQYA
    AAAAAQABADoAAABXAAAAAAA=
    """

    /// zipfile.ZIP64_LIMIT = zipfile.ZIP_FILECOUNT_LIMIT = 0, then a.txt (stored) and b.txt
    /// (deflated): ZIP64 extra fields, ZIP64 end record and locator.
    static let pythonZip64Archive = """
    UEsDBC0AAAAAAABgoVh+XEX5//////////8FABQAYS50eHQBABAADQAAAAAAAAANAAAAAAAAAHppcDY0IGVudHJ5IGFQSwMELQAA
    AAgAAGChWNN3VSD//////////wUAFABiLnR4dAEAEABwAAAAAAAAABMAAAAAAAAAq8osMDNRSM0rKapUSFKoojkPAFBLAQItAy0A
    AAAAAABgoVh+XEX5//////////8FABQAAAAAAAAAAACAAQAAAABhLnR4dAEAEAANAAAAAAAAAA0AAAAAAAAAUEsBAi0DLQAAAAgA
    AGChWNN3VSD//////////wUAHAAAAAAAAAAAAIAB/////2IudHh0AQAYAHAAAAAAAAAAEwAAAAAAAABEAAAAAAAAAFBLBgYsAAAA
    AAAAAC0ALQAAAAAAAAAAAAIAAAAAAAAAAgAAAAAAAACWAAAAAAAAAI4AAAAAAAAAUEsGBwAAAAAkAQAAAAAAAAEAAABQSwUGAAAA
    AAIAAgCWAAAAjgAAAAAA
    """
}

/// Little-endian field surgery on archive bytes.
extension Array where Element == UInt8 {
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