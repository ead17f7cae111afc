import Foundation
@testable import HDF5
import XCTest

/// Bad input gives one-line HDF5Errors and libhdf5 prints nothing.
final class HDF5ErrorTests: XCTestCase {
    private func openError(_ path: String) throws -> HDF5Error? {
        let (error, stderr) = try capturingStandardError { hdf5Error { try HDF5File(readingFrom: path) } }
        XCTAssertEqual(stderr, "", "libhdf5 printed to stderr")
        if let error {
            XCTAssertFalse(error.description.contains("\n"), error.description)
            XCTAssertEqual(error.file, path)
            XCTAssertEqual(error.object, "")
        }
        return error
    }

    func testMissingFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("nope.h5")
        XCTAssertEqual(try openError(path)?.description, "\(path): no such file")
        XCTAssertEqual(try openError(directory.path("nope/deeper.h5"))?.reason, "no such file")
    }

    func testEmptyFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("empty.h5")
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data()))
        XCTAssertEqual(try openError(path)?.description, "\(path): the file is empty")
    }

    func testDirectory() throws {
        let directory = try TemporaryDirectory()
        XCTAssertEqual(try openError(directory.url.path)?.reason, "is a directory, not a file")
    }

    func testNotHDF5() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("model.h5")
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(String(repeating: "PK not hdf5 ", count: 400).utf8)))
        XCTAssertEqual(try openError(path)?.description,
                       "\(path): not an HDF5 file (no HDF5 signature at offset 0 or after a user block)")
    }

    func testTruncatedFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("truncated.h5")
        let whole = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("keras_like.h5")))
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: whole.prefix(3000)))
        let error = try openError(path)
        XCTAssertEqual(error?.reason.hasPrefix("cannot open HDF5 file: truncated file: eof = 3000"), true, error?.description ?? "")
    }

    func testSignatureButNoSuperblock() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("signature.h5")
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A, 0xFF, 0xFF])))
        let error = try openError(path)
        XCTAssertNotNil(error)
    }

    /// libhdf5's error stack, and whether it is printed, is per thread in a thread-safe
    /// build: a fresh thread starts with printing on again.
    func testNothingPrintedFromOtherThreads() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("truncated.h5")
        let whole = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("keras_like.h5")))
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: whole.prefix(3000)))
        let root = try HDF5File(readingFrom: Fixture.path("keras_like.h5")).root
        let failures = Failures()
        let (_, stderr) = try capturingStandardError {
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                do {
                    _ = try HDF5File(readingFrom: path)
                    failures.add("opened a truncated file")
                } catch let error as HDF5Error {
                    if !error.reason.contains("truncated") { failures.add(error.description) }
                } catch {
                    failures.add("\(error)")
                }
                if (try? root.dataset("model_weights/missing")) != nil { failures.add("found a missing dataset") }
                if (try? root.stringAttribute("missing")) != nil { failures.add("found a missing attribute") }
                done.signal()
            }
            thread.start()
            done.wait()
        }
        XCTAssertEqual(failures.all, [])
        XCTAssertEqual(stderr, "")
    }

    func testBadImages() throws {
        let (_, stderr) = try capturingStandardError {
            XCTAssertEqual(hdf5Error { try HDF5File(readingImage: UnsafeRawBufferPointer(start: nil, count: 0), name: "none") }?.description,
                           "none: the file is empty")
            let text = Array("definitely not an HDF5 file".utf8)
            text.withUnsafeBytes { raw in
                XCTAssertEqual(hdf5Error { try HDF5File(readingImage: raw, name: "text") }?.reason, "not an HDF5 file (no HDF5 signature)")
            }
            let whole = (try? Data(contentsOf: URL(fileURLWithPath: Fixture.path("keras_like.h5")))) ?? Data()
            whole.prefix(3000).withUnsafeBytes { raw in
                let error = hdf5Error { try HDF5File(readingImage: raw, name: "cut") }
                XCTAssertEqual(error?.reason.hasPrefix("cannot open HDF5 file image"), true, error?.description ?? "")
            }
        }
        XCTAssertEqual(stderr, "")
    }

    /// A damaged superblock or root object header is reported, not crashed on. (Damage
    /// deeper in a file can crash or hang libhdf5 1.10.8 itself, which no wrapper can
    /// prevent; see `HDF5File`.)
    func testDamagedSuperblock() throws {
        let directory = try TemporaryDirectory()
        let original = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("keras_like.h5")))
        for (index, range) in [8..<12, 12..<24, 24..<56, 56..<96].enumerated() {
            var damaged = [UInt8](original)
            for offset in range { damaged[offset] = 0xFF }
            let path = directory.path("damaged\(index).h5")
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(damaged)))
            let (outcome, stderr) = try capturingStandardError { () -> String in
                do {
                    let file = try HDF5File(readingFrom: path)
                    return "opened: \((try? file.root.childNames()) ?? [])"
                } catch let error as HDF5Error {
                    XCTAssertFalse(error.description.contains("\n"))
                    return error.reason
                } catch {
                    return "\(error)"
                }
            }
            XCTAssertTrue(outcome.hasPrefix("cannot open HDF5 file"), "bytes \(range): \(outcome)")
            XCTAssertEqual(stderr, "")
        }
    }

    func testErrorDescriptionIsOneLine() {
        let error = HDF5Error(file: "m.h5", object: "/evil\nname", reason: "tab\there")
        XCTAssertEqual(error.description, "m.h5: /evil\\nname: tab\\there")
        XCTAssertEqual(HDF5Error(file: "m.h5", object: "", reason: "bad").description, "m.h5: bad")
    }
}

/// The child's answer (CHDF5/isolated.h) as the parent parses it: whole records, and a record cut
/// short by a crash ends the list without reading past the bytes.
final class HDF5IsolationRecordTests: XCTestCase {
    func record(_ kind: String, _ fields: [String], count: UInt64? = nil) -> [UInt8] {
        var bytes = Array(kind.utf8)
        for (index, field) in fields.enumerated() {
            if index == 2, let count { bytes += withUnsafeBytes(of: count.littleEndian) { Array($0) } }
            bytes += withUnsafeBytes(of: UInt64(field.utf8.count).littleEndian) { Array($0) } + Array(field.utf8)
        }
        return bytes
    }

    func testRecordsParseAndACutRecordEndsTheList() {
        let whole = record("O", ["/model_weights"]) + record("S", ["/model_weights", "layer_names", "conv", "dense"], count: 2)
        let (strings, last) = whole.withUnsafeBytes { HDF5File.parse($0) }
        XCTAssertEqual(last, "/model_weights")
        XCTAssertEqual(strings.values[HDF5File.WalkedStrings.key("/model_weights", "layer_names")], ["conv", "dense"])
        for cut in 0..<whole.count {
            let (partial, _) = Array(whole.prefix(cut)).withUnsafeBytes { HDF5File.parse($0) }
            XCTAssertLessThanOrEqual(partial.values.count, 1)
        }
        var lying = record("S", ["/", "a"]) + withUnsafeBytes(of: UInt64.max) { Array($0) }
        lying += [1, 2, 3]
        XCTAssertTrue(lying.withUnsafeBytes { HDF5File.parse($0) }.0.values.isEmpty, "a count larger than the bytes stops the parse")
    }
}
